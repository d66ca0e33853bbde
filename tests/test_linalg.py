"""matmul (torch.matmul semantics, a @ b) and linear (x W^T + b)."""
import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

# (input shape, other shape): 1-D, 2-D, batched, broadcast batches, mixed ranks
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4,)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 3, 4), (2, 4, 2)),
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((2, 1, 3, 4), (1, 2, 4, 3)),
]


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_gradcheck(sa, sb):
    rng = np.random.default_rng(0)
    gradcheck(hepml.matmul, _rand(rng, sa), _rand(rng, sb))


def _torch_matmul_check(torch, a, b, rtol=1e-5, atol=1e-5):
    rng = np.random.default_rng(3)
    ha, hb = hepml.tensor(a, requires_grad=True), hepml.tensor(b, requires_grad=True)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ho, to = ha @ hb, ta @ tb
    assert ho.shape == tuple(to.shape)
    g = np.asarray(rng.standard_normal(tuple(to.shape)), dtype=np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    # GEMMs sum in different orders: compare with a tolerance scaled to the sums' size
    for h, t, what in [(ho, to.detach(), "output"), (ha.grad, ta.grad, "grad input"), (hb.grad, tb.grad, "grad other")]:
        t = t.numpy()
        scale = max(1.0, float(np.abs(t).max()) if t.size else 1.0)
        assert_close(h, t, rtol=rtol, atol=atol * scale, what=what)


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES + [((64, 16, 32), (32, 32)), ((8, 4, 16, 8), (8, 4, 8, 16)),
                                                   ((3, 16, 8), (1, 8, 16)), ((300, 70), (70, 90)),
                                                   ((40, 3000), (3000, 24))])  # long k: split into slices
def test_matmul_against_torch(sa, sb):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    _torch_matmul_check(torch, _rand(rng, sa), _rand(rng, sb))


def test_matmul_large_folded_against_torch():
    # the course's feed-forward shape: the batch folds into one GEMM (dB is a sum over 16384 rows)
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    _torch_matmul_check(torch, _rand(rng, (1024, 16, 64)), _rand(rng, (64, 64)), rtol=1e-4, atol=1e-5)


def test_matmul_operator_and_methods():
    rng = np.random.default_rng(4)
    a, b = _rand(rng, (3, 4)), _rand(rng, (4, 2))
    ta, tb = hepml.tensor(a), hepml.tensor(b)
    ref = a.astype(np.float64) @ b
    assert_close(ta @ tb, ref, rtol=1e-5, atol=1e-6)
    assert_close(ta.matmul(tb), ref, rtol=1e-5, atol=1e-6)
    assert_close(a @ tb, ref, rtol=1e-5, atol=1e-6)  # numpy defers to Tensor.__rmatmul__
    assert_close(ta @ b, ref, rtol=1e-5, atol=1e-6)
    assert isinstance(a @ tb, hepml.Tensor)
    assert (ta @ tb).grad_fn is None
    assert "MmBackward" in repr(hepml.tensor(a, requires_grad=True) @ tb)


def test_matmul_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"inner dimensions.*\(2, 3\).*\(4, 5\)"):
        hepml.zeros(2, 3) @ hepml.zeros(4, 5)
    with pytest.raises(ValueError, match=r"inner dimensions.*\(3,\).*\(4,\)"):
        hepml.matmul(hepml.zeros(3), hepml.zeros(4))
    with pytest.raises(ValueError, match=r"batch dimensions.*\(2, 3, 4\).*\(3, 4, 5\)"):
        hepml.zeros(2, 3, 4) @ hepml.zeros(3, 4, 5)
    with pytest.raises(ValueError, match="at least one dimension"):
        hepml.matmul(hepml.tensor(2.0), hepml.zeros(3))
    with pytest.raises(TypeError, match="matmul"):
        hepml.matmul(hepml.zeros(3), "abc")


@pytest.mark.parametrize("sa,sb,out", [((0, 4), (4, 5), (0, 5)), ((3, 0), (0, 5), (3, 5)), ((0, 3, 4), (4, 5), (0, 3, 5)),
                                       ((1, 3, 4), (0, 4, 5), (0, 3, 5)), ((0,), (0,), ())])
def test_matmul_empty(sa, sb, out):
    a = hepml.ones(*sa, requires_grad=True)
    b = hepml.ones(*sb, requires_grad=True)
    y = a @ b
    assert y.shape == out
    assert np.all(y.numpy() == 0)  # an empty sum is 0 (and no batch: nothing)
    y.backward(gradient=np.ones(out, dtype=np.float32))
    assert a.grad.shape == a.shape and np.all(a.grad.numpy() == 0)
    assert b.grad.shape == b.shape and np.all(b.grad.numpy() == 0)


def test_matmul_nan_propagates_like_torch():
    torch = torch_or_skip()
    a = np.ones((3, 4), np.float32)
    a[1, 2] = np.nan
    b = np.ones((4, 2), np.float32)
    b[0, 1] = np.inf
    got = (hepml.tensor(a) @ hepml.tensor(b)).numpy()
    want = (torch.tensor(a) @ torch.tensor(b)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])


