"""Transformer blocks at the course's shapes, forward + backward, hepml vs PyTorch in one process.

Workloads (d_model 32, 4 heads, batch 1024, 16 source tokens with a key padding mask
of 4..16 valid tokens per event, training mode):
  MHA(32, 4) fwd+bwd      nn.MultiheadAttention self-attention, loss sum(out * W)
  EncoderLayer fwd+bwd    nn.TransformerEncoderLayer(32, 4, dim_feedforward=512), MSE to a
                          fixed target, with the default dropout 0.1 and with dropout 0
  WW Transformer fwd+bwd  the WW regression model's shape: nn.Transformer(32, 4, 4 encoder +
                          2 decoder layers, dim_feedforward=512), 16 source tokens, 2 target
                          tokens, memory_key_padding_mask = the source mask, MSE to a fixed
                          target; dropout 0.1 and 0

No optimiser step (bench_attention.py times a full encoder-layer training step with AdamW);
gradients are reset to None before each call. Both libraries get the same weights (hepml's
are loaded from torch's state dict) and the same inputs. Prints the best time of each library
(the two are timed in alternating rounds, so a busy phase of a shared machine hits both) and
torch / hepml (> 1: hepml faster). Compare ratios from one run, not absolute times.
Run: python -m bench.bench_transformer_layer [--threads 1 2] [--reps 10] [--rounds 3]
"""
import argparse
import os

import numpy as np

from bench.common import report, setup_threads, timeit

B, S, T_TGT = 1024, 16, 2
D_MODEL, NHEAD, FF = 32, 4, 512


def _data(seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, S + 1, size=B)
    return {"src": rng.standard_normal((B, S, D_MODEL)).astype(np.float32),
            "w": rng.standard_normal((B, S, D_MODEL)).astype(np.float32),
            "tgt": rng.standard_normal((B, T_TGT, D_MODEL)).astype(np.float32),
            "y_src": rng.standard_normal((B, S, D_MODEL)).astype(np.float32),
            "y_tgt": rng.standard_normal((B, T_TGT, D_MODEL)).astype(np.float32),
            "kpm": np.arange(S)[None, :] >= lengths[:, None]}  # True = padded


def _copy_weights(tmodule, hmodule):
    import hepml
    hmodule.load_state_dict(hepml.load_torch_state_dict(tmodule.state_dict()))


def _steps(lib, data, module, kind):
    """fwd+bwd closure for `module` of library `lib` ('hepml' or 'torch')."""
    if lib == "torch":
        import torch as L
        mse = L.nn.functional.mse_loss
    else:
        import hepml as L
        mse = L.mse_loss
    t = {k: L.tensor(v) for k, v in data.items()}
    if kind == "mha":
        x = L.tensor(data["src"], requires_grad=True)

        def step():
            module.zero_grad()
            x.grad = None
            out, _ = module(x, x, x, key_padding_mask=t["kpm"], need_weights=False)
            (out * t["w"]).sum().backward()
    elif kind == "enc":
        def step():
            module.zero_grad()
            mse(module(t["src"], src_key_padding_mask=t["kpm"]), t["y_src"]).backward()
    else:
        def step():
            module.zero_grad()
            out = module(t["src"], t["tgt"], src_key_padding_mask=t["kpm"], memory_key_padding_mask=t["kpm"])
            mse(out, t["y_tgt"]).backward()
    return step


def build_cases(data, dropouts=(0.1, 0.0)):
    """{name: (hepml_fn, torch_fn)} with torch's initial weights copied into hepml."""
    import torch

    import hepml
    torch.manual_seed(0)
    specs = [("MHA(32, 4) fwd+bwd", "mha", lambda lib: lib.nn.MultiheadAttention(D_MODEL, NHEAD, batch_first=True))]
    for p in dropouts:
        specs.append((f"EncoderLayer(32,4,ff 512, dropout {p}) fwd+bwd", "enc",
                      lambda lib, p=p: lib.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=p, batch_first=True)))
    for p in dropouts:
        specs.append((f"WW Transformer 4+2 layers, dropout {p} fwd+bwd", "ww",
                      lambda lib, p=p: lib.nn.Transformer(D_MODEL, NHEAD, 4, 2, FF, dropout=p, batch_first=True)))
    cases = {}
    for name, kind, make in specs:
        tm, hm = make(torch), make(hepml)
        _copy_weights(tm, hm)
        tm.train()
        hm.train()
        cases[name] = (_steps("hepml", data, hm, kind), _steps("torch", data, tm, kind))
    return cases


def run(threads=None, reps=10, rounds=3):
    import hepml
    n = setup_threads(threads)
    cases = build_cases(_data())
    rows = []
    for name, (hf, tf) in cases.items():
        hs, ts = [], []
        for _ in range(rounds):
            hs.append(timeit(hf, repeat=reps, warmup=2))
            ts.append(timeit(tf, repeat=reps, warmup=2))
        (h, hfl), (t, tfl) = min(hs), min(ts)
        rows.append((name, h, t, hfl, tfl))
    os.environ["BENCH_THREADS"] = str(n)  # bench.common.report prints the thread count from it
    report(rows, f"transformer blocks (B={B}, {S} tokens, d_model {D_MODEL}), hepml {hepml.__version__} vs torch")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts to run (default: BENCH_THREADS or all cores)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args([] if argv is None and __name__ != "__main__" else argv)
    import torch

    import hepml
    print(f"hepml {hepml.__version__}, torch {torch.__version__}")
    for nt in args.threads or [None]:
        run(nt, args.reps, args.rounds)


if __name__ == "__main__":
    main()
