"""hepml.metrics against scipy/NumPy at N = M = 50,000, D = 6.

Per statistic: hepml time next to the straightforward scipy/NumPy computation of
the same statistic (per-feature scipy calls, projections + scipy for sliced
statistics, np.cov + scipy.linalg.sqrtm for the FGD, NumPy kernel matrices for
KPD). Then 100-permutation p-values. Slow references are timed on a few
permutations and scaled to 100 (marked "x"), so the run takes about a minute.
The speed-up column is reference / hepml (> 1: hepml is faster).

Sizes: BENCH_METRICS_N (50000), BENCH_METRICS_D (6). Run: python -m bench.bench_metrics
"""
import os
import sys

import numpy as np
import scipy.linalg
import scipy.stats

from bench.common import setup_threads, threads, timeit


def _fd_np(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real))


def _mmd_np(x, y, degree=4):
    d = x.shape[1]
    kxx, kyy, kxy = [(u @ v.T / d + 1) ** degree for u, v in ((x, x), (y, y), (x, y))]
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def _kpd_np(a, b, num_batches=10, batch_size=5000, seed=0):
    rng = np.random.default_rng(seed)
    s = 1 / np.abs(a).max(0)
    a, b = a * s, b * s
    vals = [_mmd_np(a[rng.choice(len(a), batch_size)], b[rng.choice(len(b), batch_size)])
            for _ in range(num_batches)]
    return np.median(vals), (np.percentile(vals, 83.725) - np.percentile(vals, 16.275)) / 2


def _fgd_inf_np(a, b, lo=20000, hi=50000, num_batches=20, num_points=10, seed=0):
    rng = np.random.default_rng(seed)
    s = 1 / np.abs(a).max(0)
    a, b = a * s, b * s
    sizes = (1 / np.linspace(1 / lo, 1 / hi, num_points)).astype(np.int32)
    means = [np.mean([_fd_np(a[rng.choice(len(a), n)], b[rng.choice(len(b), n)]) for _ in range(num_batches)])
             for n in sizes]
    return np.polyfit(1 / sizes, means, 1)[1]


def _directions(k, d, seed=0):
    v = np.random.default_rng(seed).normal(size=(k, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _sliced_w1_np(a, b, dirs):
    pa, pb = a @ dirs.T, b @ dirs.T
    return np.mean([scipy.stats.wasserstein_distance(pa[:, k], pb[:, k]) for k in range(dirs.shape[0])])


def _perm_np(a, b, stat, n_perm, seed=0):
    rng = np.random.default_rng(seed)
    pool, n = np.concatenate([a, b]), len(a)
    obs = stat(a, b)
    null = []
    for _ in range(n_perm):
        idx = rng.permutation(len(pool))
        null.append(stat(pool[idx[:n]], pool[idx[n:]]))
    return obs, (1 + np.sum(np.asarray(null) >= obs, axis=0)) / (1 + n_perm)


def main():
    from hepml import metrics as M

    setup_threads()
    n = int(os.environ.get("BENCH_METRICS_N", 50_000))
    d = int(os.environ.get("BENCH_METRICS_D", 6))
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n, d)) * 1.02 + 0.01
    dirs = _directions(50, d)

    def w1_np(x, y):
        return np.array([scipy.stats.wasserstein_distance(x[:, j], y[:, j]) for j in range(d)])

    def ks_np(x, y):
        return np.array([scipy.stats.ks_2samp(x[:, j], y[:, j]).statistic for j in range(d)])

    def ks_p_np(x, y):
        return [scipy.stats.ks_2samp(x[:, j], y[:, j]) for j in range(d)]

    cases = [
        ("W1 per feature", lambda: M.wasserstein_1d(a, b), lambda: w1_np(a, b), 1),
        ("KS + p per feature", lambda: M.ks_2samp(a, b), lambda: ks_p_np(a, b), 1),
        ("sliced W1 (50 slices)", lambda: M.sliced_wasserstein(a, b), lambda: _sliced_w1_np(a, b, dirs), 1),
        ("FGD", lambda: M.frechet_gaussian_distance(a, b), lambda: _fd_np(a, b), 1),
        ("FGD-inf (jetnet defaults)", lambda: M.fgd_inf(a, b), lambda: _fgd_inf_np(a, b), 1),
        ("KPD (10 x 5000, degree 4)", lambda: M.kpd(a, b), lambda: _kpd_np(a, b), 1),
        ("MMD poly4, full 50k x 50k", lambda: M.mmd_poly(a, b), None, 1),
        ("perm p: W1 per feature (100)", lambda: M.permutation_test(a, b, "w1", 100),
         lambda: _perm_np(a, b, w1_np, 5), 20),
        ("perm p: KS per feature (100)", lambda: M.permutation_test(a, b, "ks", 100),
         lambda: _perm_np(a, b, ks_np, 5), 20),
        ("perm p: sliced W1 (100 x 50)", lambda: M.permutation_test(a, b, "sliced_w1", 100),
         lambda: _perm_np(a, b, lambda x, y: _sliced_w1_np(x, y, dirs), 1), 100),
        ("perm p: FGD (100)", lambda: M.permutation_test(a, b, "fgd", 100),
         lambda: _perm_np(a, b, _fd_np, 20), 5),
        ("perm p: MMD poly4 (100)", lambda: M.permutation_test(a, b, "mmd", 100), None, 1),
        ("two_sample_table (100 perms)", lambda: M.two_sample_table(a, b), None, 1),
    ]
    print(f"\nhepml.metrics vs scipy/NumPy, N = M = {n}, D = {d}  ({threads()} threads)")
    print(f"{'statistic':34s} {'hepml ms':>10s} {'scipy/np ms':>12s} {'speed-up':>9s}")
    for name, h, r, scale in cases:
        th, _ = timeit(h, repeat=3, warmup=1)
        if r is None:
            tr_s = f"{'-':>12s}"
            ratio = f"{'-':>9s}"
        else:
            tr, _ = timeit(r, repeat=1, warmup=0)
            tr *= scale
            tr_s = f"{1e3 * tr:11.1f}{'x' if scale != 1 else ' '}"
            ratio = f"{tr / th:8.1f}x"
        print(f"{name:34s} {1e3 * th:10.1f} {tr_s} {ratio}")
        sys.stdout.flush()
    print("x: reference timed on fewer permutations and scaled to 100")
    return 0


if __name__ == "__main__":
    sys.exit(main())
