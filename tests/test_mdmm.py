"""hepml.mdmm against the mdmm package, and on a problem with a known constrained optimum."""
import numpy as np
import pytest

import hepml
from hepml import mdmm
from helpers import assert_close

A = np.array([1.0, 2.0, 3.0, -0.5], dtype=np.float32)


def _trajectory(lib, kind, steps=300, lr=2e-2, **opt_kwargs):
    if lib == "torch":
        import mdmm as ref
        import torch
        x = torch.nn.Parameter(torch.zeros(4))
        a = torch.tensor(A)
        objective = lambda: ((x - a) ** 2).sum()  # noqa: E731
        total = lambda: x.sum()  # noqa: E731
        mod, optim = ref, torch.optim.AdamW
    else:
        x = hepml.nn.Parameter(hepml.zeros(4))
        a = hepml.tensor(A)
        objective = lambda: ((x - a) * (x - a)).sum()  # noqa: E731
        total = lambda: x.sum()  # noqa: E731
        mod, optim = mdmm, hepml.optim.AdamW
    cons = {"eq": lambda: mod.EqConstraint(total, 2.0, scale=1.0, damping=2.0),
            "max": lambda: mod.MaxConstraint(total, 2.0, scale=2.0, damping=1.0),
            "min": lambda: mod.MinConstraint(total, 10.0, scale=1.0, damping=1.0),
            "maxhard": lambda: mod.MaxConstraintHard(total, 2.0, damping=1.0)}[kind]()
    module = mod.MDMM([cons])
    opt = module.make_optimizer([x], optimizer=optim, lr=lr, **opt_kwargs)
    history = []
    for _ in range(steps):
        ret = module(objective())
        opt.zero_grad()
        ret.value.backward()
        opt.step()
        history.append(float(ret.fn_values[0].item()))
    return np.array(x.detach().numpy()), float(cons.lmbda.item()), np.array(history)


@pytest.mark.parametrize("kind", ["eq", "max", "min", "maxhard"])
def test_matches_mdmm_package(kind):
    pytest.importorskip("mdmm")
    pytest.importorskip("torch")
    tx, tl, th = _trajectory("torch", kind)
    hx, hl, hh = _trajectory("hepml", kind)
    assert_close(hx, tx, rtol=1e-4, atol=1e-4, what="parameters after 300 steps")
    assert hl == pytest.approx(tl, rel=1e-3, abs=1e-4)
    assert_close(hh, th, rtol=1e-4, atol=1e-4, what="constraint history")


def test_reaches_analytic_constrained_optimum():
    # minimise |x - a|^2 subject to sum(x) = 2: the projection x* = a - (sum(a) - 2) / 4
    x, lam, hist = _trajectory("hepml", "eq", steps=3000, lr=1e-2, weight_decay=0.0)
    expected = A - (A.sum() - 2.0) / 4
    assert_close(x, expected, atol=2e-3, rtol=0)
    assert hist[-1] == pytest.approx(2.0, abs=1e-3)


def test_active_min_constraint_is_met():
    # sum(a) = 5.5 violates sum(x) >= 10, so the constraint is active and the optimum sits on it
    x, lam, _ = _trajectory("hepml", "min", steps=2000, lr=1e-2, weight_decay=0.0)
    assert x.sum() == pytest.approx(10.0, abs=2e-2)


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        mdmm.EqConstraint(3.0, 1.0)
    with pytest.raises(ValueError, match="damping"):
        mdmm.MaxConstraint(lambda: hepml.zeros(1), 1.0, damping=-1)
    c = mdmm.EqConstraint(lambda: 3.0, 1.0)
    with pytest.raises(TypeError, match="must return a hepml.Tensor"):
        mdmm.MDMM([c])(hepml.tensor(0.0))


def test_state_dict_holds_multipliers():
    c = mdmm.MaxConstraint(lambda: hepml.tensor(0.5), 1.0)
    sd = mdmm.MDMM([c]).state_dict()
    assert set(sd) == {"0.scale", "0.damping", "0.lmbda", "0.max", "0.slack"}
