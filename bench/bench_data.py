"""The course dataset: event generation and notebook-1 preparation throughput.

- generation: hepml.data.generate at 200k events (events/s, on 1 thread and on all);
- preparation: hepml.data.prepare (10 augmentations) next to the same steps written
  with NumPy, and with awkward + vector (the course's own tools) when they are
  installed; the ratio is reference time / hepml time (> 1: hepml is faster);
- peak memory of each preparation, in a fresh process, next to the size of its output.

Sizes: BENCH_DATA_GEN_EVENTS (200000), BENCH_DATA_PREP_EVENTS (50000).
Run: python -m bench.bench_data
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import setup_threads, timeit

F4 = ("pt", "eta", "phi", "mass")
PI_C = np.float32(3.1416015625)
SPLIT, AUGMENT, SEED = 0.7, 10, 42


def gen_events():
    return int(os.environ.get("BENCH_DATA_GEN_EVENTS", 200_000))


def prep_events():
    return int(os.environ.get("BENCH_DATA_PREP_EVENTS", 50_000))


# ------------------------------------------------------------ NumPy reference

def _wrap(phi):
    return np.mod(phi + np.pi, 2 * np.pi) - np.pi


def _scale_np(x, spec):
    """The course's scalings in NumPy (float32, as the course's notebook computes them)."""
    y = x.copy()
    for col, s in enumerate(spec):
        if s is None:
            continue
        v = y[..., col]
        if s[0] == "log_pt":
            with np.errstate(invalid="ignore", divide="ignore"):
                y[..., col] = np.where(v > 0, np.log1p(v - np.float32(s[1])), 0)
        elif s[0] == "log1p":
            y[..., col] = np.log1p(v)
        else:
            p = np.clip((v + PI_C) / (2 * PI_C), 1e-6, 1 - 1e-6)
            y[..., col] = np.log(p / (1 - p))
    return y


def _save_group_np(out, name, split, base, mask, phi_col, angles, copies, spec, nfeat, stats):
    ns = base.shape[0]
    orig = np.repeat(base[None], copies, axis=0)
    if phi_col is not None and copies > 1:
        shape = (copies - 1, ns) + (1,) * (base.ndim - 1)
        orig[1:, ..., phi_col] = _wrap(base[None, ..., phi_col] + angles.reshape(shape)[..., 0])
        if mask is not None:
            orig[1:][~np.broadcast_to(mask, (copies - 1,) + mask.shape)] = 0
    orig = orig.reshape((copies * ns,) + base.shape[1:])
    np.save(out / f"{name}_original_{split}.npy", orig)
    scaled = _scale_np(orig, spec)
    m = np.tile(mask, (copies, 1)) if mask is not None else np.ones(scaled.shape[:-1], bool)
    if name not in stats:
        sel = scaled[m][:, :nfeat].astype(np.float64)
        stats[name] = np.stack([sel.mean(0), sel.std(0)], 1)
        np.save(out / f"{name}_scaling.npy", stats[name])
    mean, std = stats[name][:, 0], stats[name][:, 1]
    scaled[..., :nfeat] = np.where(m[..., None], (scaled[..., :nfeat] - mean) / std, 0)
    np.save(out / f"{name}_{split}.npy", scaled.astype(np.float32))


def _p4(pt, eta, phi, m):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px * px + py * py + pz * pz + m * m)


def numpy_prepare(gen_dir, out_dir, augment=AUGMENT, seed=SEED):
    """notebook 1 with NumPy only: the same arrays as hepml.data.prepare (to float32
    rounding; the rotation angles come from NumPy's generator)."""
    from hepml.physics import COURSE_SCALINGS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = {p.stem: np.load(p) for p in Path(gen_dir).glob("*.npy")}
    n = cols["PuppiMET_pt"].shape[0]
    vbs = np.stack([cols[f"VBSJets_{f}"] for f in F4], -1)
    off = cols["nonVBSJets_offsets"]
    counts = np.diff(off)
    flat = np.stack([cols[f"nonVBSJets_{f}"] for f in F4], -1)
    jets = np.zeros((n, 13, 5), np.float32)
    jets[:, :2, :4] = vbs
    jets[:, :2, 4] = 1
    ev = np.repeat(np.arange(n), counts)
    slot = np.arange(flat.shape[0]) - np.repeat(off[:-1], counts) + 2
    keep = slot < 13
    jets[ev[keep], slot[keep], :4] = flat[keep]
    jmask = jets[..., 0] > 0
    lep = np.stack([cols[f"LeptonGood_{f}"] for f in ("pt", "eta", "phi")], -1)
    met = np.stack([cols["PuppiMET_pt"], cols["PuppiMET_phi"]], -1)[:, None, :]
    nu = np.stack([np.stack([cols[f"Neutrino{k}_{f}"] for f in ("pt", "eta", "phi")], -1) for k in (1, 2)], 1)
    w = np.stack([np.stack([cols[f"W{k}_{f}"] for f in F4], -1) for k in (1, 2)], 1)
    x12 = np.stack([cols["Generator_x1"], cols["Generator_x2"]], -1)
    ok = (np.isfinite(jets).all((1, 2)) & np.isfinite(lep).all((1, 2)) & np.isfinite(met).all((1, 2))
          & np.isfinite(nu).all((1, 2)) & np.isfinite(w).all((1, 2)) & np.isfinite(x12).all(1)
          & (met[:, 0, 0] > 14) & (lep[..., 0] > 14).all(1))
    idx = np.nonzero(ok)[0]
    n_train = int(SPLIT * idx.size)
    rng = np.random.default_rng(seed)
    stats = {}
    copies = augment + 1
    for split, sidx in (("training", idx[:n_train]), ("validation", idx[n_train:])):
        ns = sidx.size
        s = {"jets": jets[sidx], "leptons": lep[sidx], "met": met[sidx], "nu": nu[sidx], "W": w[sidx],
             "x1x2": x12[sidx]}
        m = jmask[sidx]
        order = s["W"][:, 1, 1] > s["W"][:, 0, 1]
        s["W_ordered"] = np.where(order[:, None, None], s["W"][:, ::-1], s["W"])
        order = s["nu"][:, 1, 1] > s["nu"][:, 0, 1]
        s["nu_ordered"] = np.where(order[:, None, None], s["nu"][:, ::-1], s["nu"])
        x = s["x1x2"].astype(np.float64)
        s["EcmPz"] = np.stack([6500 * (x[:, 0] + x[:, 1]), 6500 * (x[:, 0] - x[:, 1])], -1).astype(np.float32)
        j = s["jets"].astype(np.float64)
        jp = [c * m for c in _p4(j[..., 0], j[..., 1], j[..., 2], j[..., 3])]
        lp = _p4(*[s["leptons"][..., c].astype(np.float64) for c in range(3)], 0.0)
        mp = _p4(s["met"][..., 0].astype(np.float64), 0.0, s["met"][..., 1].astype(np.float64), 0.0)
        e = jp[3].sum(1) + lp[3].sum(1) + mp[3].sum(1)
        pz = jp[2].sum(1) + lp[2].sum(1) + mp[2].sum(1)
        s["EcmPz_reco"] = np.stack([e, pz], -1).astype(np.float32)
        angles = rng.uniform(-np.pi, np.pi, (augment, ns)).astype(np.float32)
        np.save(out / f"jet_padding_mask_{split}.npy", np.tile(m, (copies, 1)))
        np.save(out / f"jetlepmet_padding_mask_{split}.npy",
                np.tile(np.concatenate([m, np.ones((ns, 3), bool)], 1), (copies, 1)))
        for name, key, phi_col, nfeat in (("jet_data", "jets", 2, 4), ("lepton_data", "leptons", 2, 3),
                                          ("met_data", "met", 1, 2), ("W_data", "W", 2, 4),
                                          ("W_ordered_data", "W_ordered", 2, 4), ("nu_data", "nu", 2, 3),
                                          ("nu_ordered_data", "nu_ordered", 2, 3), ("x1x2_data", "x1x2", None, 2),
                                          ("EcmPz_data", "EcmPz", None, 2), ("EcmPz_reco_data", "EcmPz_reco", None, 2)):
            _save_group_np(out, name, split, s[key], m if key == "jets" else None, phi_col, angles, copies,
                           COURSE_SCALINGS[name], nfeat, stats)


# ------------------------------------------------------ awkward + vector reference

def awkward_prepare(gen_dir, out_dir, augment=AUGMENT, seed=SEED):
    """The same steps with awkward arrays and vector four-vectors, the way the course's
    notebook does them (jagged jets padded with ak.pad_none, sums and rotations with
    vector); arrays leave awkward at the end to be scaled and saved with NumPy."""
    import awkward as ak
    import vector
    vector.register_awkward()
    from hepml.physics import COURSE_SCALINGS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = {p.stem: np.load(p) for p in Path(gen_dir).glob("*.npy")}
    counts = np.diff(cols["nonVBSJets_offsets"])
    vbs = ak.zip({f: ak.from_regular(ak.Array(cols[f"VBSJets_{f}"]), axis=1) for f in F4}, with_name="Momentum4D")
    other = ak.zip({f: ak.unflatten(cols[f"nonVBSJets_{f}"], counts) for f in F4}, with_name="Momentum4D")
    lep = ak.zip({"pt": ak.from_regular(ak.Array(cols["LeptonGood_pt"]), axis=1),
                  "eta": ak.from_regular(ak.Array(cols["LeptonGood_eta"]), axis=1),
                  "phi": ak.from_regular(ak.Array(cols["LeptonGood_phi"]), axis=1),
                  "mass": ak.zeros_like(ak.from_regular(ak.Array(cols["LeptonGood_pt"]), axis=1))},
                 with_name="Momentum4D")
    met = ak.zip({"pt": cols["PuppiMET_pt"], "eta": np.zeros_like(cols["PuppiMET_pt"]), "phi": cols["PuppiMET_phi"],
                  "mass": np.zeros_like(cols["PuppiMET_pt"])}, with_name="Momentum4D")
    alljets = ak.concatenate([vbs, other], axis=1)
    label = ak.concatenate([ak.ones_like(vbs.pt), ak.zeros_like(other.pt)], axis=1)
    total = ak.sum(alljets, axis=1) + ak.sum(lep, axis=1) + met
    n = len(met)
    ok = ak.to_numpy((met.pt > 14) & ak.all(lep.pt > 14, axis=1))
    idx = np.nonzero(ok)[0]
    n_train = int(SPLIT * idx.size)
    rng = np.random.default_rng(seed)
    copies = augment + 1
    stats = {}
    w = {k: ak.zip({f: cols[f"W{k}_{f}"] for f in F4}, with_name="Momentum4D") for k in (1, 2)}
    nu = {k: ak.zip({"pt": cols[f"Neutrino{k}_pt"], "eta": cols[f"Neutrino{k}_eta"], "phi": cols[f"Neutrino{k}_phi"],
                     "mass": np.zeros(n, np.float32)}, with_name="Momentum4D") for k in (1, 2)}
    def rotz(v, a):  # vector's rotateZ, back to (pt, eta, phi, mass) fields so copies concatenate
        r = v.rotateZ(a)
        return ak.zip({"pt": r.pt, "eta": r.eta, "phi": r.phi, "mass": r.mass}, with_name="Momentum4D")

    for split, sidx in (("training", idx[:n_train]), ("validation", idx[n_train:])):
        ns = sidx.size
        angles = rng.uniform(-np.pi, np.pi, (augment, ns))
        reps = [alljets[sidx]] + [rotz(alljets[sidx], angles[c]) for c in range(augment)]
        jagged = ak.concatenate(reps, axis=0)
        lab = ak.concatenate([label[sidx]] * copies, axis=0)
        pad = lambda a: ak.to_numpy(ak.fill_none(ak.pad_none(a, 13, clip=True), 0.0)).astype(np.float32)  # noqa: E731
        jets = np.stack([pad(jagged.pt), pad(jagged.eta), pad(jagged.phi), pad(jagged.mass), pad(lab)], -1)
        m = jets[..., 0] > 0
        np.save(out / f"jet_padding_mask_{split}.npy", m)
        np.save(out / f"jetlepmet_padding_mask_{split}.npy", np.concatenate([m, np.ones((m.shape[0], 3), bool)], 1))

        def rot(v):
            return ak.concatenate([v[sidx]] + [rotz(v[sidx], angles[c]) for c in range(augment)], axis=0)

        lr = rot(lep)
        mr = rot(met)
        leps = np.stack([ak.to_numpy(lr.pt), ak.to_numpy(lr.eta), ak.to_numpy(lr.phi)], -1).astype(np.float32)
        mets = np.stack([ak.to_numpy(mr.pt), ak.to_numpy(mr.phi)], -1)[:, None, :].astype(np.float32)
        ws = np.stack([np.stack([ak.to_numpy(getattr(rot(w[k]), f)) for f in ("pt", "eta", "phi", "mass")], -1)
                       for k in (1, 2)], 1).astype(np.float32)
        nus = np.stack([np.stack([ak.to_numpy(getattr(rot(nu[k]), f)) for f in ("pt", "eta", "phi")], -1)
                        for k in (1, 2)], 1).astype(np.float32)
        x12 = np.tile(np.stack([cols["Generator_x1"], cols["Generator_x2"]], -1)[sidx], (copies, 1))
        ecm = np.stack([6500 * (x12[:, 0] + x12[:, 1]), 6500 * (x12[:, 0] - x12[:, 1])], -1).astype(np.float32)
        t = total[sidx]
        reco = np.tile(np.stack([ak.to_numpy(t.E), ak.to_numpy(t.pz)], -1), (copies, 1)).astype(np.float32)
        wo = np.where((ws[:, 1, 1] > ws[:, 0, 1])[:, None, None], ws[:, ::-1], ws)
        nuo = np.where((nus[:, 1, 1] > nus[:, 0, 1])[:, None, None], nus[:, ::-1], nus)
        for name, arr, nfeat, msk in (("jet_data", jets, 4, m), ("lepton_data", leps, 3, None),
                                      ("met_data", mets, 2, None), ("W_data", ws, 4, None),
                                      ("W_ordered_data", wo, 4, None), ("nu_data", nus, 3, None),
                                      ("nu_ordered_data", nuo, 3, None), ("x1x2_data", x12, 2, None),
                                      ("EcmPz_data", ecm, 2, None), ("EcmPz_reco_data", reco, 2, None)):
            np.save(out / f"{name}_original_{split}.npy", arr)
            scaled = _scale_np(arr, COURSE_SCALINGS[name])
            mm = msk if msk is not None else np.ones(scaled.shape[:-1], bool)
            if name not in stats:
                sel = scaled[mm][:, :nfeat].astype(np.float64)
                stats[name] = np.stack([sel.mean(0), sel.std(0)], 1)
                np.save(out / f"{name}_scaling.npy", stats[name])
            scaled[..., :nfeat] = np.where(mm[..., None], (scaled[..., :nfeat] - stats[name][:, 0]) /
                                           stats[name][:, 1], 0)
            np.save(out / f"{name}_{split}.npy", scaled.astype(np.float32))


def _have_awkward():
    try:
        import awkward  # noqa: F401
        import vector  # noqa: F401
        return True
    except ImportError:
        return False


# ------------------------------------------------------------ memory probes

def _peak_hepml(gen_dir, out_dir):
    import hepml.data as hd
    hd.prepare(gen_dir, out_dir, augment=AUGMENT, seed=SEED, progress=False, verbose=False)


def _peak_numpy(gen_dir, out_dir):
    numpy_prepare(gen_dir, out_dir)


def _peak_mb(func, *args):
    """Peak resident memory growth (MiB) of bench.bench_data.<func>(*args) in a fresh
    interpreter, from /proc's VmHWM. (ru_maxrss would not do: Linux carries the parent's
    high-water mark across fork + exec, which hides the child's own peak.)"""
    import json
    import subprocess
    code = (
        "import json, importlib\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "base = hwm()\n"
        "m = importlib.import_module('bench.bench_data')\n"
        "import hepml, numpy\n"
        "after_import = hwm()\n"
        f"m.{func}(*{args!r})\n"
        "print(json.dumps([after_import - base, hwm() - after_import]))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])[1]


def _dir_mb(d):
    return sum(p.stat().st_size for p in Path(d).glob("*.npy")) / 2**20


# ------------------------------------------------------------------ main

def main():
    import hepml
    import hepml.data as hd
    nth = setup_threads()
    print(f"\nbench_data: the course dataset  ({nth} threads)")

    n = gen_events()
    hd.generate(1000, 1, progress=False)  # warm up
    rows = []
    for th in sorted({1, nth}):
        hepml.set_num_threads(th)
        t, _ = timeit(lambda: hd.generate(n, 1, progress=False), repeat=3, warmup=1)
        rows.append((th, t))
    hepml.set_num_threads(nth)
    for th, t in rows:
        print(f"  generate {n} events, {th} thread(s): {t:.2f} s = {n / t:,.0f} events/s "
              f"(1M events: ~{1e6 / (n / t):.0f} s)")

    m = prep_events()
    work = Path(tempfile.mkdtemp(prefix="hepml-bench-data-"))
    try:
        gen_dir = work / "gen"
        hd.generate(m, 1, out_dir=gen_dir, progress=False)

        def run_hepml():
            hd.prepare(gen_dir, work / "h", augment=AUGMENT, seed=SEED, progress=False, verbose=False)

        def run_numpy():
            shutil.rmtree(work / "n", ignore_errors=True)
            numpy_prepare(gen_dir, work / "n")

        th_ = timeit(run_hepml, repeat=3, warmup=1)[0]
        out_mb = _dir_mb(work / "h")
        tn = timeit(run_numpy, repeat=3, warmup=0)[0]
        copies = AUGMENT + 1
        print(f"  prepare {m} events x {copies} copies ({out_mb:.0f} MiB of .npy):")
        print(f"    hepml.data.prepare   {th_:7.2f} s  {m / th_:10,.0f} events/s  {m * copies / th_:12,.0f} rows/s")
        print(f"    NumPy reference      {tn:7.2f} s  {m / tn:10,.0f} events/s   ratio {tn / th_:5.2f}x")
        if _have_awkward():
            def run_ak():
                shutil.rmtree(work / "a", ignore_errors=True)
                awkward_prepare(gen_dir, work / "a")
            ta = timeit(run_ak, repeat=1, warmup=0)[0]
            print(f"    awkward + vector     {ta:7.2f} s  {m / ta:10,.0f} events/s   ratio {ta / th_:5.2f}x")
        else:
            print("    awkward + vector     (not installed: pip install awkward vector)")
        ph = _peak_mb("_peak_hepml", str(gen_dir), str(work / "mh"))
        pn = _peak_mb("_peak_numpy", str(gen_dir), str(work / "mn"))
        print(f"  peak memory above the imports: hepml {ph:.0f} MiB, NumPy {pn:.0f} MiB; output {out_mb:.0f} MiB "
              f"(hepml peak / output = {ph / out_mb:.2f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
