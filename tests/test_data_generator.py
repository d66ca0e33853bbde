"""hepml.data.generate: the course's WW sample at the Python level.

Conservation (partonic four-momentum, W -> l nu masses), distributions (W line
shape, acceptance, charges), determinism (seed, thread count, chunk size), the
files it writes, the CLI and bad arguments. NumPy arithmetic here is the reference.
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
M_W, GAMMA_W = 80.377, 2.085


@pytest.fixture(scope="module")
def cols():
    return hd.generate(20000, 7, progress=False)


@pytest.fixture(scope="module")
def raw():
    return hd.generate_raw(4000, 11, truth=True)


def test_columns_names_shapes_dtypes(cols):
    n = 20000
    assert set(cols) == set(hd.COLUMNS)
    for f in ("pt", "eta", "phi", "mass"):
        assert cols[f"VBSJets_{f}"].shape == (n, 2) and cols[f"VBSJets_{f}"].dtype == np.float32
        assert cols[f"VBSPartons_{f}"].shape == (n, 2)
        assert cols[f"W1_{f}"].shape == (n,) and cols[f"W2_{f}"].shape == (n,)
        assert cols[f"nonVBSJets_{f}"].ndim == 1
    for f in ("pt", "eta", "phi"):
        assert cols[f"LeptonGood_{f}"].shape == (n, 2)
        assert cols[f"Neutrino1_{f}"].shape == (n,) and cols[f"Neutrino2_{f}"].shape == (n,)
    assert cols["LeptonGood_pdgId"].dtype == np.int32 and cols["LeptonGood_pdgId"].shape == (n, 2)
    assert cols["PuppiMET_pt"].shape == (n,) and cols["Generator_x1"].shape == (n,)
    off = cols["nonVBSJets_offsets"]
    assert off.dtype == np.int64 and off.shape == (n + 1,) and off[0] == 0
    counts = np.diff(off)
    assert counts.min() >= 0 and counts.max() <= 11
    assert off[-1] == cols["nonVBSJets_pt"].shape[0]
    assert cols["Generator_trials"].min() >= 1


def test_w_line_shape(cols):
    m = np.concatenate([cols["W1_mass"], cols["W2_mass"]]).astype(np.float64)
    assert abs(np.median(m) - M_W) < 0.1
    q1, q3 = np.percentile(m, [25, 75])
    # a Breit-Wigner has its quartiles at M -+ Gamma/2 (the truncation at 15 widths barely moves them)
    assert abs((q3 - q1) - GAMMA_W) < 0.15 * GAMMA_W
    assert m.min() >= M_W - 15 * GAMMA_W - 1e-3 and m.max() <= M_W + 15 * GAMMA_W + 1e-3
    assert np.all(cols["W1_pt"] >= cols["W2_pt"])  # W1 = the harder W


def test_acceptance_and_selection(cols):
    lpt, leta = cols["LeptonGood_pt"], cols["LeptonGood_eta"]
    assert lpt.min() > 20 and np.abs(leta).max() < 2.5
    assert np.all(lpt[:, 0] >= lpt[:, 1])
    for pre in ("VBSJets", "nonVBSJets"):
        assert cols[f"{pre}_pt"].min() > 30 and np.abs(cols[f"{pre}_eta"]).max() < 4.7
    assert np.all(cols["VBSJets_pt"][:, 0] >= cols["VBSJets_pt"][:, 1])
    # the met_min default makes the course's log(1 + MET - 15) always defined
    assert cols["PuppiMET_pt"].min() >= 15.0
    pdg = cols["LeptonGood_pdgId"]
    assert np.all(np.sign(pdg[:, 0]) == np.sign(pdg[:, 1]))
    assert set(np.unique(np.abs(pdg))) == {11, 13}
    plus = np.mean(pdg[:, 0] < 0)
    assert 0.58 < plus < 0.68  # W+W+ : W-W- = 2 : 1 generated, ~0.63 after the lepton cuts
    for c in ("VBSJets_phi", "nonVBSJets_phi", "LeptonGood_phi", "PuppiMET_phi", "Neutrino1_phi"):
        phi = cols[c]
        assert phi.min() > -np.float32(np.pi) and phi.max() <= np.float32(np.pi)
    x1, x2 = cols["Generator_x1"], cols["Generator_x2"]
    assert x1.min() > 0 and x1.max() < 1 and x2.min() > 0 and x2.max() < 1
    assert np.all(np.sqrt(x1.astype(np.float64) * x2) * 13000 >= 300 - 1e-3)


def test_vbs_topology(cols):
    eta = cols["VBSJets_eta"].astype(np.float64)
    deta = np.abs(eta[:, 0] - eta[:, 1])
    assert np.median(deta) > 3.5  # forward tagging jets with a large rapidity gap
    jets = np.stack([cols[f"VBSJets_{f}"] for f in ("pt", "eta", "phi", "mass")], axis=-1)
    mjj = hp.invariant_mass(jets)
    assert np.median(mjj) > 500
    # extra jets: steeply falling multiplicity
    counts = np.diff(cols["nonVBSJets_offsets"])
    frac = np.bincount(counts, minlength=3)[:3] / counts.size
    assert frac[0] > frac[1] > frac[2]
    # pt-ordered within each event
    pt = cols["nonVBSJets_pt"]
    same_event = np.repeat(np.arange(counts.size), counts)
    d = np.diff(pt)
    assert np.all(d[same_event[1:] == same_event[:-1]] <= 0)


def test_w_to_lnu_masses(raw):
    # m(l nu) of the truth lepton and neutrino of each W equals the W mass
    for k in range(2):
        pair = np.stack([raw["leptons_truth"][:, k], raw["neutrinos"][:, k]], axis=1)  # [N, 2, 3], massless
        m = hp.invariant_mass(pair).astype(np.float64)
        np.testing.assert_allclose(m, raw["w_bosons"][:, k, 3], rtol=2e-4)


def test_four_momentum_conservation(raw):
    """W1 + W2 + both VBS quarks + every extra jet = the incoming partons."""
    n = raw["x1x2"].shape[0]
    objs = np.zeros((n, 15, 4), np.float32)
    objs[:, 0:2] = raw["w_bosons"]
    objs[:, 2:4] = raw["vbs_partons"]
    objs[:, 4:15] = raw["extra_jets_truth"]
    mask = np.zeros((n, 15), bool)
    mask[:, :4] = True
    mask[:, 4:] = np.arange(11)[None, :] < raw["n_extra_truth"][:, None]
    total = hp.p4_sum(objs, mask).astype(np.float64)
    ecm_pz = hp.ecm_pz(raw["x1x2"]).astype(np.float64)
    scale = ecm_pz[:, 0:1]
    # stored as float32 (pt, eta, phi): a relative error of a few 1e-7 per object
    np.testing.assert_allclose(total[:, 0] / scale[:, 0], 0, atol=2e-5)
    np.testing.assert_allclose(total[:, 1] / scale[:, 0], 0, atol=2e-5)
    np.testing.assert_allclose(total[:, 2] / scale[:, 0], ecm_pz[:, 1] / scale[:, 0], atol=2e-5)
    np.testing.assert_allclose(total[:, 3] / scale[:, 0], 1.0, atol=2e-5)
    # the W four-vector carries the sampled mass
    w4 = hp.to_cartesian(raw["w_bosons"].reshape(-1, 4)).astype(np.float64)
    m = np.sqrt(np.maximum(w4[:, 3] ** 2 - (w4[:, :3] ** 2).sum(1), 0))
    np.testing.assert_allclose(m, raw["w_bosons"].reshape(-1, 4)[:, 3], rtol=5e-3)


def test_generated_met_is_minus_visible_sum_plus_resolution(raw):
    # truth MET (sum of neutrinos) and reco MET agree up to resolution: a loose sanity check
    nu = hp.p4_sum(raw["neutrinos"]).astype(np.float64)
    met_true = np.hypot(nu[:, 0], nu[:, 1])
    met = raw["met"][:, 0].astype(np.float64)
    assert abs(np.median(met - met_true)) < 15
    assert np.corrcoef(met, met_true)[0, 1] > 0.8


def test_determinism_seed_chunks_threads():
    a = hd.generate(3000, 5, progress=False)
    b = hd.generate(3000, 5, progress=False, chunk_size=7)
    c = hd.generate(3000, 5, progress=False, chunk_size=1000)
    old = hepml.get_num_threads()
    try:
        hepml.set_num_threads(1)
        d = hd.generate(3000, 5, progress=False, chunk_size=512)
    finally:
        hepml.set_num_threads(old)
    e = hd.generate(3000, 6, progress=False)
    for name in a:
        for other in (b, c, d):
            assert a[name].tobytes() == other[name].tobytes(), name
    assert a["VBSJets_pt"].tobytes() != e["VBSJets_pt"].tobytes()
    # event i does not depend on how many events are generated
    f = hd.generate(1000, 5, progress=False)
    assert np.array_equal(f["W1_pt"], a["W1_pt"][:1000])


def test_files_manifest_and_atomic_write(tmp_path):
    out = tmp_path / "gen"
    cols = hd.generate(500, 3, out_dir=out, progress=False, config={"met_min": 20.0})
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 3 and man["n_events"] == 500
    assert man["config"]["met_min"] == 20.0 and man["config"]["w_mass"] == M_W
    assert man["hepml_version"] == hepml.__version__
    assert set(man["columns"]) == set(hd.COLUMNS)
    loaded = hd.load_events(out)
    assert isinstance(loaded["W1_pt"], np.memmap)
    for k in cols:
        assert np.array_equal(loaded[k], cols[k])
    assert cols["PuppiMET_pt"].min() >= 20.0
    # nothing temporary left behind; rewriting replaces the directory whole
    hd.generate(300, 4, out_dir=out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen"]
    assert hd.read_manifest(out)["n_events"] == 300
    assert len(list(out.glob("*.npy"))) == len(hd.COLUMNS)


def test_refuses_to_replace_foreign_directory(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not written by hepml"):
        hd.generate(10, 1, out_dir=foreign, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_load_or_generate_caches(tmp_path):
    out = tmp_path / "cache"
    a = hd.load_or_generate(400, 9, out, progress=False)
    t = (out / "manifest.json").stat().st_mtime_ns
    b = hd.load_or_generate(400, 9, out, progress=False)
    assert (out / "manifest.json").stat().st_mtime_ns == t
    assert np.array_equal(a["W1_pt"], b["W1_pt"])
    c = hd.load_or_generate(400, 10, out, progress=False)
    assert not np.array_equal(a["W1_pt"], c["W1_pt"])


def test_cli_generate(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "hepml.data", "generate", "--events", "300", "--seed", "2", "--out",
                        str(out), "--no-progress", "--threads", "1"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "generated 300 events" in r.stdout
    assert np.array_equal(np.load(out / "W1_pt.npy"), hd.generate(300, 2, progress=False)["W1_pt"])
    r = subprocess.run([sys.executable, "-m", "hepml.data", "generate", "--events", "0", "--seed", "2", "--out",
                        str(tmp_path / "x"), "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "n_events" in r.stderr


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(n_events=0, seed=1), ValueError, "n_events"),
    (dict(n_events=-5, seed=1), ValueError, "n_events"),
    (dict(n_events=2.5, seed=1), TypeError, "n_events"),
    (dict(n_events=10, seed=-1), ValueError, "seed"),
    (dict(n_events=10, seed="a"), TypeError, "seed"),
    (dict(n_events=10, seed=1, chunk_size=0), ValueError, "chunk_size"),
    (dict(n_events=10, seed=1, config={"no_such_key": 1.0}), ValueError, "no_such_key"),
    (dict(n_events=10, seed=1, config={"w_width": -1.0}), ValueError, "w_width"),
    (dict(n_events=10, seed=1, config={"met_min": "high"}), TypeError, "met_min"),
    (dict(n_events=10, seed=1, config=[1, 2]), TypeError, "config"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        hd.generate(progress=False, **kwargs)


def test_impossible_selection_is_an_error():
    with pytest.raises(RuntimeError, match="max_trials"):
        hd.generate(5, 1, progress=False, config={"lep_pt_min": 1e5, "max_trials": 3})


def test_default_config_documented():
    cfg = hd.default_config()
    assert cfg["met_min"] == 15.0 and cfg["w_mass"] == M_W and cfg["w_width"] == GAMMA_W
    readme = (ROOT / "datasets" / "README.md").read_text()
    assert "met_min = 15" in readme


def test_load_events_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        hd.load_events(tmp_path)
    out = tmp_path / "g"
    hd.generate(50, 1, out_dir=out, progress=False)
    os.remove(out / "W1_pt.npy")
    with pytest.raises(FileNotFoundError, match="W1_pt.npy"):
        hd.load_events(out)
