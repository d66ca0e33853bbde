"""MMD loss, hepml vs the course's dense PyTorch formula, same process, same threads.

Workload (the course's per-feature MMD): x, y [N, 8] float32 (two W bosons x
four features), loss = mean over the 8 columns of the 1-D multiscale MMD
(biased), forward + backward with respect to x. N = 1024 and 4096.

  hepml  hepml.losses.mmd_course: one tiled C pass, value and gradient fused,
         O(N) memory.
  torch  libs/mmd.py's formula per feature: dense N x N distance matrices,
         a^2 / (a^2 + d) summed over the six bandwidths, autograd through it
         (O(N^2) memory per feature and bandwidth, kept for backward).

Run: python -m bench.bench_mmd [--threads N] [--sizes 1024 4096]. Prints median
times, the speed-up torch / hepml (> 1: hepml is faster) and the peak RSS
growth of each library measured in a fresh subprocess (one step, including the
library's import).
"""
import argparse
import os

import numpy as np

from bench import common

BANDWIDTHS = (0.1, 0.2, 0.5, 0.9, 1.4, 2.0)
F = 8


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, F)).astype(np.float32),
            (rng.standard_normal((n, F)) * 1.1 + 0.2).astype(np.float32))


def torch_course_mmd(x, y):
    import torch
    xx, yy, zz = x @ x.t(), y @ y.t(), x @ y.t()
    rx = xx.diag().unsqueeze(0).expand_as(xx)
    ry = yy.diag().unsqueeze(0).expand_as(yy)
    dxx = rx.t() + rx - 2.0 * xx
    dyy = ry.t() + ry - 2.0 * yy
    dxy = rx.t() + ry - 2.0 * zz
    XX, YY, XY = torch.zeros_like(xx), torch.zeros_like(xx), torch.zeros_like(xx)
    for a in BANDWIDTHS:
        XX = XX + a ** 2 * (a ** 2 + dxx) ** -1
        YY = YY + a ** 2 * (a ** 2 + dyy) ** -1
        XY = XY + a ** 2 * (a ** 2 + dxy) ** -1
    return torch.mean(XX + YY - 2.0 * XY)


def hepml_step(x, y):
    import hepml
    import hepml.losses as L
    hx, hy = hepml.tensor(x, requires_grad=True), hepml.tensor(y)

    def step():
        hx.grad = None
        L.mmd_course(hx, hy).backward()
    return step


def torch_step(x, y):
    import torch
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y)

    def step():
        tx.grad = None
        loss = sum(torch_course_mmd(tx[:, f:f + 1], ty[:, f:f + 1]) for f in range(F)) / F
        loss.backward()
    return step


def one_step(lib, n):
    """Entry point for peak-memory subprocesses: build and run one step."""
    common.setup_threads()
    x, y = _data(n)
    (hepml_step if lib == "hepml" else torch_step)(x, y)()


# torch's step at N = 1024 peaks near 2 GiB (measured); it grows as N^2.
TORCH_MIB_AT_1024 = 2000.0


def _torch_fits(n):
    """Does the dense torch step fit in half of the available memory? At
    N = 4096 it needs ~32 GiB, more than a laptop (or this 23 GiB machine) has."""
    need = TORCH_MIB_AT_1024 * (n / 1024) ** 2
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 1024
    except (OSError, StopIteration):
        avail = float("inf")
    return need < 0.5 * avail, need


def run(n_threads=None, sizes=(1024, 4096), repeat=5):
    if n_threads:
        os.environ["BENCH_THREADS"] = str(n_threads)
    # Peak memory first, while this process is still small: on Linux a child's
    # ru_maxrss starts at the parent's high-water mark (it survives fork and
    # exec), so after torch's dense N x N step here every child would report 0.
    fits = {n: _torch_fits(n) for n in sizes}
    peaks = {n: (common.peak_memory_mb("bench_mmd", "one_step", "hepml", n),
                 common.peak_memory_mb("bench_mmd", "one_step", "torch", n) if fits[n][0] else float("nan"))
             for n in sizes}
    common.setup_threads(n_threads)
    rows, mem = [], []
    for n in sizes:
        x, y = _data(n)
        hs, ts = hepml_step(x, y), torch_step(x, y)
        ok, need = fits[n]
        # agreement of the two losses, so the timing compares the same number
        import hepml
        import hepml.losses as L
        import torch
        hv = float(L.mmd_course(hepml.tensor(x), hepml.tensor(y)).numpy())
        h, hf = common.timeit(hs, repeat=max(repeat, 10), warmup=2)
        if ok:
            with torch.no_grad():
                tv = float(sum(torch_course_mmd(torch.tensor(x[:, f:f + 1]), torch.tensor(y[:, f:f + 1]))
                               for f in range(F)) / F)
            t, tf = common.timeit(ts, repeat=repeat if n <= 1024 else 3, warmup=1)
        else:
            print(f"N={n}: torch's dense step needs ~{need / 1024:.0f} GiB, more than half the available "
                  "memory: not run (nan)")
            tv = t = tf = float("nan")
        rows.append((f"mmd 8 x 1-D multiscale, N={n}, fwd+bwd", h, t, hf, tf))
        mem.append((n, *peaks[n], hv, tv))
    common.report(rows, "MMD loss (course's per-feature multiscale MMD), hepml vs torch dense formula")
    print(f"\n{'N':>6s} {'hepml peak MiB':>15s} {'torch peak MiB':>15s} {'hepml value':>14s} {'torch value':>14s}")
    for n, hm, tm, hv, tv in mem:
        print(f"{n:6d} {hm:15.1f} {tm:15.1f} {hv:14.7g} {tv:14.7g}")
    return rows, mem


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="*", default=[None])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1024, 4096])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    for t in args.threads:
        run(t, tuple(args.sizes), args.repeat)


if __name__ == "__main__":
    main()
