"""Linear layers, hepml vs PyTorch, in the same process with the same thread count.

Two workloads, forward + backward (no optimiser step; gradients reset to None
before each step, as zero_grad(set_to_none=True) does):
  linear  one Linear(64, 64) on a [16384, 64] batch, loss = mse to a fixed target
  mlp     3 x (Linear(64, 64) + SELU) on a [1024, 64] batch, loss = mse to a fixed target

Run: python -m bench.bench_linear [--threads 1 2]   (default: BENCH_THREADS or
all cores). Prints median times and the speed-up torch / hepml (> 1: hepml is
faster). The two libraries are timed in alternating rounds and the best round
of each is kept, so a busy phase of a shared machine does not hit only one.
"""
import argparse
import os

import numpy as np

from bench import common

WORKLOADS = {
    # name: (batch, layer sizes, SELU after each layer)
    "linear [16384x64] @ [64x64]^T + b, fwd+bwd": (16384, [64, 64], False),
    "mlp 3 x (Linear 64 + SELU), batch 1024, fwd+bwd": (1024, [64, 64, 64, 64], True),
}


def _params(rng, sizes):
    """(weight, bias) pairs with nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in))."""
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        out.append((rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                    rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    return out


def hepml_step(x, target, params, activation):
    import hepml
    hx, ht = hepml.tensor(x), hepml.tensor(target)
    hp = [(hepml.tensor(w, requires_grad=True), hepml.tensor(b, requires_grad=True)) for w, b in params]

    def step():
        for w, b in hp:
            w.grad = None
            b.grad = None
        h = hx
        for w, b in hp:
            h = hepml.linear(h, w, b)
            if activation:
                h = hepml.selu(h)
        hepml.mse_loss(h, ht).backward()
    return step


def torch_step(x, target, params, activation):
    import torch
    F = torch.nn.functional
    tx, tt = torch.tensor(x), torch.tensor(target)
    tp = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for w, b in params]

    def step():
        for w, b in tp:
            w.grad = None
            b.grad = None
        h = tx
        for w, b in tp:
            h = F.linear(h, w, b)
            if activation:
                h = F.selu(h)
        F.mse_loss(h, tt).backward()
    return step


def run(n_threads=None, rounds=5, repeat=30):
    if n_threads:
        os.environ["BENCH_THREADS"] = str(n_threads)  # common.report prints this count
    common.setup_threads(n_threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, (batch, sizes, act) in WORKLOADS.items():
        x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        target = rng.standard_normal((batch, sizes[-1])).astype(np.float32)
        params = _params(rng, sizes)
        hs, ts = hepml_step(x, target, params, act), torch_step(x, target, params, act)
        best_h, best_t = (float("inf"), 0.0), (float("inf"), 0.0)
        for _ in range(rounds):
            best_h = min(best_h, common.timeit(hs, repeat=repeat, warmup=3))
            best_t = min(best_t, common.timeit(ts, repeat=repeat, warmup=3))
        rows.append((name, best_h[0], best_t[0], best_h[1], best_t[1]))
    common.report(rows, "Linear layers, hepml vs torch")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description="Linear / MLP forward+backward, hepml vs torch")
    ap.add_argument("--threads", type=int, nargs="+", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv if argv is not None else [])
    for n in args.threads or [None]:
        run(n, args.rounds, args.repeat)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