def test_matmul_independent_of_threads():
    # A broadcast operand's gradient is a sum over batches, a long-k product is a sum
    # over slices: same bits with 1 or 2 threads
    rng = np.random.default_rng(5)
    a, b = _rand(rng, (64, 8, 16)), _rand(rng, (16, 8))
    a2, b2 = _rand(rng, (32, 16, 8)), _rand(rng, (1, 8, 16))
    a3, b3 = _rand(rng, (40, 3000)), _rand(rng, (3000, 24))
    g1 = rng.standard_normal((64, 8, 8)).astype(np.float32)
    g2 = rng.standard_normal((32, 16, 16)).astype(np.float32)
    n0 = hepml.get_num_threads()
    grads = []
    try:
        for nt in (1, 2):
            hepml.set_num_threads(nt)
            ha, hb = hepml.tensor(a, requires_grad=True), hepml.tensor(b, requires_grad=True)
            (ha @ hb).backward(gradient=g1)
            ha2, hb2 = hepml.tensor(a2, requires_grad=True), hepml.tensor(b2, requires_grad=True)
            (ha2 @ hb2).backward(gradient=g2)
            grads.append([ha.grad.numpy().copy(), hb.grad.numpy().copy(), hb2.grad.numpy().copy(),
                          (hepml.tensor(a3) @ hepml.tensor(b3)).numpy().copy()])
    finally:
        hepml.set_num_threads(n0)
    for x, y in zip(*grads):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------- linear

LINEAR_SHAPES = [((5, 3), 4), ((3,), 2), ((2, 3, 4), 5), ((2, 1, 2, 3), 1)]


@pytest.mark.parametrize("xshape,out_f", LINEAR_SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(xshape, out_f, bias):
    rng = np.random.default_rng(6)
    x, w, b = _rand(rng, xshape), _rand(rng, (out_f, xshape[-1])), _rand(rng, (out_f,))
    if bias:
        gradcheck(hepml.linear, x, w, b)
    else:
        gradcheck(lambda x, w: hepml.linear(x, w), x, w)


@pytest.mark.parametrize("xshape,out_f", LINEAR_SHAPES + [((16384, 64), 64), ((1024, 16, 32), 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_against_torch(xshape, out_f, bias):
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    x, w, b = _rand(rng, xshape), _rand(rng, (out_f, xshape[-1])) * 0.2, _rand(rng, (out_f,))
    hx, hw = hepml.tensor(x, requires_grad=True), hepml.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    hb = hepml.tensor(b, requires_grad=True) if bias else None
    tb = torch.tensor(b, requires_grad=True) if bias else None
    ho, to = hepml.linear(hx, hw, hb), torch.nn.functional.linear(tx, tw, tb)
    g = np.asarray(rng.standard_normal(tuple(to.shape)), dtype=np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    pairs = [(ho, to.detach()), (hx.grad, tx.grad), (hw.grad, tw.grad)] + ([(hb.grad, tb.grad)] if bias else [])
    for h, t in pairs:
        t = t.numpy()
        # dW and db sum over all rows (16384 here): relative to the largest entry
        assert_close(h, t, rtol=1e-5, atol=2e-6 * max(1.0, float(np.abs(t).max())))
    assert ho.grad_fn.name() == "LinearBackward"


def test_linear_is_one_node():
    x = hepml.randn(4, 3)
    w = hepml.randn(2, 3, requires_grad=True)
    b = hepml.randn(2, requires_grad=True)
    y = hepml.linear(x, w, b)
    assert [f is None for f in y.grad_fn.next_functions] == [True, True, True]


def test_linear_bad_shapes():
    x = hepml.zeros(2, 4)
    with pytest.raises(ValueError, match=r"'weight' has shape \(3, 5\), expected \(out_features, 4\).*\(2, 4\)"):
        hepml.linear(x, hepml.zeros(3, 5))
    with pytest.raises(ValueError, match=r"'weight' has shape \(4,\)"):
        hepml.linear(x, hepml.zeros(4))
    with pytest.raises(ValueError, match=r"'bias' has shape \(2,\), expected \(3,\)"):
        hepml.linear(x, hepml.zeros(3, 4), hepml.zeros(2))
    with pytest.raises(ValueError, match="at least one dimension"):
        hepml.linear(hepml.tensor(1.0), hepml.zeros(3, 1))
    with pytest.raises(TypeError, match="'weight' must be a tensor"):
        hepml.linear(x, None)


def test_linear_empty_batch_and_features():
    w = hepml.randn(3, 4, requires_grad=True)
    b = hepml.randn(3, requires_grad=True)
    x = hepml.zeros(0, 4, requires_grad=True)
    y = hepml.linear(x, w, b)
    assert y.shape == (0, 3)
    y.backward(gradient=np.zeros((0, 3), np.float32))
    assert np.all(w.grad.numpy() == 0) and np.all(b.grad.numpy() == 0) and x.grad.shape == (0, 4)
    # no input features: the output is the bias
    w0 = hepml.zeros(3, 0, requires_grad=True)
    y0 = hepml.linear(hepml.zeros(5, 0), w0, b.detach())
    assert_close(y0, np.broadcast_to(b.numpy(), (5, 3)))
    y0.backward(gradient=np.ones((5, 3), np.float32))
    assert w0.grad.shape == (3, 0)


def test_linear_nan_propagates():
    x = np.ones((3, 4), np.float32)
    x[1, 0] = np.nan
    y = hepml.linear(hepml.tensor(x), hepml.ones(2, 4), hepml.zeros(2)).numpy()
    assert np.all(np.isnan(y[1])) and np.all(np.isfinite(y[[0, 2]]))


def test_linear_grads_independent_of_threads():
    rng = np.random.default_rng(8)
    x, w, b = _rand(rng, (5000, 64)), _rand(rng, (48, 64)), _rand(rng, (48,))
    g = rng.standard_normal((5000, 48)).astype(np.float32)
    n0 = hepml.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            hepml.set_num_threads(nt)
            hx, hw, hb = (hepml.tensor(a, requires_grad=True) for a in (x, w, b))
            hepml.linear(hx, hw, hb).backward(gradient=g)
            res.append([hx.grad.numpy().copy(), hw.grad.numpy().copy(), hb.grad.numpy().copy()])
    finally:
        hepml.set_num_threads(n0)
    for p, q in zip(*res):
        np.testing.assert_array_equal(p, q)
