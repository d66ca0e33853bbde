"""hepml.data.prepare and hepml.physics: the course's notebook-1 outputs.

File names and shapes, padding and masks, rotations, scaling round trips, masked
statistics against a NumPy reference, targets, determinism, bad input (missing
columns, NaN rows counted and dropped, empty input, bad arguments), the parquet path
(when awkward + pyarrow are installed) and the CLI. NumPy is the reference here.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hepml
import hepml.data as hd
import hepml.physics as hp

ROOT = Path(__file__).resolve().parents[1]
PI_C = 3.1416015625
N_EVENTS, AUGMENT = 3000, 10


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen") / "ww"
    hd.generate(N_EVENTS, 21, out_dir=d, progress=False)
    return d


@pytest.fixture(scope="module")
def prepared(gen_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "prepared"
    report = hd.prepare(gen_dir, out, augment=AUGMENT, seed=42, progress=False, verbose=False)
    return out, report


def load(out, name):
    return np.load(Path(out) / f"{name}.npy")


def wrap(x):
    return np.mod(np.asarray(x, np.float64) + np.pi, 2 * np.pi) - np.pi


# numpy reference of the course's scalings (float64)
def ref_scale(x, spec):
    y = np.array(x, np.float64)
    for col, s in enumerate(spec):
        if s is None:
            continue
        v = y[..., col]
        if s[0] == "log_pt":
            with np.errstate(invalid="ignore"):
                y[..., col] = np.where(v > 0, np.log1p(v - s[1]), 0.0)
        elif s[0] == "log1p":
            y[..., col] = np.log1p(v)
        else:
            p = np.clip((v + PI_C) / (2 * PI_C), 1e-6, 1 - 1e-6)
            y[..., col] = np.log(p / (1 - p))
    return y


# ------------------------------------------------------------------ outputs

def test_file_names(prepared):
    out, report = prepared
    names = set(os.listdir(out))
    assert names == set(hd.output_files()) | {"prepare.json"}
    for must in ("jet_data_training.npy", "jet_data_validation.npy", "jet_padding_mask_training.npy",
                 "lepton_data_validation.npy", "met_data_training.npy", "jetlepmet_padding_mask_validation.npy",
                 "W_data_training.npy", "W_ordered_data_training.npy", "nu_data_training.npy",
                 "nu_ordered_data_validation.npy", "x1x2_data_training.npy", "EcmPz_data_training.npy",
                 "EcmPz_reco_data_validation.npy", "jet_data_original_training.npy", "W_data_scaling.npy",
                 "EcmPz_reco_data_scaling.npy"):
        assert must in names
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary dirs left
    man = json.loads((out / "prepare.json").read_text())
    assert man["format"] == "hepml-prepared" and man["augment"] == AUGMENT and man["seed"] == 42
    assert man["source"]["kind"] == "hepml-generator" and man["source"]["seed"] == 21


def test_shapes_and_split(prepared):
    out, report = prepared
    n_train = int(0.7 * N_EVENTS)
    n_val = N_EVENTS - n_train
    c = AUGMENT + 1
    assert report["n_events"] == {"training": n_train, "validation": n_val} and report["n_dropped"] == 0
    for split, n in (("training", n_train), ("validation", n_val)):
        want = {"jet_data": (c * n, 13, 5), "lepton_data": (c * n, 2, 3), "met_data": (c * n, 1, 2),
                "W_data": (c * n, 2, 4), "W_ordered_data": (c * n, 2, 4), "nu_data": (c * n, 2, 3),
                "nu_ordered_data": (c * n, 2, 3), "x1x2_data": (c * n, 2), "EcmPz_data": (c * n, 2),
                "EcmPz_reco_data": (c * n, 2)}
        for name, shape in want.items():
            for suffix in ("", "_original"):
                a = np.load(out / f"{name}{suffix}_{split}.npy", mmap_mode="r")
                assert a.shape == shape and a.dtype == np.float32, (name, suffix, split)
        jm = load(out, f"jet_padding_mask_{split}")
        assert jm.shape == (c * n, 13) and jm.dtype == np.bool_
        jlm = load(out, f"jetlepmet_padding_mask_{split}")
        assert jlm.shape == (c * n, 16) and jlm.dtype == np.bool_
    for name, f in (("jet_data", 4), ("lepton_data", 3), ("met_data", 2), ("W_data", 4), ("nu_data", 3),
                    ("x1x2_data", 2), ("EcmPz_data", 2), ("EcmPz_reco_data", 2)):
        sc = load(out, f"{name}_scaling")
        assert sc.shape == (f, 2) and sc.dtype == np.float64 and np.all(sc[:, 1] > 0)


def test_originals_are_the_input_events(prepared, gen_dir):
    out, _ = prepared
    cols = hd.load_events(gen_dir)
    n_train = int(0.7 * N_EVENTS)
    jo = load(out, "jet_data_original_training")[:n_train]
    for j, f in enumerate(("pt", "eta", "phi", "mass")):
        assert np.array_equal(jo[:, :2, j], cols[f"VBSJets_{f}"][:n_train])
    off = cols["nonVBSJets_offsets"]
    for i in (0, 5, 17, n_train - 1):
        k = off[i + 1] - off[i]
        assert np.array_equal(jo[i, 2:2 + k, 0], cols["nonVBSJets_pt"][off[i]:off[i + 1]])
        assert np.all(jo[i, 2 + k:] == 0)
    assert np.all(jo[:, :2, 4] == 1) and np.all(jo[:, 2:, 4] == 0)
    lo = load(out, "lepton_data_original_validation")[:N_EVENTS - n_train]
    assert np.array_equal(lo[:, :, 0], cols["LeptonGood_pt"][n_train:])
    wo = load(out, "W_data_original_training")[:n_train]
    assert np.array_equal(wo[:, 0, 3], cols["W1_mass"][:n_train]) and np.array_equal(wo[:, 1, 0],
                                                                                     cols["W2_pt"][:n_train])
    mo = load(out, "met_data_original_training")[:n_train]
    assert np.array_equal(mo[:, 0, 1], cols["PuppiMET_phi"][:n_train])


def test_masks(prepared):
    out, _ = prepared
    for split in ("training", "validation"):
        jo = load(out, f"jet_data_original_{split}")
        jm = load(out, f"jet_padding_mask_{split}")
        assert np.array_equal(jm, jo[..., 0] > 0)
        assert np.all(jm[:, :2])
        jlm = load(out, f"jetlepmet_padding_mask_{split}")
        assert np.array_equal(jlm[:, :13], jm) and np.all(jlm[:, 13:])
        js = load(out, f"jet_data_{split}")
        assert np.all(js[~jm][:, :4] == 0)           # padded jets are zero after standardisation
        assert np.array_equal(js[..., 4], jo[..., 4])  # the VBS label is not standardised


def test_rotations(prepared):
    out, _ = prepared
    n = int(0.7 * N_EVENTS)
    c = AUGMENT + 1
    jets = load(out, "jet_data_original_training").reshape(c, n, 13, 5)
    mask = load(out, "jet_padding_mask_training").reshape(c, n, 13)
    lep = load(out, "lepton_data_original_training").reshape(c, n, 2, 3)
    met = load(out, "met_data_original_training").reshape(c, n, 1, 2)
    w = load(out, "W_data_original_training").reshape(c, n, 2, 4)
    nu = load(out, "nu_data_original_training").reshape(c, n, 2, 3)
    x12 = load(out, "x1x2_data_original_training").reshape(c, n, 2)
    for k in range(1, c):
        # pt, eta, m and the label unchanged; one angle turns the whole event
        assert np.array_equal(jets[k][..., [0, 1, 3, 4]], jets[0][..., [0, 1, 3, 4]])
        assert np.array_equal(lep[k][..., :2], lep[0][..., :2])
        assert np.array_equal(x12[k], x12[0])
        angle = wrap(met[k, :, 0, 1] - met[0, :, 0, 1])
        for arr, phi_col in ((lep, 2), (w, 2), (nu, 2)):
            d = wrap(arr[k][..., phi_col] - arr[0][..., phi_col] - angle[:, None])
            assert np.abs(d).max() < 1e-5
        d = wrap(jets[k][..., 2] - jets[0][..., 2] - angle[:, None])
        assert np.abs(d[mask[0]]).max() < 1e-5
        phi = jets[k][..., 2][mask[k]]
        assert phi.min() > -np.float32(np.pi) and phi.max() <= np.float32(np.pi)
    # angles uniform in (-pi, pi), independent across copies and events
    angles = wrap(met[1:, :, 0, 1] - met[0, :, 0, 1]).ravel()
    assert abs(angles.mean()) < 0.05 and abs(angles.std() - np.pi / np.sqrt(3)) < 0.05
    assert np.all(np.abs(wrap(met[1, :, 0, 1] - met[2, :, 0, 1])) > 0)


def test_targets(prepared):
    out, _ = prepared
    for split in ("training", "validation"):
        w = load(out, f"W_data_original_{split}")
        wo = load(out, f"W_ordered_data_original_{split}")
        assert np.all(wo[:, 0, 1] >= wo[:, 1, 1])
        swapped = w[:, 1, 1] > w[:, 0, 1]
        assert np.array_equal(wo[swapped], w[swapped][:, ::-1]) and np.array_equal(wo[~swapped], w[~swapped])
        nu = load(out, f"nu_data_original_{split}")
        nuo = load(out, f"nu_ordered_data_original_{split}")
        assert np.all(nuo[:, 0, 1] >= nuo[:, 1, 1])
        assert np.array_equal(np.sort(nuo[:, :, 0], 1), np.sort(nu[:, :, 0], 1))
        x = load(out, f"x1x2_data_original_{split}").astype(np.float64)
        e = load(out, f"EcmPz_data_original_{split}")
        np.testing.assert_allclose(e[:, 0], 6500 * (x[:, 0] + x[:, 1]), rtol=1e-6)
        np.testing.assert_allclose(e[:, 1], 6500 * (x[:, 0] - x[:, 1]), rtol=1e-6, atol=1e-3)


def test_reco_total_against_numpy(prepared):
    out, _ = prepared
    jo = load(out, "jet_data_original_training").astype(np.float64)
    jm = load(out, "jet_padding_mask_training")
    lo = load(out, "lepton_data_original_training").astype(np.float64)
    mo = load(out, "met_data_original_training").astype(np.float64)
    reco = load(out, "EcmPz_reco_data_original_training")

    def p4(pt, eta, phi, m):
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        return np.stack([px, py, pz, np.sqrt(px ** 2 + py ** 2 + pz ** 2 + m ** 2)], -1)

    tot = (p4(*[jo[..., j] for j in range(4)]) * jm[..., None]).sum(1)
    tot += p4(lo[..., 0], lo[..., 1], lo[..., 2], 0 * lo[..., 0]).sum(1)
    tot += p4(mo[..., 0], 0 * mo[..., 0], mo[..., 1], 0 * mo[..., 0]).sum(1)
    np.testing.assert_allclose(reco[:, 0], tot[:, 3], rtol=2e-6)
    np.testing.assert_allclose(reco[:, 1], tot[:, 2], rtol=2e-6, atol=1e-6 * tot[:, 3].max())


@pytest.mark.parametrize("name, masked", [("jet_data", True), ("lepton_data", False), ("met_data", False),
                                          ("W_data", False), ("W_ordered_data", False), ("nu_data", False),
                                          ("nu_ordered_data", False), ("x1x2_data", False),
                                          ("EcmPz_data", False), ("EcmPz_reco_data", False)])
def test_scaling_statistics_and_round_trip(prepared, name, masked):
    out, _ = prepared
    spec = hp.COURSE_SCALINGS[name]
    f = len(spec)
    sc = load(out, f"{name}_scaling")
    for split in ("training", "validation"):
        orig = load(out, f"{name}_original_{split}")
        data = load(out, f"{name}_{split}")
        mask = load(out, f"jet_padding_mask_{split}") if masked else np.ones(orig.shape[:-1], bool)
        ref = ref_scale(orig[..., :f], spec)[mask]
        if split == "training":
            # mean/std over the valid entries of the scaled training data (NumPy reference)
            np.testing.assert_allclose(sc[:, 0], ref.mean(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(sc[:, 1], ref.std(0), rtol=1e-5)
            got = data[mask][:, :f].astype(np.float64)
            np.testing.assert_allclose(got.mean(0), 0, atol=1e-4)
            np.testing.assert_allclose(got.std(0), 1, atol=1e-4)
        np.testing.assert_allclose(data[mask][:, :f], (ref - sc[:, 0]) / sc[:, 1], rtol=1e-4, atol=2e-5)
        # back to physical units
        back = hd.unscale(name, data, sc, mask=mask if masked else None)
        err = np.abs(back[mask][:, :f] - orig[mask][:, :f])
        tol = 2e-4 * np.abs(orig[mask][:, :f]) + 2e-4
        assert np.all(err <= tol), (name, split, err.max())
        if masked:
            assert np.all(back[~mask][:, :4] == 0)


def test_determinism_and_seed(gen_dir, prepared, tmp_path):
    out, _ = prepared
    old = hepml.get_num_threads()
    try:
        hepml.set_num_threads(1)
        hd.prepare(gen_dir, tmp_path / "a", augment=AUGMENT, seed=42, progress=False, verbose=False)
    finally:
        hepml.set_num_threads(old)
    for name in ("jet_data_training", "W_ordered_data_validation", "met_data_original_training",
                 "jetlepmet_padding_mask_validation", "EcmPz_reco_data_training"):
        assert load(tmp_path / "a", name).tobytes() == load(out, name).tobytes(), name
    hd.prepare(gen_dir, tmp_path / "b", augment=2, seed=43, progress=False, verbose=False)
    a, b = load(out, "met_data_original_training"), load(tmp_path / "b", "met_data_original_training")
    n = b.shape[0] // 3
    assert np.array_equal(a[:n], b[:n])              # the originals do not depend on the seed
    assert not np.array_equal(a[n:2 * n], b[n:2 * n])  # the rotations do


def test_no_augmentation(gen_dir, tmp_path):
    r = hd.prepare(gen_dir, tmp_path / "p", augment=0, split=0.5, progress=False, verbose=False)
    assert r["copies"] == 1
    assert load(tmp_path / "p", "jet_data_training").shape == (N_EVENTS // 2, 13, 5)


def test_scaling_from_reuses_the_given_statistics(gen_dir, prepared, tmp_path):
    """A held-out sample standardised with another preparation's statistics: its scaling
    files are that preparation's, and unscaling recovers its own originals."""
    prepared, _ = prepared
    out = tmp_path / "heldout"
    r = hd.prepare(gen_dir, out, augment=0, split=0.5, progress=False, verbose=False, scaling_from=prepared)
    assert r["scaling_from"] == str(prepared)
    for name in ("W_data", "jet_data", "nu_data", "EcmPz_data"):
        np.testing.assert_array_equal(np.load(out / f"{name}_scaling.npy"), np.load(prepared / f"{name}_scaling.npy"))
    w = load(out, "W_data_validation")
    w_orig = load(out, "W_data_original_validation")
    sc = np.load(prepared / "W_data_scaling.npy")
    back = hd.unscale("W_data", w, sc)
    np.testing.assert_allclose(back[..., [0, 1, 3]], w_orig[..., [0, 1, 3]], rtol=2e-4, atol=2e-3)


