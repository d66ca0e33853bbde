"""The course dataset: hepml's same-sign WW scattering teaching generator.

``generate(n_events, seed)`` runs the C generator (csrc/kernels/generator.c, physics
model in datasets/README.md) in chunks and returns the events as *columns* with the
names of the course's ntuples:

=====================================  ==========  ====================================
column                                 shape       content
=====================================  ==========  ====================================
VBSJets_pt/eta/phi/mass                [N, 2]      reco VBS tagging jets, pt-ordered
nonVBSJets_pt/eta/phi/mass             [M]         other jets, flat (jagged) ...
nonVBSJets_offsets                     [N + 1]     ... event i owns rows offsets[i]:offsets[i+1]
LeptonGood_pt/eta/phi                  [N, 2]      reco leptons, pt-ordered
LeptonGood_pdgId                       [N, 2]      int32 (-11/-13 for e+/mu+)
PuppiMET_pt/phi                        [N]         reco missing transverse momentum
Neutrino1_pt/eta/phi, Neutrino2_*      [N]         truth, from W1 / W2
W1_pt/eta/phi/mass, W2_*               [N]         truth; W1 has the larger pt
Generator_x1, Generator_x2             [N]         parton momentum fractions
VBSPartons_pt/eta/phi/mass             [N, 2]      truth outgoing quarks (jet k from parton k)
Generator_trials                       [N]         int32, candidates used (bookkeeping)
=====================================  ==========  ====================================

Every event is a pure function of (seed, event index, config), so the output does not
depend on the chunk size or the thread count (hepml.set_num_threads).
"""
import os
from pathlib import Path

import numpy as np

from .. import _C
from ._io import (GENERATED_FORMAT, GENERATED_MANIFEST, atomic_dir, hepml_version, progress_bar, read_json,
                  write_json)

MAX_NONVBS = 11
DEFAULT_CHUNK = 65536
FORMAT_VERSION = 1

# course column -> (generator array, stride in floats per row, column within the row, rows per event)
_FIXED = {}
for _i, _f in enumerate(("pt", "eta", "phi", "mass")):
    _FIXED[f"VBSJets_{_f}"] = ("vbs_jets", 4, _i, 2)
    _FIXED[f"VBSPartons_{_f}"] = ("vbs_partons", 4, _i, 2)
    _FIXED[f"W1_{_f}"] = ("w_bosons", 8, _i, 1)
    _FIXED[f"W2_{_f}"] = ("w_bosons", 8, 4 + _i, 1)
for _i, _f in enumerate(("pt", "eta", "phi")):
    _FIXED[f"LeptonGood_{_f}"] = ("leptons", 3, _i, 2)
    _FIXED[f"Neutrino1_{_f}"] = ("neutrinos", 6, _i, 1)
    _FIXED[f"Neutrino2_{_f}"] = ("neutrinos", 6, 3 + _i, 1)
_FIXED["LeptonGood_pdgId"] = ("lepton_pdgid", 1, 0, 2)
_FIXED["PuppiMET_pt"] = ("met", 2, 0, 1)
_FIXED["PuppiMET_phi"] = ("met", 2, 1, 1)
_FIXED["Generator_x1"] = ("x1x2", 2, 0, 1)
_FIXED["Generator_x2"] = ("x1x2", 2, 1, 1)
_FIXED["Generator_trials"] = ("trials", 1, 0, 1)
_JAGGED = ("nonVBSJets_pt", "nonVBSJets_eta", "nonVBSJets_phi", "nonVBSJets_mass")
_INT_COLUMNS = {"LeptonGood_pdgId": np.int32, "Generator_trials": np.int32, "nonVBSJets_offsets": np.int64}

#: Every column generate() writes, in a stable order.
COLUMNS = tuple(_FIXED) + _JAGGED + ("nonVBSJets_offsets",)

# generator output arrays: name -> (per-event shape, dtype)
_RAW = {
    "vbs_jets": ((2, 4), np.float32), "nonvbs_jets": ((MAX_NONVBS, 4), np.float32), "n_nonvbs": ((), np.int32),
    "leptons": ((2, 3), np.float32), "lepton_pdgid": ((2,), np.int32), "met": ((2,), np.float32),
    "neutrinos": ((2, 3), np.float32), "w_bosons": ((2, 4), np.float32), "vbs_partons": ((2, 4), np.float32),
    "x1x2": ((2,), np.float32), "trials": ((), np.int32),
}
_TRUTH = {"leptons_truth": ((2, 3), np.float32), "extra_jets_truth": ((MAX_NONVBS, 4), np.float32),
          "n_extra_truth": ((), np.int32)}


def default_config():
    """The generator's documented defaults (datasets/README.md) as a dict; pass a dict
    with some of these keys changed as ``config=`` to generate()."""
    return _C.ww_default_config()


