"""The course's dataset preparation (notebook 1), with every value computed in C.

``prepare(input_dir, out_dir)`` reads events (hepml's generator output, the course's
parquet ntuples, or a columns dict), drops and reports events that cannot be prepared,
splits them 70/30, augments each split with random rotations about the beam axis,
scales and standardises, and writes the course's files:

========================================  ====================  =========================================
file (``<split>`` = training/validation)  shape (N = copies*n)  content
========================================  ====================  =========================================
jet_data_<split>                          [N, 13, 5]            (pt, eta, phi, m) scaled + standardised,
                                                                then the VBS label (1 for the 2 VBS jets)
jet_padding_mask_<split>                  [N, 13] bool          True = real jet (pt > 0)
lepton_data_<split>                       [N, 2, 3]             (pt, eta, phi)
met_data_<split>                          [N, 1, 2]             (pt, phi)
jetlepmet_padding_mask_<split>            [N, 16] bool          jets, then 2 leptons and MET (always True)
W_data_<split>, W_ordered_data_<split>    [N, 2, 4]             truth W (pt, eta, phi, m); ordered: larger
                                                                eta first
nu_data_<split>, nu_ordered_data_<split>  [N, 2, 3]             truth neutrinos (pt, eta, phi)
x1x2_data_<split>                         [N, 2]                parton momentum fractions
EcmPz_data_<split>                        [N, 2]                (E_cm, p_z) = 6500 (x1 + x2, x1 - x2)
EcmPz_reco_data_<split>                   [N, 2]                (E, p_z) of all jets + leptons + MET
<name>_original_<split>                   as above              the same before scaling (physical units)
<name>_scaling                            [F, 2] float64        (mean, std) per feature, from training
========================================  ====================  =========================================

Scalings (before standardisation; hepml.physics.COURSE_SCALINGS): jets log(1 + pt - 30),
leptons and MET log(1 + pt - 15), W and neutrino pt log(1 + pt), masses log(1 + m),
energies log(1 + E), phi logit((phi + PI) / (2 PI)) with PI = 3.1416015625, eta and p_z
unchanged. Standardisation uses the training split's mean and std (valid jets only) for
both splits. Copies are copy-major: rows [c*n, (c+1)*n) are copy c; copy 0 is the
original, copies 1..augment are rotated by angles uniform in (-pi, pi), one per event and
copy, drawn from hepml's counter-based RNG with ``seed`` (independent of threads).
"""
import math
import time
import warnings
from pathlib import Path

import numpy as np

from .. import _C
from ..physics import BEAM_ENERGY, COURSE_SCALINGS
from . import generator as _gen
from ._io import (PREPARED_FORMAT, PREPARED_MANIFEST, atomic_dir, close_npy, hepml_version, open_npy, progress_bar,
                  write_json)

N_SLOTS = 13
SPLITS = ("training", "validation")


class DataQualityWarning(UserWarning):
    """Events were dropped from the input (non-finite values, values outside a scaling's domain)."""


# columns the preparation needs (VBSPartons and LeptonGood_pdgId are not used)
REQUIRED_COLUMNS = (
    [f"VBSJets_{f}" for f in ("pt", "eta", "phi", "mass")]
    + [f"nonVBSJets_{f}" for f in ("pt", "eta", "phi", "mass")] + ["nonVBSJets_offsets"]
    + [f"LeptonGood_{f}" for f in ("pt", "eta", "phi")]
    + ["PuppiMET_pt", "PuppiMET_phi"]
    + [f"Neutrino{k}_{f}" for k in (1, 2) for f in ("pt", "eta", "phi")]
    + [f"W{k}_{f}" for k in (1, 2) for f in ("pt", "eta", "phi", "mass")]
    + ["Generator_x1", "Generator_x2"]
)