def test_scaling_from_must_be_a_prepared_dir(gen_dir, tmp_path):
    with pytest.raises(ValueError, match="'scaling_from' = .* has no jet_data_scaling.npy"):
        hd.prepare(gen_dir, tmp_path / "x", augment=0, split=0.5, progress=False, verbose=False,
                   scaling_from=tmp_path)


# ------------------------------------------------------------------ bad input

def small_columns(n=400, seed=3, **config):
    return {k: np.array(v) for k, v in hd.generate(n, seed, progress=False, config=config or None).items()}


def test_missing_columns_named(tmp_path):
    cols = small_columns()
    del cols["PuppiMET_phi"], cols["W2_mass"]
    with pytest.raises(ValueError, match=r"PuppiMET_phi.*W2_mass|W2_mass.*PuppiMET_phi"):
        hd.prepare(cols, tmp_path / "o", progress=False, verbose=False)
    assert not (tmp_path / "o").exists()


def test_nan_rows_counted_and_dropped(tmp_path):
    cols = small_columns(1000)
    cols["PuppiMET_pt"][[3, 10]] = np.nan
    cols["W1_eta"][20] = np.inf
    off = cols["nonVBSJets_offsets"]
    i = int(np.nonzero(np.diff(off) > 0)[0][0])   # an event with an extra jet
    cols["nonVBSJets_mass"][off[i]] = np.nan
    bad = {3, 10, 20, i}
    with pytest.warns(hd.DataQualityWarning, match=f"dropped {len(bad)} of 1000"):
        r = hd.prepare(cols, tmp_path / "o", augment=1, progress=False, verbose=False)
    assert r["n_dropped"] == len(bad)
    assert r["drop_reasons"]["NaN/inf in PuppiMET"] == 2 and r["drop_reasons"]["NaN/inf in W1/W2"] == 1
    assert r["drop_reasons"]["NaN/inf in nonVBSJets"] == 1
    assert sum(r["drop_reasons"].values()) == len(bad)  # each event counted once, under its first reason
    kept = [k for k in range(1000) if k not in bad]
    n_train = int(0.7 * len(kept))
    assert r["n_events"]["training"] == n_train
    for split in ("training", "validation"):
        for name in ("jet_data", "met_data", "W_data", "nu_data", "EcmPz_reco_data"):
            assert np.all(np.isfinite(load(tmp_path / "o", f"{name}_{split}")))
    met = load(tmp_path / "o", "met_data_original_training")[:n_train, 0, 0]
    assert np.array_equal(met, cols["PuppiMET_pt"][kept[:n_train]])
    man = json.loads((tmp_path / "o" / "prepare.json").read_text())
    assert man["n_dropped"] == len(bad)