def _check_int(value, name, lo=0, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"generate(): argument '{name}' must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"generate(): argument '{name}' must be {rng}, got {value}")
    return value


def _alloc(fields, n):
    return {k: np.empty((n,) + shape, dtype) for k, (shape, dtype) in fields.items()}


def generate_raw(n_events, seed, first_event=0, config=None, truth=False):
    """One call of the C generator: the raw per-event arrays (padded extra jets, truth
    arrays with truth=True: the charged leptons in W order and all generated extra jets),
    used by the tests' conservation checks. Most users want generate()."""
    n_events = _check_int(n_events, "n_events")
    seed = _check_int(seed, "seed", 0, 2**64 - 1)
    first_event = _check_int(first_event, "first_event")
    out = _alloc(dict(_RAW, **(_TRUTH if truth else {})), n_events)
    status = _C.ww_generate(out, first_event, seed, config)
    if status == 2:
        failed = int(np.count_nonzero(out["trials"] == 0))
        raise RuntimeError(f"generate(): {failed} event(s) needed more than max_trials candidates; the config "
                           "selects almost nothing (check the acceptance cuts)")
    return out


def generate(n_events, seed, out_dir=None, progress=True, config=None, chunk_size=DEFAULT_CHUNK):
    """Generate ``n_events`` same-sign WW events with ``seed``; return the columns dict.

    The C generator runs in chunks of ``chunk_size`` events (a tqdm progress bar when
    ``progress``), in parallel over events inside each chunk. With ``out_dir`` the
    columns are also written as ``<column>.npy`` files plus ``manifest.json`` (seed,
    n_events, config, hepml version), atomically: the directory appears complete or not
    at all. Results are identical for every chunk size and thread count.
    """
    n_events = _check_int(n_events, "n_events", 1)
    seed = _check_int(seed, "seed", 0, 2**64 - 1)
    chunk_size = _check_int(chunk_size, "chunk_size", 1)
    cfg = _C.ww_check_config(config)  # full config (defaults filled in), or a clear error now

    cols = {}
    for name, (_, _, _, per) in _FIXED.items():
        dtype = _INT_COLUMNS.get(name, np.float32)
        cols[name] = np.empty((n_events, per) if per > 1 else (n_events,), dtype)
    offsets = np.empty(n_events + 1, np.int64)
    pieces = {name: [] for name in _JAGGED}

    m = min(chunk_size, n_events)
    buf = _alloc(_RAW, m)
    off_chunk = np.empty(m + 1, np.int64)
    bar = _progress(progress, n_events)
    total = 0
    try:
        for a in range(0, n_events, chunk_size):
            b = min(a + chunk_size, n_events)
            k = b - a
            view = {key: arr[:k] for key, arr in buf.items()}
            status = _C.ww_generate(view, a, seed, cfg)
            if status == 2:
                raise RuntimeError("generate(): some events needed more than max_trials candidates; the config "
                                   "selects almost nothing (check the acceptance cuts)")
            for name, (src, stride, col, _) in _FIXED.items():
                _C.data_copy_column(cols[name][a:b], 1, 0, view[src], stride, col)
            oc = off_chunk[:k + 1]
            new_total = _C.data_offsets_from_counts(oc, view["n_nonvbs"], total, MAX_NONVBS)
            flat = np.empty((new_total - total, 4), np.float32)
            _C.data_jagged_from_padded(flat, view["nonvbs_jets"], oc)
            for j, name in enumerate(_JAGGED):
                piece = np.empty(new_total - total, np.float32)
                _C.data_copy_column(piece, 1, 0, flat, 4, j)
                pieces[name].append(piece)
            _C.data_copy(offsets[a:b + 1], oc)
            total = new_total
            if bar is not None:
                bar.update(k)
    finally:
        if bar is not None:
            bar.close()
    del buf
    for name in _JAGGED:
        out = np.empty(total, np.float32)
        pos = 0
        for piece in pieces[name]:
            _C.data_copy(out[pos:pos + piece.size], piece)
            pos += piece.size
        cols[name] = out
        pieces[name] = None
    cols["nonVBSJets_offsets"] = offsets

    if out_dir is not None:
        write_events(cols, out_dir, seed=seed, config=cfg)
    return cols


def _progress(progress, total):
    return progress_bar(progress, total=total, unit="ev", desc="generating WW events", unit_scale=True)


def _manifest(cols, seed, config):
    n = int(cols["nonVBSJets_offsets"].shape[0] - 1)
    return {
        "format": GENERATED_FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": "hepml same-sign WW VBS teaching model (datasets/README.md)",
        "hepml_version": hepml_version(),
        "n_events": n,
        "seed": int(seed),
        "config": config,
        "columns": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in cols.items()},
    }


def write_events(cols, out_dir, seed, config=None):
    """Write a columns dict as <column>.npy + manifest.json into out_dir, atomically."""
    cfg = _C.ww_check_config(config)
    with atomic_dir(out_dir) as tmp:
        for name, arr in cols.items():
            np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
        write_json(tmp / GENERATED_MANIFEST, _manifest(cols, seed, cfg))
    return Path(out_dir)


def read_manifest(path):
    """The manifest of a generated dataset directory (dict), or None if there is none."""
    p = Path(path) / GENERATED_MANIFEST
    if not p.is_file():
        return None
    m = read_json(p)
    return m if m.get("format") == GENERATED_FORMAT else None


def load_events(path, mmap=True):
    """The columns of a dataset written by generate(out_dir=...) (memory-mapped by default)."""
    path = Path(path)
    man = read_manifest(path)
    if man is None:
        raise FileNotFoundError(f"{path} has no hepml {GENERATED_MANIFEST}: not a dataset written by "
                                "hepml.data.generate (for the course's parquet files use hepml.data.prepare)")
    cols = {}
    for name in man["columns"]:
        f = path / f"{name}.npy"
        if not f.is_file():
            raise FileNotFoundError(f"{path}: column file {f.name} listed in the manifest is missing")
        cols[name] = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
    return cols


def load_or_generate(n_events, seed, out_dir, progress=True, config=None, chunk_size=DEFAULT_CHUNK):
    """The cached dataset in out_dir if its manifest matches (n_events, seed, config and
    format), else generate it there. Returns the columns (memory-mapped)."""
    cfg = _C.ww_check_config(config)
    man = read_manifest(out_dir) if os.path.isdir(out_dir) else None
    if not (man and man.get("n_events") == n_events and man.get("seed") == seed and man.get("config") == cfg
            and man.get("format_version") == FORMAT_VERSION):
        generate(n_events, seed, out_dir=out_dir, progress=progress, config=cfg, chunk_size=chunk_size)
    return load_events(out_dir)