# (group name, per-event array key, phi column or None (not rotated), standardised features)
_GROUPS = (
    ("jet_data", "jets", 2, 4),
    ("lepton_data", "leptons", 2, 3),
    ("met_data", "met", 1, 2),
    ("W_data", "W", 2, 4),
    ("W_ordered_data", "W_ordered", 2, 4),
    ("nu_data", "nu", 2, 3),
    ("nu_ordered_data", "nu_ordered", 2, 3),
    ("x1x2_data", "x1x2", None, 2),
    ("EcmPz_data", "EcmPz", None, 2),
    ("EcmPz_reco_data", "EcmPz_reco", None, 2),
)
_MASKS = (("jet_padding_mask", "jet_mask"), ("jetlepmet_padding_mask", "jetlepmet_mask"))


def output_files():
    """Every file name prepare() writes (besides prepare.json)."""
    names = []
    for split in SPLITS:
        for g, *_ in _GROUPS:
            names += [f"{g}_{split}.npy", f"{g}_original_{split}.npy"]
        names += [f"{m}_{split}.npy" for m, _ in _MASKS]
    names += [f"{g}_scaling.npy" for g, *_ in _GROUPS]
    return names


# ------------------------------------------------------------------ inputs

def _parquet_files(p):
    p = Path(p)
    if p.is_dir():
        return sorted(p.glob("*.parquet"))
    return [p] if p.suffix == ".parquet" else []


def read_input(source, rename=None):
    """Columns dict from: a directory written by hepml.data.generate, a directory of /
    path to / list of the course's parquet files, or a dict of columns. ``rename`` maps
    our column names to the input's (e.g. {"PuppiMET_pt": "MET_pt"})."""
    if isinstance(source, dict):
        cols = dict(source)
        if rename:
            cols.update({ours: source[theirs] for ours, theirs in rename.items() if theirs in source})
        return cols, {"kind": "columns"}
    if isinstance(source, (list, tuple)):
        files = [Path(s) for s in source]
        return read_parquet(files, rename), {"kind": "parquet", "files": [str(f) for f in files]}
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"prepare(): input {p} does not exist")
    if p.is_dir() and _gen.read_manifest(p) is not None:
        man = _gen.read_manifest(p)
        cols = _gen.load_events(p)
        if rename:
            cols.update({ours: cols[theirs] for ours, theirs in rename.items() if theirs in cols})
        return cols, {"kind": "hepml-generator", "path": str(p), "seed": man.get("seed"),
                      "n_events": man.get("n_events")}
    files = _parquet_files(p)
    if files:
        return read_parquet(files, rename), {"kind": "parquet", "files": [str(f) for f in files]}
    raise ValueError(f"prepare(): {p} is neither a dataset written by hepml.data.generate (no manifest.json) "
                     "nor a parquet file or a directory of parquet files")