def test_low_met_dropped_not_nan(tmp_path):
    cols = small_columns(2000, seed=5, met_min=0.0)
    low = int(np.sum(cols["PuppiMET_pt"] <= 14))
    assert low > 0
    with pytest.warns(hd.DataQualityWarning, match="PuppiMET_pt <= 14"):
        r = hd.prepare(cols, tmp_path / "o", augment=1, progress=False, verbose=False)
    assert r["n_dropped"] == low
    assert np.all(np.isfinite(load(tmp_path / "o", "met_data_training")))


def test_empty_and_unusable_input(tmp_path):
    cols = small_columns(10)
    empty = {k: (v[:1] if k == "nonVBSJets_offsets" else v[:0]) for k, v in cols.items()}
    with pytest.raises(ValueError, match="no events"):
        hd.prepare(empty, tmp_path / "o", progress=False, verbose=False)
    allnan = dict(cols)
    allnan["PuppiMET_pt"] = np.full(10, np.nan, np.float32)
    with pytest.raises(ValueError, match="none of the 10"), pytest.warns(hd.DataQualityWarning):
        hd.prepare(allnan, tmp_path / "o", progress=False, verbose=False)
    with pytest.raises(ValueError, match="split"):
        hd.prepare(small_columns(1), tmp_path / "o", progress=False, verbose=False)
    assert not (tmp_path / "o").exists()


