"""Attention and a transformer encoder layer, hepml vs PyTorch, same process, same threads.

Workloads (the course's shapes):
  mha fwd (eval)     MultiheadAttention(64, 4, batch_first) forward under no_grad in
                     eval mode, B=1024, T=16, with a key padding mask (4..16 valid
                     tokens per event); torch takes its native fast path here
  mha fwd (train)    the same forward with the graph recorded (dropout 0)
  mha fwd+bwd        forward + backward of sum(out * W), dropout 0
  enc layer step     TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=512,
                     batch_first) training step at B=1024, T=16 with a padding mask:
                     forward, MSE to a fixed target, backward, AdamW step; with the
                     default dropout 0.1 and with dropout 0

Both libraries get the same weights (hepml's are copied from torch's state dict)
and the same inputs. Prints median times and torch/hepml (> 1: hepml faster),
and the peak memory growth of each case measured in fresh subprocesses.
Run: python -m bench.bench_attention [--threads 1 2] [--reps 20] [--no-memory]
"""
import argparse
import sys

import numpy as np

from bench.common import peak_memory_mb, report, setup_threads, timeit

B, T, E, H = 1024, 16, 64, 4
D_MODEL, NHEAD, FF = 32, 4, 512


def _padding_mask(rng, b, t):
    lengths = rng.integers(4, t + 1, size=b)
    return np.arange(t)[None, :] >= lengths[:, None]  # True = padded


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((B, T, E)).astype(np.float32),
            "w": rng.standard_normal((B, T, E)).astype(np.float32),
            "kpm": _padding_mask(rng, B, T),
            "src": rng.standard_normal((B, T, D_MODEL)).astype(np.float32),
            "target": rng.standard_normal((B, T, D_MODEL)).astype(np.float32)}


def _copy_weights(tmodule, hmodule):
    import hepml
    hmodule.load_state_dict(hepml.load_torch_state_dict(tmodule.state_dict()))


# ------------------------------------------------------------------ builders


def mha_cases(data):
    """{case: (hepml_fn, torch_fn)} for the MultiheadAttention workloads."""
    import torch

    import hepml
    tm = torch.nn.MultiheadAttention(E, H, batch_first=True)
    hm = hepml.nn.MultiheadAttention(E, H, batch_first=True)
    _copy_weights(tm, hm)
    tx, tw, tk = torch.tensor(data["x"]), torch.tensor(data["w"]), torch.tensor(data["kpm"])
    hx, hw, hk = hepml.tensor(data["x"]), hepml.tensor(data["w"]), hepml.tensor(data["kpm"])
    txg = tx.clone().requires_grad_(True)
    hxg = hepml.tensor(data["x"], requires_grad=True)

    def h_eval():
        hm.eval()
        with hepml.no_grad():
            hm(hx, hx, hx, key_padding_mask=hk, need_weights=False)

    def t_eval():
        tm.eval()
        with torch.no_grad():
            tm(tx, tx, tx, key_padding_mask=tk, need_weights=False)

    def h_fwd():
        hm.train()
        hm(hxg, hxg, hxg, key_padding_mask=hk, need_weights=False)

    def t_fwd():
        tm.train()
        tm(txg, txg, txg, key_padding_mask=tk, need_weights=False)

    def h_fb():
        hm.train()
        hm.zero_grad()
        hxg.grad = None
        out, _ = hm(hxg, hxg, hxg, key_padding_mask=hk, need_weights=False)
        (out * hw).sum().backward()

    def t_fb():
        tm.train()
        tm.zero_grad()
        txg.grad = None
        out, _ = tm(txg, txg, txg, key_padding_mask=tk, need_weights=False)
        (out * tw).sum().backward()

    return {"MHA fwd (eval, no_grad) B=1024 T=16 E=64 H=4": (h_eval, t_eval),
            "MHA fwd (train, graph) B=1024 T=16 E=64 H=4": (h_fwd, t_fwd),
            "MHA fwd+bwd B=1024 T=16 E=64 H=4": (h_fb, t_fb)}


def encoder_cases(data, dropouts=(0.1, 0.0)):
    import torch

    import hepml
    cases = {}
    tk, hk = torch.tensor(data["kpm"]), hepml.tensor(data["kpm"])
    tsrc, hsrc = torch.tensor(data["src"]), hepml.tensor(data["src"])
    ttgt, htgt = torch.tensor(data["target"]), hepml.tensor(data["target"])
    for p in dropouts:
        tl = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=p, batch_first=True)
        hl = hepml.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=p, batch_first=True)
        _copy_weights(tl, hl)
        topt = torch.optim.AdamW(tl.parameters(), lr=1e-4)
        hopt = hepml.optim.AdamW(hl.parameters(), lr=1e-4)

        def h_step(hl=hl, hopt=hopt):
            hopt.zero_grad()
            loss = hepml.mse_loss(hl(hsrc, src_key_padding_mask=hk), htgt)
            loss.backward()
            hopt.step()

        def t_step(tl=tl, topt=topt):
            topt.zero_grad()
            loss = torch.nn.functional.mse_loss(tl(tsrc, src_key_padding_mask=tk), ttgt)
            loss.backward()
            topt.step()

        cases[f"EncoderLayer(32, 4, ff 512, dropout {p}) train step"] = (h_step, t_step)
    return cases


# --------------------------------------------------------- peak memory runs


def memory_run(library, case, threads, steps=5):
    """Run one case `steps` times with one library (called in a fresh process)."""
    setup_threads(threads)
    data = _data()
    cases = {**mha_cases(data), **encoder_cases(data)}
    fn = cases[case][0 if library == "hepml" else 1]
    for _ in range(steps):
        fn()


# ---------------------------------------------------------------------- main


def run(threads, reps=15, rounds=3, memory=True):
    import hepml
    n = setup_threads(threads)
    data = _data()
    cases = {**mha_cases(data), **encoder_cases(data)}
    rows = []
    for name, (hf, tf) in cases.items():
        # alternate libraries in rounds so a noisy phase of a shared machine hits both
        hs, ts = [], []
        for _ in range(rounds):
            h, hfl = timeit(hf, repeat=reps, warmup=2)
            t, tfl = timeit(tf, repeat=reps, warmup=2)
            hs.append((h, hfl))
            ts.append((t, tfl))
        h, hfl = min(hs)
        t, tfl = min(ts)
        rows.append((name, h, t, hfl, tfl))
    report(rows, f"attention benchmarks, hepml {hepml.__version__} vs torch")
    if memory:
        print(f"\npeak RSS growth over 5 calls in a fresh process ({n} threads), MiB:")
        print(f"{'case':48s} {'hepml':>8s} {'torch':>8s}")
        for name in cases:
            mh = peak_memory_mb("bench_attention", "memory_run", "hepml", name, n)
            mt = peak_memory_mb("bench_attention", "memory_run", "torch", name, n)
            print(f"{name:48s} {mh:8.1f} {mt:8.1f}")
            sys.stdout.flush()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts to run (default: BENCH_THREADS or all cores)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess runs")
    args = ap.parse_args([] if argv is None and __name__ != "__main__" else argv)
    import torch

    import hepml
    print(f"hepml {hepml.__version__}, torch {torch.__version__}")
    for nt in args.threads or [None]:
        run(nt, args.reps, args.rounds, memory=not args.no_memory)


if __name__ == "__main__":
    main()