def read_parquet(files, rename=None):
    """The course's parquet ntuples as a columns dict (needs awkward + pyarrow).

    Collections may be stored as records (``VBSJets.pt``) or as flat branches
    (``VBSJets_pt``). VBSJets and LeptonGood must hold exactly two objects per event;
    other events get NaN there and are dropped (and counted) by prepare()."""
    try:
        import awkward as ak
    except ImportError as e:
        raise ImportError("reading the course's parquet ntuples needs the 'awkward' and 'pyarrow' packages "
                          "(pip install awkward pyarrow); hepml's own generator output needs neither") from e
    if not files:
        raise ValueError("prepare(): no parquet files given")
    parts = [ak.from_parquet(str(f)) for f in files]
    ev = parts[0] if len(parts) == 1 else ak.concatenate(parts)
    rename = dict(rename or {})
    fields = list(ev.fields)

    def get(coll, feat):
        name = rename.get(f"{coll}_{feat}", f"{coll}_{feat}")
        if name in fields:
            return ev[name]
        if coll in fields and feat in ak.fields(ev[coll]):
            return ev[coll, feat]
        return None

    cols, missing = {}, []
    n = len(ev)
    mult_bad = np.zeros(n, np.bool_)
    for coll, feats in (("VBSJets", ("pt", "eta", "phi", "mass")), ("LeptonGood", ("pt", "eta", "phi"))):
        for f in feats:
            x = get(coll, f)
            if x is None:
                missing.append(f"{coll}_{f}")
                continue
            counts = ak.to_numpy(ak.num(x, axis=1))
            mult_bad |= counts != 2
            fixed = ak.fill_none(ak.pad_none(x, 2, clip=True), np.nan)
            cols[f"{coll}_{f}"] = np.ascontiguousarray(ak.to_numpy(fixed), dtype=np.float32)
    for name in ("PuppiMET_pt", "PuppiMET_phi", "Generator_x1", "Generator_x2") + tuple(
            f"{p}_{f}" for p in ("Neutrino1", "Neutrino2") for f in ("pt", "eta", "phi")) + tuple(
            f"{p}_{f}" for p in ("W1", "W2") for f in ("pt", "eta", "phi", "mass")):
        coll, f = name.split("_", 1)
        x = get(coll, f)
        if x is None:
            missing.append(name)
            continue
        cols[name] = np.ascontiguousarray(ak.to_numpy(ak.fill_none(x, np.nan)), dtype=np.float32)
    counts = None
    for f in ("pt", "eta", "phi", "mass"):
        x = get("nonVBSJets", f)
        if x is None:
            missing.append(f"nonVBSJets_{f}")
            continue
        if counts is None:
            counts = np.ascontiguousarray(ak.to_numpy(ak.num(x, axis=1)), dtype=np.int32)
        cols[f"nonVBSJets_{f}"] = np.ascontiguousarray(ak.to_numpy(ak.fill_none(ak.flatten(x), np.nan)),
                                                       dtype=np.float32)
    if missing:
        raise ValueError(f"prepare(): the parquet input lacks column(s) {missing}; it has fields {fields}. "
                         "Pass rename={'our_name': 'their_name'} if they are called differently.")
    offsets = np.empty(n + 1, np.int64)
    _C.data_offsets_from_counts(offsets, counts, 0, 2**31 - 1)
    cols["nonVBSJets_offsets"] = offsets
    if mult_bad.any():
        cols["_multiplicity_ok"] = np.ascontiguousarray(~mult_bad, dtype=np.uint8)
    return cols


def _column(cols, name, shape):
    a = cols[name]
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.dtype != np.float32:
        if not np.issubdtype(a.dtype, np.number):
            raise TypeError(f"prepare(): column {name} has dtype {a.dtype}, expected numbers")
        a = np.ascontiguousarray(a, dtype=np.float32)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"prepare(): column {name} has shape {a.shape}, expected {tuple(shape)}")
    return np.ascontiguousarray(a)


