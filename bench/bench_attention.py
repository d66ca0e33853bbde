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
and, per case and library, how far the peak RSS rises above the RSS after the
imports while the case is set up and called 5 times, in a fresh process that
imports only that library (hepml's figure includes its buffer pool).
The machine may be shared: compare ratios from one run, not absolute times.
Run: python -m bench.bench_attention [--threads 1 2] [--reps 20] [--no-memory]
"""
import argparse
import sys

import numpy as np

from bench.common import report, setup_threads, timeit

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
    if tmodule is not None and hmodule is not None:
        import hepml
        hmodule.load_state_dict(hepml.load_torch_state_dict(tmodule.state_dict()))


MHA_EVAL = "MHA fwd (eval, no_grad) B=1024 T=16 E=64 H=4"
MHA_FWD = "MHA fwd (train, graph) B=1024 T=16 E=64 H=4"
MHA_FB = "MHA fwd+bwd B=1024 T=16 E=64 H=4"


def _enc_name(p):
    return f"EncoderLayer(32, 4, ff 512, dropout {p}) train step"


# ------------------------------------------------------------------ builders


def _hepml_mha(data, hm):
    import hepml
    hx, hw, hk = hepml.tensor(data["x"]), hepml.tensor(data["w"]), hepml.tensor(data["kpm"])
    hxg = hepml.tensor(data["x"], requires_grad=True)

    def h_eval():
        hm.eval()
        with hepml.no_grad():
            hm(hx, hx, hx, key_padding_mask=hk, need_weights=False)

    def h_fwd():
        hm.train()
        hm(hxg, hxg, hxg, key_padding_mask=hk, need_weights=False)

    def h_fb():
        hm.train()
        hm.zero_grad()
        hxg.grad = None
        out, _ = hm(hxg, hxg, hxg, key_padding_mask=hk, need_weights=False)
        (out * hw).sum().backward()

    return {MHA_EVAL: h_eval, MHA_FWD: h_fwd, MHA_FB: h_fb}


def _torch_mha(data, tm):
    import torch
    tx, tw, tk = torch.tensor(data["x"]), torch.tensor(data["w"]), torch.tensor(data["kpm"])
    txg = tx.clone().requires_grad_(True)

    def t_eval():
        tm.eval()
        with torch.no_grad():
            tm(tx, tx, tx, key_padding_mask=tk, need_weights=False)

    def t_fwd():
        tm.train()
        tm(txg, txg, txg, key_padding_mask=tk, need_weights=False)

    def t_fb():
        tm.train()
        tm.zero_grad()
        txg.grad = None
        out, _ = tm(txg, txg, txg, key_padding_mask=tk, need_weights=False)
        (out * tw).sum().backward()

    return {MHA_EVAL: t_eval, MHA_FWD: t_fwd, MHA_FB: t_fb}


def _hepml_step(data, hl):
    import hepml
    hk, hsrc, htgt = hepml.tensor(data["kpm"]), hepml.tensor(data["src"]), hepml.tensor(data["target"])
    opt = hepml.optim.AdamW(hl.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        loss = hepml.mse_loss(hl(hsrc, src_key_padding_mask=hk), htgt)
        loss.backward()
        opt.step()
    return step


def _torch_step(data, tl):
    import torch
    tk, tsrc, ttgt = torch.tensor(data["kpm"]), torch.tensor(data["src"]), torch.tensor(data["target"])
    opt = torch.optim.AdamW(tl.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(tl(tsrc, src_key_padding_mask=tk), ttgt)
        loss.backward()
        opt.step()
    return step


def build_cases(data, with_hepml=True, with_torch=True, dropouts=(0.1, 0.0)):
    """{case: (hepml_fn or None, torch_fn or None)}. With both libraries the
    hepml models get torch's initial weights (through load_torch_state_dict)."""
    hm = tm = None
    if with_torch:
        import torch
        tm = torch.nn.MultiheadAttention(E, H, batch_first=True)
    if with_hepml:
        import hepml
        hm = hepml.nn.MultiheadAttention(E, H, batch_first=True)
    _copy_weights(tm, hm)
    hc = _hepml_mha(data, hm) if with_hepml else {}
    tc = _torch_mha(data, tm) if with_torch else {}
    for p in dropouts:
        tl = hl = None
        if with_torch:
            tl = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=p, batch_first=True)
            tc[_enc_name(p)] = _torch_step(data, tl)
        if with_hepml:
            hl = hepml.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=p, batch_first=True)
            hc[_enc_name(p)] = _hepml_step(data, hl)
        _copy_weights(tl, hl)
    names = list(hc or tc)
    return {n: (hc.get(n), tc.get(n)) for n in names}


# --------------------------------------------------------- peak memory runs


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_run(library, case, threads, steps=5):
    """In a fresh process: import only `library`, then print (MiB) how far the
    peak RSS rises above the RSS after the imports while the case is set up
    (inputs, model) and called `steps` times. hepml's figure includes the
    pages its buffer pool keeps. Linux only (/proc/self/clear_refs resets the
    high-water mark after the imports)."""
    import json

    import hepml
    hepml.set_num_threads(threads)
    if library == "torch":
        import torch
        torch.set_num_threads(threads)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _rss_kib("VmRSS")
    data = _data()
    if library == "torch":
        fn = build_cases(data, with_hepml=False)[case][1]
    else:
        fn = build_cases(data, with_torch=False)[case][0]
    for _ in range(steps):
        fn()
    print(json.dumps((_rss_kib("VmHWM") - base) / 1024))


def _peak_growth_mb(library, case, threads):
    import json
    import os
    import subprocess
    code = f"from bench.bench_attention import memory_run; memory_run({library!r}, {case!r}, {threads!r})"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- main


def run(threads, reps=15, rounds=3, memory=True):
    import hepml
    n = setup_threads(threads)
    data = _data()
    cases = build_cases(data)
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
    import os
    os.environ["BENCH_THREADS"] = str(n)  # bench.common.report prints the thread count from it
    report(rows, f"attention benchmarks, hepml {hepml.__version__} vs torch")
    if memory:
        print(f"\npeak RSS above the post-import RSS for set-up + 5 calls, fresh process per library "
              f"({n} threads), MiB (inputs ~13 MiB):")
        print(f"{'case':48s} {'hepml':>8s} {'torch':>8s}")
        for name in cases:
            mh = _peak_growth_mb("hepml", name, n)
            mt = _peak_growth_mb("torch", name, n)
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
