"""mse_loss, l1_loss, huber_loss, smooth_l1_loss."""
import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

REDUCTIONS = ["mean", "sum", "none"]
# (name, extra keyword arguments)
LOSSES = [("mse_loss", {}), ("l1_loss", {}), ("huber_loss", {}), ("huber_loss", {"delta": 0.5}),
          ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.3}), ("smooth_l1_loss", {"beta": 0.0})]
IDS = [f"{n}{kw}" for n, kw in LOSSES]


def _pair(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    t = rng.standard_normal(shape).astype(np.float32)
    return x, t


@pytest.mark.parametrize("name,kw", LOSSES, ids=IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_gradcheck(name, kw, reduction):
    rng = np.random.default_rng(0)
    x, t = _pair(rng, (4, 3))
    # keep |x - t| away from the kinks (0, delta, beta) where finite differences straddle
    d = x - t
    for k in (0.0, kw.get("delta", 1.0), kw.get("beta", 1.0)):
        near = np.abs(np.abs(d) - k) < 0.05
        x[near] += 0.2
    fn = getattr(hepml, name)
    gradcheck(lambda a, b: fn(a, b, reduction=reduction, **kw), x, t)


@pytest.mark.parametrize("name,kw", LOSSES, ids=IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5,), (7, 3), (2, 3, 4)])
def test_loss_against_torch(name, kw, reduction, shape):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x, t = _pair(rng, shape)
    x.flat[0] = t.flat[0]  # one exact tie: the L1 kink
    hx, ht = hepml.tensor(x, requires_grad=True), hepml.tensor(t, requires_grad=True)
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    ho = getattr(hepml, name)(hx, ht, reduction=reduction, **kw)
    to = getattr(torch.nn.functional, name)(tx, tt, reduction=reduction, **kw)
    assert ho.shape == tuple(to.shape)
    g = np.asarray(rng.standard_normal(tuple(to.shape)), dtype=np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(ho, to.detach().numpy(), rtol=1e-5, atol=1e-6, what="loss")
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-7, what="grad input")
    assert_close(ht.grad, tt.grad.numpy(), rtol=1e-5, atol=1e-7, what="grad target")


def test_target_without_grad_and_grad_names():
    x = hepml.tensor([1.0, 2.0], requires_grad=True)
    loss = hepml.mse_loss(x, [0.0, 0.0])
    assert loss.shape == () and loss.grad_fn.name() == "MseLossBackward"
    loss.backward()
    assert_close(x.grad, [1.0, 2.0])  # 2 * d / n
    assert hepml.huber_loss(x, hepml.zeros(2)).grad_fn.name() == "HuberLossBackward"


def test_large_reduction_accurate_and_thread_independent():
    rng = np.random.default_rng(2)
    n = 3_000_001
    x = (rng.standard_normal(n) * 3 + 100).astype(np.float32)
    t = rng.standard_normal(n).astype(np.float32)
    ref = np.mean((x.astype(np.float64) - t) ** 2)
    n0 = hepml.get_num_threads()
    vals = []
    try:
        for nt in (1, 2):
            hepml.set_num_threads(nt)
            vals.append([getattr(hepml, f)(hepml.tensor(x), hepml.tensor(t), reduction=r).item()
                         for f in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss") for r in ("mean", "sum")])
    finally:
        hepml.set_num_threads(n0)
    assert vals[0] == vals[1]
    # double accumulation: only the float32 rounding of each term and of the result remain
    assert abs(vals[0][0] - ref) <= 2e-7 * ref


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"mse_loss\(\): 'input' has shape \(3,\) but 'target' has shape \(3, 1\)"):
        hepml.mse_loss(hepml.zeros(3), hepml.zeros(3, 1))
    with pytest.raises(ValueError, match="requires equal shapes"):
        hepml.huber_loss(hepml.zeros(2, 3), hepml.zeros(3))


def test_bad_arguments():
    x = hepml.zeros(3)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        hepml.l1_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="delta must be positive"):
        hepml.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="beta must be non-negative"):
        hepml.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(TypeError, match="'target' must be a tensor"):
        hepml.mse_loss(x, None)


def test_empty_inputs_like_torch():
    torch = torch_or_skip()
    for name in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"):
        for red in REDUCTIONS:
            h = getattr(hepml, name)(hepml.zeros(0, 2), hepml.zeros(0, 2), reduction=red).numpy()
            t = getattr(torch.nn.functional, name)(torch.zeros(0, 2), torch.zeros(0, 2), reduction=red).numpy()
            assert h.shape == t.shape
            np.testing.assert_array_equal(h, t)  # mean of nothing is NaN, sum is 0


@pytest.mark.parametrize("name,kw", LOSSES, ids=IDS)
def test_nan_propagates_like_torch(name, kw):
    torch = torch_or_skip()
    x = np.array([np.nan, 1.0, -2.0, 0.5], np.float32)
    t = np.array([0.0, np.nan, 1.0, 0.5], np.float32)
    for red in REDUCTIONS:
        hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ho = getattr(hepml, name)(hx, hepml.tensor(t), reduction=red, **kw)
        to = getattr(torch.nn.functional, name)(tx, torch.tensor(t), reduction=red, **kw)
        np.testing.assert_allclose(ho.numpy(), to.detach().numpy(), rtol=1e-6, equal_nan=True)
        g = np.ones(tuple(to.shape), np.float32)
        ho.backward(gradient=g)
        to.backward(torch.tensor(g))
        np.testing.assert_allclose(hx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, equal_nan=True)
