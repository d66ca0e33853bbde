"""Issue 2's benchmark: an MLP (Linear+SELU, 3 layers of width 64, batch 1024) forward + backward + AdamW
step, and the GEMM-bound Linear (16384x64)@(64x64) forward+backward, hepml vs PyTorch in one process.

Prints time ratios, page faults per step and (in fresh subprocesses) peak memory.
Run: .venv/bin/python -m bench.bench_training_step
"""
import numpy as np

from bench.common import peak_memory_mb, report, setup_threads, timeit


def hepml_mlp_step():
    import hepml
    from hepml import nn
    hepml.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.SELU(), nn.Linear(64, 64), nn.SELU(), nn.Linear(64, 64))
    opt = hepml.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = hepml.randn(1024, 64), hepml.randn(1024, 64)

    def step():
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return step


def torch_mlp_step():
    import torch
    torch.manual_seed(0)
    tnn = torch.nn
    model = tnn.Sequential(tnn.Linear(64, 64), tnn.SELU(), tnn.Linear(64, 64), tnn.SELU(), tnn.Linear(64, 64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(1024, 64), torch.randn(1024, 64)

    def step():
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return step


def hepml_linear():
    import hepml
    x = hepml.randn(16384, 64, requires_grad=True)
    lin = hepml.nn.Linear(64, 64)
    g = np.ones((16384, 64), np.float32)

    def step():
        x.grad = None
        lin.zero_grad()
        lin(x).backward(gradient=g)
    return step


def torch_linear():
    import torch
    x = torch.randn(16384, 64, requires_grad=True)
    lin = torch.nn.Linear(64, 64)
    g = torch.ones(16384, 64)

    def step():
        x.grad = None
        lin.zero_grad()
        lin(x).backward(g)
    return step


def run_steps(factory_name, n=50):
    step = globals()[factory_name]()
    for _ in range(n):
        step()


def main():
    setup_threads()
    rows = []
    for name, h, t in (("MLP 3x64 + SELU, B=1024, fwd+bwd+AdamW", hepml_mlp_step, torch_mlp_step),
                       ("Linear (16384x64)@(64x64), fwd+bwd", hepml_linear, torch_linear)):
        hs, ts = h(), t()
        ht, hf = timeit(hs, repeat=30)
        tt, tf = timeit(ts, repeat=30)
        rows.append((name, ht, tt, hf, tf))
    report(rows, "Training step (issue 2)")
    for lib in ("hepml", "torch"):
        print(f"peak memory, 50 MLP steps, {lib}: {peak_memory_mb('bench_training_step', 'run_steps', lib + '_mlp_step'):.1f} MiB")


if __name__ == "__main__":
    main()
