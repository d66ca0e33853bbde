"""Optimisers and schedulers against torch.optim on the same problem."""
import numpy as np
import pytest

import hepml
from helpers import assert_close, torch_or_skip


def _run(lib, opt_factory, steps=25, seed=0):
    """Minimise sum(w * w * c + w * d) with per-element c, d; returns the trajectory's end."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    c = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    d = rng.standard_normal((3, 4)).astype(np.float32)
    b0 = rng.standard_normal(4).astype(np.float32)
    if lib == "torch":
        import torch
        w = torch.tensor(w0, requires_grad=True)
        b = torch.tensor(b0, requires_grad=True)
        ct, dt = torch.tensor(c), torch.tensor(d)
    else:
        w = hepml.tensor(w0, requires_grad=True)
        b = hepml.tensor(b0, requires_grad=True)
        ct, dt = hepml.tensor(c), hepml.tensor(d)
    opt = opt_factory([{"params": [w]}, {"params": [b], "lr": 0.05}])
    for _ in range(steps):
        opt.zero_grad()
        loss = w * w * ct + w * dt
        g = np.ones((3, 4), dtype=np.float32)
        if lib == "torch":
            import torch
            loss.backward(torch.tensor(g))
            (b * b).backward(torch.ones(4))
        else:
            loss.backward(gradient=g)
            (b * b).backward(gradient=np.ones(4))
        opt.step()
    return np.array(w.detach().numpy()), np.array(b.detach().numpy())


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.5, betas=(0.8, 0.99))),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, weight_decay=0.1)),
])
def test_optimizers_match_torch(name, kwargs):
    torch = torch_or_skip()
    tw, tb = _run("torch", lambda p: getattr(torch.optim, name)(p, **kwargs))
    hw, hb = _run("hepml", lambda p: getattr(hepml.optim, name)(p, **kwargs))
    assert_close(hw, tw, rtol=2e-5, atol=2e-6)
    assert_close(hb, tb, rtol=2e-5, atol=2e-6)


def test_negative_lr_group_ascends():
    # MDMM updates its multipliers by gradient ascent through a negative lr
    lam = hepml.tensor([0.0], requires_grad=True)
    opt = hepml.optim.AdamW([{"params": [lam], "lr": -0.1, "weight_decay": 0.0}])
    for _ in range(5):
        opt.zero_grad()
        (lam * 2.0).backward(gradient=np.ones(1))
        opt.step()
    assert lam.item() > 0.4


def test_optimizer_state_dict_roundtrip():
    w = hepml.tensor([1.0, 2.0], requires_grad=True)
    opt = hepml.optim.Adam([w], lr=0.1)
    (w * w).backward(gradient=np.ones(2))
    opt.step()
    sd = opt.state_dict()
    w2 = hepml.tensor([1.0, 2.0], requires_grad=True)
    opt2 = hepml.optim.Adam([w2], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1
    assert opt2.state[w2]["step"] == 1


def test_optimizer_bad_input():
    with pytest.raises(ValueError, match="empty"):
        hepml.optim.SGD([], lr=0.1)
    w = hepml.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        hepml.optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        hepml.optim.Adam([w], betas=(1.5, 0.9))
    with pytest.raises(ValueError, match="more than one"):
        hepml.optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)


@pytest.mark.parametrize("sched,kwargs", [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    ("ExponentialLR", dict(gamma=0.9)),
])
def test_schedulers_match_torch(sched, kwargs):
    torch = torch_or_skip()
    tw = torch.zeros(1, requires_grad=True)
    hw = hepml.zeros(1, requires_grad=True)
    topt, hopt = torch.optim.SGD([tw], lr=0.1), hepml.optim.SGD([hw], lr=0.1)
    ts = getattr(torch.optim.lr_scheduler, sched)(topt, **kwargs)
    hs = getattr(hepml.optim.lr_scheduler, sched)(hopt, **kwargs)
    for _ in range(12):
        topt.step()
        ts.step()
        hs.step()
        assert hs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)


def test_reduce_on_plateau_matches_torch():
    torch = torch_or_skip()
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    hopt = hepml.optim.SGD([hepml.zeros(1, requires_grad=True)], lr=1.0)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    hs = hepml.optim.lr_scheduler.ReduceLROnPlateau(hopt, factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    metrics = [5, 4, 4, 4, 4, 4, 3.9999, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    for m in metrics:
        ts.step(m)
        hs.step(m)
        assert hopt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"])
