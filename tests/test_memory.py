"""Memory behaviour: no leaks across training loops, and steady-state steps reuse their buffers."""
import resource

import hepml
from hepml import nn


def _model_and_step():
    hepml.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.SELU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.SELU(),
                          nn.LayerNorm(64), nn.Linear(64, 1))
    opt = hepml.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = hepml.randn(1024, 16), hepml.randn(1024, 1)

    def step():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def test_training_loop_does_not_leak():
    step = _model_and_step()
    for _ in range(50):
        step()
    before = _rss_kib()
    for _ in range(200):
        step()
    grown = _rss_kib() - before
    # 200 steps of ~2 MB of activations each: a leak of even one buffer per step would show as > 100 MB
    assert grown < 8 * 1024, f"resident memory grew by {grown} KiB over 200 steps"


def test_steady_state_steps_make_no_page_faults():
    step = _model_and_step()
    for _ in range(20):
        step()
    misses = hepml._C._pool_stats()["misses"]
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    assert hepml._C._pool_stats()["misses"] == misses, "steady-state steps allocated new buffers"
    # a fresh 4 KiB page per step would already give 50; allow a few from the interpreter itself
    assert faults < 50, f"{faults} page faults in 50 steady-state steps"