def pack_events(cols):
    """Event-level arrays of structures from the columns (C strided copies), checked."""
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"prepare(): the input lacks column(s) {missing} (see hepml.data.prepare.REQUIRED_COLUMNS)")
    vj = np.asarray(cols["VBSJets_pt"])
    if vj.ndim < 1 or vj.shape[0] == 0:
        raise ValueError("prepare(): the input holds no events")
    n = vj.shape[0]
    ev = {
        "vbs": np.empty((n, 2, 4), np.float32), "leptons": np.empty((n, 2, 3), np.float32),
        "met": np.empty((n, 1, 2), np.float32), "nu": np.empty((n, 2, 3), np.float32),
        "W": np.empty((n, 2, 4), np.float32), "x1x2": np.empty((n, 2), np.float32),
    }
    for j, f in enumerate(("pt", "eta", "phi", "mass")):
        _C.data_copy_column(ev["vbs"], 4, j, _column(cols, f"VBSJets_{f}", (n, 2)), 1, 0)
        for k in (1, 2):
            _C.data_copy_column(ev["W"], 8, 4 * (k - 1) + j, _column(cols, f"W{k}_{f}", (n,)), 1, 0)
    for j, f in enumerate(("pt", "eta", "phi")):
        _C.data_copy_column(ev["leptons"], 3, j, _column(cols, f"LeptonGood_{f}", (n, 2)), 1, 0)
        for k in (1, 2):
            _C.data_copy_column(ev["nu"], 6, 3 * (k - 1) + j, _column(cols, f"Neutrino{k}_{f}", (n,)), 1, 0)
    _C.data_copy_column(ev["met"], 2, 0, _column(cols, "PuppiMET_pt", (n,)), 1, 0)
    _C.data_copy_column(ev["met"], 2, 1, _column(cols, "PuppiMET_phi", (n,)), 1, 0)
    _C.data_copy_column(ev["x1x2"], 2, 0, _column(cols, "Generator_x1", (n,)), 1, 0)
    _C.data_copy_column(ev["x1x2"], 2, 1, _column(cols, "Generator_x2", (n,)), 1, 0)
    offsets = np.ascontiguousarray(cols["nonVBSJets_offsets"], dtype=np.int64)
    if offsets.shape != (n + 1,):
        raise ValueError(f"prepare(): column nonVBSJets_offsets has shape {offsets.shape}, expected ({n + 1},)")
    m = np.asarray(cols["nonVBSJets_pt"]).shape[0] if np.ndim(cols["nonVBSJets_pt"]) == 1 else -1
    if m < 0:
        raise ValueError(f"prepare(): column nonVBSJets_pt must be flat (jagged values), got shape "
                         f"{np.shape(cols['nonVBSJets_pt'])}")
    flat = np.empty((m, 4), np.float32)
    for j, f in enumerate(("pt", "eta", "phi", "mass")):
        _C.data_copy_column(flat, 4, j, _column(cols, f"nonVBSJets_{f}", (m,)), 1, 0)
    ev["other_flat"], ev["offsets"] = flat, offsets
    return n, ev


def _column_of(arr, stride, col, rows_shape):
    out = np.empty(rows_shape, np.float32)
    _C.data_copy_column(out, 1, 0, arr, stride, col)
    return out


def validate_events(n, ev, cols=None):
    """uint8 mask of the events that can be prepared, and the reasons for the others:
    reason -> number of events. Each dropped event is counted once, under the first
    reason found (so the counts add up to the number of dropped events)."""
    ok = np.ones(n, np.uint8)
    reasons = {}
    remaining = [n]

    def note(label):
        left = _C.data_mask_count(ok)
        if left < remaining[0]:
            reasons[label] = reasons.get(label, 0) + remaining[0] - left
            remaining[0] = left

    if cols is not None and "_multiplicity_ok" in cols:
        # parquet events without exactly two VBS jets / leptons (read_parquet): start from
        # their mask, so they are dropped whatever values the padding holds
        _C.data_copy(ok, np.ascontiguousarray(cols["_multiplicity_ok"], dtype=np.uint8))
        note("VBSJets or LeptonGood without exactly 2 objects")
    for label, key in (("VBSJets", "vbs"), ("LeptonGood", "leptons"), ("PuppiMET", "met"), ("Neutrino1/2", "nu"),
                       ("W1/W2", "W"), ("Generator_x1/x2", "x1x2")):
        _C.data_rows_finite(ok, ev[key])
        note(f"NaN/inf in {label}")
    _C.data_jagged_rows_finite(ok, ev["other_flat"], ev["offsets"])
    note("NaN/inf in nonVBSJets")
    # values outside the domain of a scaling: the C scaling kernels mark them non-finite
    checks = (
        ("VBSJets_pt <= 29 GeV (log(1 + pt - 30) undefined)", ev["vbs"], 4, 0, (n, 2), "log_pt", 30.0),
        ("LeptonGood_pt <= 14 GeV (log(1 + pt - 15) undefined)", ev["leptons"], 3, 0, (n, 2), "log_pt", 15.0),
        ("PuppiMET_pt <= 14 GeV (log(1 + MET - 15) undefined)", ev["met"], 2, 0, (n,), "log_pt", 15.0),
        ("W pt or mass <= -1", ev["W"], 4, 0, (n, 2), "log1p", 0.0),
        ("W pt or mass <= -1", ev["W"], 4, 3, (n, 2), "log1p", 0.0),
        ("neutrino pt <= -1", ev["nu"], 3, 0, (n, 2), "log1p", 0.0),
    )
    for label, arr, stride, col, shape, kind, prm in checks:
        x = _column_of(arr, stride, col, shape)
        if _C.phys_scale(kind, x.reshape(-1, 1), x.reshape(-1, 1), 0, prm):
            _C.data_rows_finite(ok, x)
            note(label)
    m = ev["other_flat"].shape[0]
    if m:
        x = _column_of(ev["other_flat"], 4, 0, (m,))
        if _C.phys_scale("log_pt", x.reshape(-1, 1), x.reshape(-1, 1), 0, 30.0):
            _C.data_jagged_rows_finite(ok, x, ev["offsets"])
            note("nonVBSJets_pt in (0, 29] GeV (log(1 + pt - 30) undefined)")
    return ok, reasons


