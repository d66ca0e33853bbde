"""Normalizing flows, hepml vs zuko, in the same process with the same thread count.

Workloads (6 features, context 16, hidden (64, 64), 3 transforms; the same
weights in both libraries):
  log_prob fwd+bwd  -flow(c).log_prob(x).mean() and backward, batch 2048
  sample            flow(c).sample() for 10,000 contexts (no gradient)
for MAF (affine) and NSF (8 bins).

Run: python -m bench.bench_flows [--threads 1 2]. Prints median times and the
speed-up zuko / hepml (> 1: hepml is faster). Rounds alternate between the two
libraries and the best round of each is kept.
"""
import argparse
import os

import numpy as np

from bench import common

FEATURES, CONTEXT, HIDDEN, TRANSFORMS = 6, 16, (64, 64), 3


def _flows(kind):
    import torch
    import zuko
    import hepml.flows as hf
    torch.manual_seed(0)
    Z, H = {"MAF": (zuko.flows.MAF, hf.MAF), "NSF": (zuko.flows.NSF, hf.NSF)}[kind]
    zf = Z(FEATURES, CONTEXT, transforms=TRANSFORMS, hidden_features=HIDDEN)
    h = H(FEATURES, CONTEXT, transforms=TRANSFORMS, hidden_features=HIDDEN)
    h.load_state_dict({k: v.numpy() for k, v in zf.state_dict().items()})
    return zf, h


def run(n_threads=None, rounds=5, repeat=10):
    if n_threads:
        os.environ["BENCH_THREADS"] = str(n_threads)
    common.setup_threads(n_threads)
    import hepml
    import torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, FEATURES)).astype(np.float32)
    c = rng.standard_normal((2048, CONTEXT)).astype(np.float32)
    cs = rng.standard_normal((10000, CONTEXT)).astype(np.float32)
    rows = []
    for kind in ("MAF", "NSF"):
        zf, hflow = _flows(kind)
        hx, hc, hcs = hepml.tensor(x), hepml.tensor(c), hepml.tensor(cs)
        tx, tc, tcs = torch.tensor(x), torch.tensor(c), torch.tensor(cs)

        def h_train():
            hflow.zero_grad()
            (-hflow(hc).log_prob(hx).mean()).backward()

        def z_train():
            zf.zero_grad()
            (-zf(tc).log_prob(tx).mean()).backward()

        def h_sample():
            with hepml.no_grad():
                hflow(hcs).sample()

        def z_sample():
            with torch.no_grad():
                zf(tcs).sample()

        for name, hfn, zfn in ((f"{kind} log_prob fwd+bwd, batch 2048", h_train, z_train),
                               (f"{kind} sample 10,000", h_sample, z_sample)):
            hb = zb = None
            for _ in range(rounds):
                h = common.timeit(hfn, repeat=repeat)
                z = common.timeit(zfn, repeat=repeat)
                hb = h if hb is None or h[0] < hb[0] else hb
                zb = z if zb is None or z[0] < zb[0] else zb
            rows.append((name, hb[0], zb[0], hb[1], zb[1]))
    common.report(rows, "normalizing flows: hepml vs zuko (torch column = zuko)")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    args = ap.parse_args(argv)
    for n in (args.threads or [None]):
        run(n)


if __name__ == "__main__":
    main()