def test_bad_shapes_named(tmp_path):
    cols = small_columns(50)
    cols["LeptonGood_pt"] = cols["LeptonGood_pt"][:, :1].copy()
    with pytest.raises(ValueError, match="LeptonGood_pt"):
        hd.prepare(cols, tmp_path / "o", progress=False, verbose=False)
    cols = small_columns(50)
    cols["nonVBSJets_offsets"] = cols["nonVBSJets_offsets"][::-1].copy()
    with pytest.raises(ValueError, match="offsets"):
        hd.prepare(cols, tmp_path / "o", progress=False, verbose=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(augment=-1), "augment"), (dict(augment=1.5), "augment"), (dict(seed=-3), "seed"),
    (dict(split=1.5), "split"), (dict(split=0), "split"), (dict(max_events=0), "max_events"),
])
def test_bad_arguments(gen_dir, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        hd.prepare(gen_dir, tmp_path / "o", progress=False, verbose=False, **kwargs)


def test_bad_paths(gen_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        hd.prepare(tmp_path / "nothing", tmp_path / "o", progress=False, verbose=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither"):
        hd.prepare(tmp_path / "empty", tmp_path / "o", progress=False, verbose=False)
    with pytest.raises(ValueError, match="out_dir"):
        hd.prepare(gen_dir, gen_dir, progress=False, verbose=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        hd.prepare(gen_dir, foreign, augment=0, progress=False, verbose=False, max_events=100)
    assert (foreign / "notes.txt").exists()


def test_max_events(gen_dir, tmp_path):
    r = hd.prepare(gen_dir, tmp_path / "o", augment=0, max_events=200, progress=False, verbose=False)
    assert r["n_input_events"] == 200 and r["n_events"]["training"] == 140


# ------------------------------------------------------------------ parquet input

def _write_parquet(cols, path):
    ak = pytest.importorskip("awkward")
    pytest.importorskip("pyarrow")
    counts = np.diff(cols["nonVBSJets_offsets"])

    def fixed(prefix, feats):  # [N, 2] columns -> var-length lists of records, as in the course's ntuples
        return ak.from_regular(ak.zip({f: ak.from_numpy(np.asarray(cols[f"{prefix}_{f}"])) for f in feats}),
                               axis=1)

    rec = {
        "VBSJets": fixed("VBSJets", ("pt", "eta", "phi", "mass")),
        "nonVBSJets": ak.zip({f: ak.unflatten(np.asarray(cols[f"nonVBSJets_{f}"]), counts)
                              for f in ("pt", "eta", "phi", "mass")}),
        "LeptonGood": fixed("LeptonGood", ("pt", "eta", "phi", "pdgId")),
    }
    for name in ("PuppiMET_pt", "PuppiMET_phi", "Generator_x1", "Generator_x2") + tuple(
            f"{p}_{f}" for p in ("Neutrino1", "Neutrino2") for f in ("pt", "eta", "phi")) + tuple(
            f"{p}_{f}" for p in ("W1", "W2") for f in ("pt", "eta", "phi", "mass")):
        rec[name] = np.asarray(cols[name]).astype(np.float64)  # the reader converts to float32
    arr = ak.zip(rec, depth_limit=1)
    ak.to_parquet(arr, path)


def test_parquet_input_matches_generator_input(gen_dir, prepared, tmp_path):
    cols = hd.load_events(gen_dir)
    _write_parquet(cols, tmp_path / "events.parquet")
    hd.prepare(tmp_path / "events.parquet", tmp_path / "o", augment=AUGMENT, seed=42, progress=False,
               verbose=False)
    out, _ = prepared
    for name in ("jet_data_training", "nu_ordered_data_validation", "EcmPz_reco_data_training",
                 "jetlepmet_padding_mask_training", "met_data_original_validation"):
        assert load(tmp_path / "o", name).tobytes() == load(out, name).tobytes(), name


def test_parquet_wrong_multiplicity_dropped(tmp_path):
    ak = pytest.importorskip("awkward")
    pytest.importorskip("pyarrow")
    cols = small_columns(300)
    _write_parquet(cols, tmp_path / "a.parquet")
    arr = ak.from_parquet(tmp_path / "a.parquet")
    lep = arr["LeptonGood"]
    keep = ak.Array([[True, True]] * 5 + [[True, False]] + [[True, True]] * 294)
    arr = ak.with_field(arr, lep[keep], "LeptonGood")
    ak.to_parquet(arr, tmp_path / "b.parquet")
    with pytest.warns(hd.DataQualityWarning, match="without exactly 2 objects: 1"):
        r = hd.prepare(tmp_path / "b.parquet", tmp_path / "o", augment=0, progress=False, verbose=False)
    assert r["n_dropped"] == 1
    arr = ak.without_field(ak.from_parquet(tmp_path / "a.parquet"), "PuppiMET_phi")
    ak.to_parquet(arr, tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="PuppiMET_phi"):
        hd.prepare(tmp_path / "c.parquet", tmp_path / "o2", progress=False, verbose=False)


def test_parquet_without_awkward_says_so(tmp_path, monkeypatch):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "awkward", None)
    with pytest.raises(ImportError, match="awkward"):
        hd.prepare(tmp_path / "x.parquet", tmp_path / "o", progress=False, verbose=False)


# ------------------------------------------------------------------ CLI

def test_cli_prepare(gen_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hepml.data", "prepare", "--input", str(gen_dir), "--out",
                        str(tmp_path / "o"), "--augment", "2", "--seed", "7", "--no-progress"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "training 2100 events x 3 copies" in r.stdout
    assert np.load(tmp_path / "o" / "jet_data_training.npy").shape == (6300, 13, 5)
    r = subprocess.run([sys.executable, "-m", "hepml.data", "prepare", "--input", str(gen_dir), "--out",
                        str(tmp_path / "p"), "--augment", "-2", "--no-progress"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "augment" in r.stderr


# ------------------------------------------------------------------ hepml.physics

def test_four_vectors_against_numpy():
    rng = np.random.default_rng(0)
    x = np.stack([rng.uniform(1, 300, 500), rng.uniform(-4, 4, 500), rng.uniform(-3.1, 3.1, 500),
                  rng.uniform(0, 20, 500)], -1).astype(np.float32)
    p = hp.to_cartesian(x).astype(np.float64)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(p[:, 0], xd[:, 0] * np.cos(xd[:, 2]), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(p[:, 2], xd[:, 0] * np.sinh(xd[:, 1]), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(p[:, 3], np.sqrt(p[:, :3].__pow__(2).sum(1) + xd[:, 3] ** 2), rtol=1e-6)
    back = hp.to_ptetaphim(hp.to_cartesian(x))
    np.testing.assert_allclose(back[:, :3], x[:, :3], rtol=1e-5, atol=1e-5)
    # m from E^2 - p^2 of float32 components: m^2 carries an error of order 1e-7 E^2
    e2 = p[:, 3] ** 2
    assert np.all(np.abs(back[:, 3].astype(np.float64) ** 2 - xd[:, 3] ** 2) <= 1e-6 * e2 + 1e-6)
    # tensors in, tensors out
    t = hp.to_cartesian(hepml.tensor(x))
    assert isinstance(t, hepml.Tensor) and np.array_equal(t.numpy(), hp.to_cartesian(x))
    pair = x[:10].reshape(5, 2, 4)
    m = hp.invariant_mass(pair).astype(np.float64)
    s = hp.to_cartesian(pair).astype(np.float64).sum(1)
    np.testing.assert_allclose(m, np.sqrt(s[:, 3] ** 2 - (s[:, :3] ** 2).sum(1)), rtol=1e-4)
    met = np.array([[50.0, 1.0]], np.float32)
    np.testing.assert_allclose(hp.to_cartesian(met)[0], [50 * np.cos(1), 50 * np.sin(1), 0, 50], rtol=1e-6)


def test_phi_helpers():
    phi = np.array([0.0, 3.0, 4.0, -4.0, 7 * np.pi, -np.pi], np.float32)
    w = hp.wrap_phi(phi)
    assert np.all(w > -np.float32(np.pi)) and np.all(w <= np.float32(np.pi))
    np.testing.assert_allclose(np.cos(w), np.cos(phi.astype(np.float64)), atol=1e-5)
    d = hp.delta_phi(np.float32([3.0, -3.0]), np.float32([-3.0, 3.0]))
    np.testing.assert_allclose(d, [6 - 2 * np.pi, 2 * np.pi - 6], atol=1e-6)
    ev = np.array([[[50, 0.5, 3.0], [30, -1, -3.0]]], np.float32)
    r = hp.rotate_phi(ev, 0.5)
    np.testing.assert_allclose(r[0, :, 2], wrap(np.float32([3.5, -2.5])), atol=1e-6)
    assert np.array_equal(r[..., :2], ev[..., :2])
    m = hp.rotate_phi(ev, np.float32([1.0]), mask=np.array([[True, False]]))
    assert np.all(m[0, 1] == 0)
    with pytest.raises(ValueError, match="angle"):
        hp.rotate_phi(ev, np.zeros(3, np.float32))


def test_scalings_round_trip_and_domain():
    rng = np.random.default_rng(1)
    pt = rng.uniform(30.5, 2000, 1000).astype(np.float32)
    y = hp.scale_log_pt(pt, 30)
    np.testing.assert_allclose(y, np.log1p(pt.astype(np.float64) - 30), rtol=1e-6)
    np.testing.assert_allclose(hp.unscale_log_pt(y, 30), pt, rtol=1e-6)
    phi = rng.uniform(-np.pi, np.pi, 1000).astype(np.float32)
    yp = hp.scale_logit_phi(phi)
    np.testing.assert_allclose(hp.unscale_logit_phi(yp), phi, atol=2e-6)
    assert hp.scale_logit_phi(np.float32([0.0]))[0] == 0
    m = rng.uniform(0, 100, 1000).astype(np.float32)
    np.testing.assert_allclose(hp.unscale_log1p(hp.scale_log1p(m)), m, rtol=1e-6, atol=1e-6)
    assert hp.scale_log_pt(np.float32([0.0]), 30)[0] == 0  # padding stays 0
    with pytest.raises(ValueError, match="no finite image"):
        hp.scale_log_pt(np.float32([10.0]), 15)
    assert np.isnan(hp.scale_log_pt(np.float32([10.0]), 15, on_invalid="keep")[0])
    with pytest.raises(ValueError, match="no finite image"):
        hp.scale_log1p(np.float32([np.nan]))
    t = hp.unscale_log_pt(hepml.tensor(y), 30, mask=np.zeros(1000, bool))
    assert isinstance(t, hepml.Tensor) and np.all(t.numpy() == 0)


def test_masked_mean_std_against_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(3, 2, (2000, 13, 5)).astype(np.float32)
    mask = rng.uniform(size=(2000, 13)) < 0.3
    mean, std = hp.masked_mean_std(x, mask, features=4)
    ref = x[mask][:, :4].astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(std, ref.std(0), rtol=1e-10)
    old = hepml.get_num_threads()
    try:
        hepml.set_num_threads(1)
        m1, s1 = hp.masked_mean_std(x, mask, features=4)
    finally:
        hepml.set_num_threads(old)
    assert np.array_equal(m1, mean) and np.array_equal(s1, std)
    z = hp.standardize(x, mean, std, mask)
    assert np.all(z[~mask][:, :4] == 0) and np.array_equal(z[..., 4], x[..., 4])
    np.testing.assert_allclose(z[mask][:, :4].mean(0), 0, atol=1e-5)
    back = hp.unstandardize(z, mean, std, mask)
    np.testing.assert_allclose(back[mask], x[mask], rtol=1e-5, atol=1e-5)
    c = np.ones((10, 2), np.float32)
    mc, sc = hp.masked_mean_std(c)
    assert np.all(sc == 0) and np.all(hp.standardize(c, mc, sc) == 0)  # constant features become 0, not NaN
    with pytest.raises(ValueError, match="no valid rows"):
        hp.masked_mean_std(x, np.zeros((2000, 13), bool))
    with pytest.raises(ValueError, match="mask"):
        hp.masked_mean_std(x, np.ones((2000, 12), bool))
    with pytest.raises(TypeError, match="bool"):
        hp.standardize(x, mean, std, np.ones((2000, 13), np.float32))


def test_pairs_padding_ecm():
    x = np.array([[[1, -1.0, 0], [2, 1.0, 0]], [[3, 2.0, 0], [4, 0.5, 0]]], np.float32)
    o, sw = hp.order_by_eta(x)
    assert list(sw) == [True, False] and o[0, 0, 0] == 2 and o[1, 0, 0] == 3
    assert np.array_equal(hp.swap_pairs(x, sw), o)
    lead = np.ones((2, 2, 4), np.float32)
    other = np.arange(3 * 4, dtype=np.float32).reshape(3, 4) + 1
    jets, mask, trunc = hp.pad_jets(lead, other, np.array([0, 1, 3]))
    assert jets.shape == (2, 13, 5) and trunc == 0
    assert np.array_equal(mask.sum(1), [3, 4]) and np.array_equal(jets[1, 2:4, :4], other[1:3])
    assert np.array_equal(jets[:, :, 4].sum(1), [2, 2])
    with pytest.raises(ValueError, match="offsets"):
        hp.pad_jets(lead, other, np.array([0, 2, 5]))
    e = hp.ecm_pz(np.float32([[0.1, 0.05]]))
    np.testing.assert_allclose(e, [[975.0, 325.0]], rtol=1e-6)


def test_binding_argument_errors():
    from hepml import _C
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(TypeError, match=r"phys_scale\(\): argument 'x' must have dtype float32"):
        _C.phys_scale("log_pt", x, x.astype(np.float64), 0, 15.0)
    with pytest.raises(ValueError, match="'col' = 3"):
        _C.phys_scale("log_pt", x, x, 3, 15.0)
    with pytest.raises(ValueError, match="kind"):
        _C.phys_scale("sqrt", x, x, 0, 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.phys_scale("log_pt", x, np.zeros((3, 4), np.float32).T, 0, 15.0)
    ro = np.zeros((4, 3), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        _C.phys_scale("log_pt", ro, x, 0, 15.0)
    with pytest.raises(ValueError, match="'out' has shape"):
        _C.phys_to_cartesian(np.zeros((4, 3), np.float32), x)
    with pytest.raises(IndexError, match="out of range"):
        _C.data_gather_rows(np.zeros((1, 3), np.float32), x, np.array([4]))


# ------------------------------------------------------------------ caching helpers

def test_load_or_prepare_reuses(gen_dir, tmp_path, capsys):
    out = tmp_path / "c"
    r1 = hd.load_or_prepare(gen_dir, out, augment=1, seed=5, progress=True, verbose=True)
    t = (out / "prepare.json").stat().st_mtime_ns
    r2 = hd.load_or_prepare(gen_dir, out, augment=1, seed=5, progress=False, verbose=True)
    assert (out / "prepare.json").stat().st_mtime_ns == t and "(cached)" in capsys.readouterr().out
    assert r2["n_rows"] == r1["n_rows"]
    hd.load_or_prepare(gen_dir, out, augment=1, seed=6, progress=False, verbose=False)
    assert (out / "prepare.json").stat().st_mtime_ns != t


def test_course_dataset_quick_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPML_PROFILE", "quick")
    monkeypatch.setenv("HEPML_DATA_DIR", str(tmp_path))
    path = hd.course_dataset(n_events=300, augment=1, progress=False, verbose=False)
    ds = hd.NumpyDataset(path, split="validation")
    assert len(ds) == 2 * 90 and ds["jet_data"].shape == (180, 13, 5)
    assert hd.course_dataset(n_events=300, augment=1, progress=False, verbose=False) == path
