"""A small end-to-end example: regress a smooth function with an MLP, in hepml.

Run with `make course` (until the notebooks take over) or
`.venv/bin/python examples/quickstart.py`.
"""
import time

import hepml
from hepml import nn


def main(steps=300):
    hepml.manual_seed(0)
    x = hepml.rand(4096, 2) * 4 - 2
    y = hepml.sin(x[:, 0:1] * 2) * hepml.cos(x[:, 1:2])
    model = nn.Sequential(nn.Linear(2, 64), nn.SELU(), nn.Linear(64, 64), nn.SELU(), nn.Linear(64, 1))
    opt = hepml.optim.AdamW(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:4d}  mse {loss.item():.5f}")
    dt = time.perf_counter() - t0
    print(f"{hepml.count_parameters(model)} parameters, {steps} steps in {dt:.2f} s "
          f"({1e3 * dt / steps:.2f} ms/step on {hepml.get_num_threads()} threads)")
    return loss.item()


if __name__ == "__main__":
    main()