# ------------------------------------------------------------------ outputs

def _expand(out, base, mask, angles, phi_col, copies):
    """out[c*n:(c+1)*n] = copy c of base: copy 0 as it is, the others rotated (or repeated)."""
    n = base.shape[0]
    _C.data_copy(out[:n], base)
    if copies == 1:
        return
    if phi_col is None:
        for c in range(1, copies):
            _C.data_copy(out[c * n:(c + 1) * n], base)
    else:
        _C.phys_rotate_copies(out[n:], base, mask, angles, phi_col)


def _scale_checked(arr, col, sc, gname):
    bad = _C.phys_scale(sc[0], arr, arr, col, sc[1])
    if bad:  # validate_events dropped every such event: reaching this is a bug
        raise RuntimeError(f"prepare(): internal error, {bad} non-finite values in {gname} column {col}")


def _split_arrays(ev, jets, jet_mask, idx):
    """Per-split, per-event arrays gathered (in C) from the event-level ones."""
    ns = idx.shape[0]

    def gather(src, dtype=np.float32):
        out = np.empty((ns,) + src.shape[1:], dtype)
        _C.data_gather_rows(out, src, idx)
        return out

    s = {"jets": gather(jets), "jet_mask": gather(jet_mask, np.bool_)}
    for k in ("leptons", "met", "nu", "W", "x1x2"):
        s[k] = gather(ev[k])
    s["W_ordered"] = np.empty_like(s["W"])
    _C.phys_order_pairs(s["W_ordered"], None, s["W"], 1)
    s["nu_ordered"] = np.empty_like(s["nu"])
    _C.phys_order_pairs(s["nu_ordered"], None, s["nu"], 1)
    s["EcmPz"] = np.empty((ns, 2), np.float32)
    _C.phys_ecm_pz(s["EcmPz"], s["x1x2"], BEAM_ENERGY)
    p4 = np.empty((ns, 4), np.float32)
    _C.phys_p4_sum(p4, s["jets"], s["jet_mask"], False)
    _C.phys_p4_sum(p4, s["leptons"], None, True)
    _C.phys_p4_sum(p4, s["met"], None, True)
    s["EcmPz_reco"] = np.empty((ns, 2), np.float32)
    _C.data_copy_column(s["EcmPz_reco"], 2, 0, p4, 4, 3)  # E
    _C.data_copy_column(s["EcmPz_reco"], 2, 1, p4, 4, 2)  # p_z
    jlm = np.ones((ns, N_SLOTS + 3), np.bool_)  # leptons and MET are always present
    _C.data_place_columns(jlm, s["jet_mask"], 0)
    s["jetlepmet_mask"] = jlm
    return s


def _check_args(augment, seed, split):
    if isinstance(augment, bool) or not isinstance(augment, (int, np.integer)) or augment < 0:
        raise ValueError(f"prepare(): argument 'augment' must be an integer >= 0, got {augment!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"prepare(): argument 'seed' must be an integer in [0, 2^64), got {seed!r}")
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0.0 < float(split) < 1.0:
        raise ValueError(f"prepare(): argument 'split' must be a fraction in (0, 1), got {split!r}")


def prepare(input_dir, out_dir, augment=10, seed=42, split=0.7, progress=True, verbose=True, max_events=None,
            rename=None, scaling_from=None):
    """Prepare the course's training and validation arrays (see the module docstring).

    input_dir: a directory written by hepml.data.generate, the course's parquet file(s)
    (needs awkward + pyarrow), or a columns dict. out_dir: where the .npy files and
    prepare.json go (written atomically). augment: rotated copies per event (the
    original is kept: augment + 1 copies). seed: the rotation angles' seed. split:
    training fraction. max_events: use only the first events of the input.
    scaling_from: a directory prepared earlier whose ``<name>_scaling.npy`` statistics are
    used instead of this training split's: a held-out sample (the grader's, say) then
    reaches a trained model standardised exactly as the model's training data was.

    Events with NaN/inf values, or with values outside a scaling's domain (e.g. MET <=
    14 GeV has no log(1 + MET - 15)), are dropped, counted and reported (a
    DataQualityWarning and prepare.json); they are never passed on as NaN.
    Returns a report dict (also saved as prepare.json).
    """
    t0 = time.perf_counter()
    _check_args(augment, seed, split)
    given_scalings = _read_scalings(scaling_from) if scaling_from is not None else None
    augment, seed, split = int(augment), int(seed), float(split)
    copies = augment + 1
    cols, source = read_input(input_dir, rename)
    if max_events is not None:
        if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) or max_events < 1:
            raise ValueError(f"prepare(): argument 'max_events' must be a positive integer, got {max_events!r}")
        cols = _head(cols, int(max_events))
    if isinstance(input_dir, (str, Path)) and Path(out_dir).expanduser().absolute() == \
            Path(input_dir).expanduser().absolute():
        raise ValueError("prepare(): 'out_dir' must differ from the input directory")

    n, ev = pack_events(cols)
    ok, reasons = validate_events(n, ev, cols)
    idx = _C.data_mask_to_index(ok)
    n_keep = int(idx.shape[0])
    dropped = n - n_keep
    if dropped:
        msg = f"prepare(): dropped {dropped} of {n} events: " + "; ".join(f"{k}: {v}" for k, v in reasons.items())
        warnings.warn(msg, DataQualityWarning, stacklevel=2)
    if n_keep == 0:
        raise ValueError(f"prepare(): none of the {n} input events can be prepared ({reasons})")
    n_train = int(split * n_keep)
    if n_train == 0 or n_train == n_keep:
        raise ValueError(f"prepare(): {n_keep} usable events cannot be split {split:g} / {1 - split:g} into two "
                         "non-empty sets")

    jets = np.empty((n, N_SLOTS, 5), np.float32)
    jet_mask = np.empty((n, N_SLOTS), np.bool_)
    truncated = _C.phys_pad_jets(jets, jet_mask, ev["vbs"], ev["other_flat"], ev["offsets"])
    if truncated:
        warnings.warn(f"prepare(): {truncated} events had more than {N_SLOTS - 2} non-VBS jets; the softest extra "
                      "jets were left out", DataQualityWarning, stacklevel=2)

    bar = progress_bar(progress, total=2 * (len(_GROUPS) + 1), desc="preparing", unit="array")
    scalings, shapes = {}, {}
    with atomic_dir(out_dir) as tmp:
        for si, (split_name, sl) in enumerate(zip(SPLITS, (slice(0, n_train), slice(n_train, n_keep)))):
            sidx = np.ascontiguousarray(idx[sl])
            ns = sidx.shape[0]
            s = _split_arrays(ev, jets, jet_mask, sidx)
            angles = np.empty(augment * ns, np.float32)
            if augment:
                # training uses counters [0, augment*n_train), validation the ones after it
                _C.phys_uniform(angles, seed, si * augment * n_train, -math.pi, math.pi)
            masks = {}
            for fname, key in _MASKS:
                arr = open_npy(tmp / f"{fname}_{split_name}.npy", (copies * ns,) + s[key].shape[1:], np.bool_)
                _expand(arr, s[key], None, None, None, copies)
                close_npy(arr)
                masks[key] = arr
                shapes[f"{fname}_{split_name}"] = list(arr.shape)
            if bar is not None:
                bar.update(1)
            for gname, key, phi_col, nfeat in _GROUPS:
                base = s[key]
                bmask = s["jet_mask"] if key == "jets" else None
                shape = (copies * ns,) + base.shape[1:]
                orig = open_npy(tmp / f"{gname}_original_{split_name}.npy", shape, np.float32)
                _expand(orig, base, bmask, angles, phi_col, copies)
                close_npy(orig)
                del orig
                # A rotation changes phi only: scale every other column once per event
                # (not once per copy), rotate that, then scale phi on all copies. The
                # result is identical to scaling the rotated originals column by column.
                pre = np.empty_like(base)
                _C.data_copy(pre, base)
                phi_scaling = None
                for col, sc in enumerate(COURSE_SCALINGS[gname]):
                    if sc is None:
                        continue
                    if col == phi_col:
                        phi_scaling = sc
                        continue
                    _scale_checked(pre, col, sc, gname)
                arr = open_npy(tmp / f"{gname}_{split_name}.npy", shape, np.float32)
                _expand(arr, pre, bmask, angles, phi_col, copies)
                del pre
                if phi_scaling is not None:
                    _scale_checked(arr, phi_col, phi_scaling, gname)
                rowmask = masks["jet_mask"] if key == "jets" else None
                if split_name == "training":
                    if given_scalings is not None:
                        sc = given_scalings[gname]
                    else:
                        mean, std, count = _C.phys_masked_mean_std(arr, nfeat, rowmask)
                        sc = np.empty((nfeat, 2), np.float64)
                        sc[:, 0], sc[:, 1] = mean, std
                    scalings[gname] = sc
                    np.save(tmp / f"{gname}_scaling.npy", sc)
                sc = scalings[gname]
                _C.phys_standardize(arr, arr, np.ascontiguousarray(sc[:, 0]), np.ascontiguousarray(sc[:, 1]),
                                    rowmask, False)
                close_npy(arr)
                shapes[f"{gname}_{split_name}"] = list(arr.shape)
                shapes[f"{gname}_original_{split_name}"] = list(arr.shape)
                del arr
                if bar is not None:
                    bar.update(1)
            del masks, s, angles
        report = {
            "format": PREPARED_FORMAT,
            "hepml_version": hepml_version(),
            "source": source,
            "augment": augment,
            "copies": copies,
            "seed": seed,
            "split": split,
            "n_input_events": n,
            "n_dropped": dropped,
            "drop_reasons": reasons,
            "n_truncated_jets": int(truncated),
            "n_events": {"training": n_train, "validation": n_keep - n_train},
            "n_rows": {"training": copies * n_train, "validation": copies * (n_keep - n_train)},
            "layout": "copy-major: rows [c*n, (c+1)*n) are copy c; copy 0 is the original",
            "mask_convention": "True = real object (pt > 0); PyTorch key_padding_mask is the negation",
            "scalings": {g: [list(s) if s else None for s in COURSE_SCALINGS[g]] for g, *_ in _GROUPS},
            "scaling_values": {g: v.tolist() for g, v in scalings.items()},
            "scaling_from": str(scaling_from) if scaling_from is not None else None,
            "shapes": shapes,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        write_json(tmp / PREPARED_MANIFEST, report)
    if bar is not None:
        bar.close()
    report["out_dir"] = str(out_dir)
    if verbose:
        print(summary(report))
    return report


def _read_scalings(directory):
    """Every group's [features, 2] (mean, std) from a prepared directory, checked."""
    directory = Path(directory)
    out = {}
    for gname, _key, _phi, nfeat in _GROUPS:
        path = directory / f"{gname}_scaling.npy"
        if not path.is_file():
            raise ValueError(f"prepare(): argument 'scaling_from' = {str(directory)!r} has no {path.name}; "
                             "it must be a directory written by prepare()")
        sc = np.load(path)
        if sc.shape != (nfeat, 2) or not np.isfinite(sc).all():
            raise ValueError(f"prepare(): {path} must hold finite [{nfeat}, 2] (mean, std) values, "
                             f"got shape {sc.shape}")
        out[gname] = np.ascontiguousarray(sc, dtype=np.float64)
    return out


def _head(cols, k):
    """The first k events of a columns dict (views; the jagged part sliced by its offsets)."""
    n = np.shape(cols.get("VBSJets_pt", []))[0] if "VBSJets_pt" in cols else 0
    if k >= n:
        return cols
    out = {}
    off = np.asarray(cols.get("nonVBSJets_offsets")) if "nonVBSJets_offsets" in cols else None
    for name, a in cols.items():
        if name == "nonVBSJets_offsets":
            out[name] = a[:k + 1]
        elif name.startswith("nonVBSJets_") and off is not None:
            out[name] = a[:int(off[k])]
        else:
            out[name] = a[:k]
    return out


def summary(report):
    """A short human-readable account of a prepare() report."""
    lines = [f"prepared {report['n_input_events']} events -> {report.get('out_dir', '')}"]
    if report["n_dropped"]:
        lines.append(f"  dropped {report['n_dropped']}: " +
                     "; ".join(f"{k}: {v}" for k, v in report["drop_reasons"].items()))
    lines.append(f"  training {report['n_events']['training']} events x {report['copies']} copies = "
                 f"{report['n_rows']['training']} rows; validation {report['n_events']['validation']} x "
                 f"{report['copies']} = {report['n_rows']['validation']} rows")
    lines.append(f"  {len(report['shapes']) + len(report['scaling_values'])} arrays in {report['seconds']:.1f} s")
    return "\n".join(lines)


def load_or_prepare(input_dir, out_dir, augment=10, seed=42, split=0.7, progress=True, verbose=True):
    """The report of an earlier prepare() into out_dir when it was made from the same
    input (a hepml generator directory: same seed and size) with the same augment, seed
    and split; otherwise prepare() now. For notebooks that are re-run often."""
    from ._io import read_json
    man_path = Path(out_dir) / PREPARED_MANIFEST
    if man_path.is_file() and isinstance(input_dir, (str, Path)):
        try:
            old = read_json(man_path)
        except (OSError, ValueError):
            old = None
        src = _gen.read_manifest(input_dir) if Path(input_dir).is_dir() else None
        if (old and src and old.get("format") == PREPARED_FORMAT and old.get("augment") == augment
                and old.get("seed") == seed and old.get("split") == split
                and old.get("source", {}).get("seed") == src.get("seed")
                and old.get("source", {}).get("n_events") == src.get("n_events")
                and all((Path(out_dir) / f).is_file() for f in output_files())):
            old["out_dir"] = str(out_dir)
            if verbose:
                print(summary(old) + "  (cached)")
            return old
    return prepare(input_dir, out_dir, augment=augment, seed=seed, split=split, progress=progress, verbose=verbose)
