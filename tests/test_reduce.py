"""Reductions, softmax/log_softmax and cumsum: gradients, agreement with torch,
zero-size inputs, determinism across thread counts."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 4)]

# var over a size-1 dim has no degrees of freedom: nan in both (torch warns)
pytestmark = pytest.mark.filterwarnings("ignore:var... degrees of freedom is <= 0:UserWarning")


def dims_for(ndim):
    out = [None, 0, -1, ()]
    if ndim >= 2:
        out += [(0, -1), (1,)]
    if ndim >= 3:
        out += [(0, 2), (1, 2)]
    if ndim >= 4:
        out += [(0, 2, 3), (1, 3)]
    return out


def cases():
    for shape in SHAPES:
        for dim in dims_for(len(shape)):
            for keepdim in (False, True):
                yield shape, dim, keepdim


def torch_dim(dim, ndim):
    """torch spelling of 'every dim' for functions that need an explicit dim."""
    if dim is None or dim == ():
        return tuple(range(ndim))
    return dim


def run_both(torch, hfn, tfn, x, g_seed=0):
    """Forward and backward of hepml and torch on the same data; returns
    (hepml out, torch out, hepml grad, torch grad)."""
    hx = hepml.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ho, to = hfn(hx), tfn(tx)
    g = np.random.default_rng(g_seed).standard_normal(tuple(to.shape)).astype(np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    return ho, to.detach().numpy(), hx.grad, tx.grad.numpy()


def vnorm(x, p, d, k):
    import torch
    return torch.linalg.vector_norm(x, p, dim=torch_dim(d, x.ndim), keepdim=k)


REDUCTIONS = {
    "sum": (lambda x, d, k: hepml.sum(x, d, k), lambda x, d, k: x.sum(dim=torch_dim(d, x.ndim), keepdim=k)),
    "mean": (lambda x, d, k: x.mean(d, k), lambda x, d, k: x.mean(dim=torch_dim(d, x.ndim), keepdim=k)),
    "amax": (lambda x, d, k: x.amax(d, k), lambda x, d, k: x.amax(dim=torch_dim(d, x.ndim), keepdim=k)),
    "amin": (lambda x, d, k: hepml.amin(x, d, k), lambda x, d, k: x.amin(dim=torch_dim(d, x.ndim), keepdim=k)),
    "var": (lambda x, d, k: x.var(d, keepdim=k), lambda x, d, k: x.var(dim=torch_dim(d, x.ndim), keepdim=k)),
    "std0": (lambda x, d, k: x.std(d, unbiased=False, keepdim=k),
             lambda x, d, k: x.std(dim=torch_dim(d, x.ndim), correction=0, keepdim=k)),
    "logsumexp": (lambda x, d, k: x.logsumexp(d, k),
                  lambda x, d, k: x.logsumexp(dim=torch_dim(d, x.ndim), keepdim=k)),
    "nansum": (lambda x, d, k: x.nansum(d, k), lambda x, d, k: x.nansum(dim=torch_dim(d, x.ndim), keepdim=k)),
    "nanmean": (lambda x, d, k: x.nanmean(d, k), lambda x, d, k: x.nanmean(dim=torch_dim(d, x.ndim), keepdim=k)),
    "norm": (lambda x, d, k: x.norm(dim=d, keepdim=k), lambda x, d, k: vnorm(x, 2, d, k)),
    "norm1": (lambda x, d, k: hepml.norm(x, 1, d, k), lambda x, d, k: vnorm(x, 1, d, k)),
    "norm3": (lambda x, d, k: hepml.norm(x, 3, d, k), lambda x, d, k: vnorm(x, 3, d, k)),
}


@pytest.mark.parametrize("op", sorted(REDUCTIONS))
@pytest.mark.parametrize("shape,dim,keepdim", list(cases()))
def test_reduction_against_torch(op, shape, dim, keepdim):
    torch = torch_or_skip()
    hfn, tfn = REDUCTIONS[op]
    x = np.random.default_rng(hash((shape, str(dim))) % 2**32).standard_normal(shape).astype(np.float32)
    ho, to, hg, tg = run_both(torch, lambda t: hfn(t, dim, keepdim), lambda t: tfn(t, dim, keepdim), x)
    assert_close(ho, to, rtol=1e-5, atol=1e-6, what=f"{op} forward")
    # var/std divide by small counts and norm3 goes through powers: a few ulps more
    assert_close(hg, tg, rtol=2e-5, atol=1e-5, what=f"{op} gradient")


@pytest.mark.parametrize("shape,dim,keepdim", [c for c in cases() if not isinstance(c[1], tuple)])
def test_prod_against_torch(shape, dim, keepdim):
    torch = torch_or_skip()
    x = np.random.default_rng(3).uniform(0.5, 1.5, shape).astype(np.float32)
    x.reshape(-1)[1] = 0.0  # a zero: the gradient must not divide by it
    if dim is None:
        def tf(t):
            return t.prod().reshape((1,) * len(shape) if keepdim else ())
    else:
        def tf(t):
            return t.prod(dim, keepdim)
    ho, to, hg, tg = run_both(torch, lambda t: t.prod(dim, keepdim), tf, x)
    assert_close(ho, to, rtol=1e-5, what="prod")
    assert_close(hg, tg, rtol=1e-5, atol=1e-6, what="prod gradient")


def test_prod_gradient_with_zeros():
    # two zeros in a row: all gradients of that row are 0; one zero: only it gets one
    x = hepml.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 4.0], [1.0, 2.0, 3.0]], requires_grad=True)
    x.prod(1).sum().backward()
    assert x.grad.tolist() == [[0, 0, 0], [0, 12, 0], [6, 3, 2]]


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "var", "std", "logsumexp", "nansum", "nanmean",
                                "prod", "norm"])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
def test_reduction_gradcheck(op, dim):
    x = np.random.default_rng(5).uniform(0.5, 2.0, (2, 3, 4))
    if op == "prod" and isinstance(dim, tuple):
        dim = 2
    gradcheck(lambda t: getattr(hepml, op)(t, dim=dim), x)


@pytest.mark.parametrize("fn", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim(fn, dim, keepdim):
    torch = torch_or_skip()
    x = np.random.default_rng(7).standard_normal((3, 4, 5)).astype(np.float32)
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hr, tr = getattr(hepml, fn)(hx, dim, keepdim), getattr(torch, fn)(tx, dim, keepdim)
    assert hr.indices.dtype == np.int64
    assert_close(hr.values, tr.values.detach().numpy(), rtol=0)
    assert hr.indices.tolist() == tr.indices.tolist()
    values, indices = hr  # unpacks like torch's namedtuple
    g = np.random.default_rng(1).standard_normal(tr.values.shape).astype(np.float32)
    values.backward(gradient=g)
    tr.values.backward(torch.tensor(g))
    assert_close(hx.grad, tx.grad.numpy(), rtol=0)
    gradcheck(lambda t: getattr(hepml, fn)(t, dim, keepdim).values, x)


def test_max_ties_and_nan_like_torch():
    torch = torch_or_skip()
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, np.nan, 5.0, np.nan]], np.float32)
    for hf, tf in [(lambda t: t.max(), lambda t: t.max()),
                   (lambda t: t[0].max(), lambda t: t[0].max()),
                   (lambda t: t.max(1).values, lambda t: t.max(1).values),
                   (lambda t: t.min(1).values, lambda t: t.min(1).values),
                   (lambda t: t[0].amax(), lambda t: t[0].amax()),
                   (lambda t: t[0].min(), lambda t: t[0].min())]:
        ho, to, hg, tg = run_both(torch, hf, tf, x)
        np.testing.assert_array_equal(ho.numpy(), to)
        assert_close(hg, tg, rtol=0)
    hx = hepml.tensor(x)
    assert hx.max(1).indices.tolist() == [1, 1] and hx.argmax(1).tolist() == [1, 1]
    assert hx.argmin(1).tolist() == [3, 1]


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_against_torch(fn, dim, keepdim):
    torch = torch_or_skip()
    x = np.random.default_rng(2).integers(0, 4, (4, 5, 3)).astype(np.float32)  # many ties
    h = getattr(hepml, fn)(hepml.tensor(x), dim, keepdim)
    t = getattr(torch, fn)(torch.tensor(x), dim, keepdim)
    assert h.dtype == np.int64 and h.shape == tuple(t.shape)
    assert h.tolist() == t.tolist()


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 4), 1), ((3, 4), 0), ((2, 3, 70), 1), ((2, 3, 70), -1),
                                       ((70, 2, 3), 0), ((), 0)])
def test_softmax_against_torch(fn, shape, dim):
    torch = torch_or_skip()
    x = (3 * np.random.default_rng(4).standard_normal(shape)).astype(np.float32)
    ho, to, hg, tg = run_both(torch, lambda t: getattr(hepml, fn)(t, dim), lambda t: getattr(torch, fn)(t, dim), x)
    assert_close(ho, to, rtol=1e-5, atol=1e-6)
    assert_close(hg, tg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1])
def test_softmax_gradcheck(fn, dim):
    x = np.random.default_rng(6).standard_normal((3, 4))
    gradcheck(lambda t: getattr(t, fn)(dim), x)


def test_softmax_is_stable_and_masks():
    x = hepml.tensor([[1000.0, 1000.0, -1000.0], [0.0, -np.inf, 0.0]])
    p = hepml.softmax(x, -1)
    assert np.allclose(p.numpy(), [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])
    lp = hepml.log_softmax(x, 1)
    assert np.isfinite(lp.numpy()[0, :2]).all() and lp.numpy()[1, 1] == -np.inf
    assert hepml.logsumexp(hepml.tensor([-np.inf, -np.inf]), 0).item() == -np.inf
    assert abs(hepml.logsumexp(hepml.tensor([1000.0, 1000.0]), 0).item() - (1000 + np.log(2))) < 1e-3
    with pytest.raises(TypeError, match="dim is required"):
        hepml.softmax(x, None)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cumsum(dim):
    torch = torch_or_skip()
    x = np.random.default_rng(8).standard_normal((3, 4, 5)).astype(np.float32)
    ho, to, hg, tg = run_both(torch, lambda t: t.cumsum(dim), lambda t: t.cumsum(dim), x)
    assert_close(ho, to, rtol=1e-5, atol=1e-6)
    assert_close(hg, tg, rtol=1e-5, atol=1e-6)
    gradcheck(lambda t: hepml.cumsum(t, dim), x[:2, :3, :2])


def test_integer_and_bool_sums_count():
    m = hepml.tensor(np.array([[True, False, True], [True, True, True]]))
    s = m.sum()
    assert s.dtype == np.int64 and s.item() == 5
    assert m.sum(1).tolist() == [2, 3] and m.sum(0, keepdim=True).tolist() == [[2, 1, 2]]
    i = hepml.tensor(np.arange(6).reshape(2, 3), dtype=hepml.int64)
    assert i.sum(0).dtype == np.int64 and i.sum(0).tolist() == [3, 5, 7]
    # everything else works on a float32 copy
    assert m.mean().dtype == np.float32 and abs(m.mean().item() - 5 / 6) < 1e-7
    assert i.amax().item() == 5.0


def test_nan_reductions_ignore_nans():
    x = hepml.tensor([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]], requires_grad=True)
    assert x.nansum(1).tolist() == [4.0, 0.0]
    nm = x.nanmean(1).numpy()
    assert nm[0] == 2.0 and np.isnan(nm[1])
    x.nanmean(1)[0].backward()
    assert x.grad.tolist()[0] == [0.5, 0.0, 0.5]
    assert np.isnan(x.sum().item()) and np.isnan(x.mean(1).numpy()).all()


def test_std_gradient_is_zero_at_zero_spread():
    x = hepml.tensor([2.0, 2.0, 2.0], requires_grad=True)
    s = x.std()
    assert s.item() == 0.0
    s.backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(hepml.tensor([1.0]).var().item())  # N - 1 = 0 degrees of freedom
    v, m = hepml.var_mean(hepml.tensor([1.0, 2.0, 3.0, 4.0]), correction=0)
    assert abs(v.item() - 1.25) < 1e-6 and m.item() == 2.5
    with pytest.raises(TypeError, match="either unbiased or correction"):
        hepml.var(hepml.zeros(3), unbiased=True, correction=1)


def test_zero_size_inputs():
    e = hepml.zeros(0, 3)
    assert e.sum().item() == 0.0 and e.sum(0).tolist() == [0, 0, 0]
    assert np.isnan(e.mean().item()) and np.isnan(e.mean(0).numpy()).all()
    assert e.mean(1).shape == (0,)
    assert e.prod(0).tolist() == [1, 1, 1]
    assert e.logsumexp(0).tolist() == [-np.inf] * 3
    assert e.max(1).values.shape == (0,) and e.amax(1).shape == (0,)  # reducing a non-empty dim: fine
    for fn in (lambda: e.max(), lambda: e.max(0), lambda: e.amax(), lambda: e.amin((0, 1)), lambda: e.argmax(),
               lambda: e.min(0), lambda: e.argmin(0)):
        with pytest.raises(IndexError, match=r"zero elements: input has shape \(0, 3\)"):
            fn()
    # gradients of empty reductions are empty
    g = hepml.zeros(0, 3, requires_grad=True)
    g.sum().backward()
    assert g.grad.shape == (0, 3)


def test_bad_dims_raise_clear_errors():
    x = hepml.zeros(2, 3)
    with pytest.raises(IndexError, match=r"dim 2 is out of range .* 2 dimensions"):
        x.sum(2)
    with pytest.raises(ValueError, match="more than once"):
        x.sum((0, -2))
    with pytest.raises(TypeError, match="dim must be an int .use amax"):
        x.max((0, 1))
    with pytest.raises(ValueError, match="p must be"):
        x.norm(p=float("inf"))
    with pytest.raises(TypeError, match="argument 'input'"):
        hepml.sum("abc")


def test_max_of_two_tensors_is_elementwise():
    if not hasattr(hepml._C, "maximum"):
        pytest.skip("elementwise maximum not built")
    a, b = hepml.tensor([1.0, 5.0]), hepml.tensor([3.0, 2.0])
    assert hepml.max(a, b).tolist() == [3.0, 5.0] and hepml.min(a, b).tolist() == [1.0, 2.0]


def test_sum_is_precise_and_thread_independent():
    rng = np.random.default_rng(9)
    big = (rng.standard_normal(3_000_001) + 100).astype(np.float32)
    cols = rng.standard_normal((20001, 37)).astype(np.float32)
    results = []
    n0 = hepml.get_num_threads()
    try:
        for n in (1, 2):
            hepml.set_num_threads(n)
            t = hepml.tensor(big)
            c = hepml.tensor(cols)
            results.append([t.sum().numpy().copy(), t.mean().numpy().copy(), c.sum(0).numpy().copy(),
                            c.var(0).numpy().copy(), c.softmax(0).numpy().copy(), c.amax(1).numpy().copy()])
    finally:
        hepml.set_num_threads(n0)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    exact = np.sum(big.astype(np.float64))
    assert abs(results[0][0] - exact) <= 1e-7 * abs(exact)
    np.testing.assert_allclose(results[0][2], cols.astype(np.float64).sum(0), rtol=1e-6, atol=1e-4)


def test_reduction_graph_names():
    x = hepml.zeros(2, 3, requires_grad=True)
    assert "SumBackward" in repr(x.sum()) and "SoftmaxBackward" in repr(x.softmax(1))
    assert x.max(1).indices.grad_fn is None and not x.argmax().requires_grad


# ----------------------------------------------------- property-based tests

@st.composite
def array_and_dims(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    dims = draw(st.lists(st.integers(-ndim, ndim - 1), unique_by=lambda d: d % ndim if ndim else 0,
                         max_size=ndim)) if ndim else []
    dim = draw(st.sampled_from([None, tuple(dims)] + ([dims[0]] if dims else [])))
    keepdim = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return x, dim, keepdim


def np_axis(dim, ndim):
    if dim is None or dim == ():
        return tuple(range(ndim))
    return dim


@settings(max_examples=150, deadline=None)
@given(array_and_dims())
def test_reductions_match_numpy_on_random_shapes(case):
    x, dim, keepdim = case
    axis = np_axis(dim, x.ndim)
    x64 = x.astype(np.float64)
    h = hepml.tensor(x)
    assert_close(h.sum(dim, keepdim), np.sum(x64, axis=axis, keepdims=keepdim), rtol=1e-5, atol=1e-5)
    reduced = int(np.prod([x.shape[d] for d in (axis if isinstance(axis, tuple) else (axis,))])) if x.ndim else 1
    with np.errstate(all="ignore"):
        ref_mean = np.mean(x64, axis=axis, keepdims=keepdim) if reduced else np.full(
            np.sum(x64, axis=axis, keepdims=keepdim).shape, np.nan)
    assert_close(h.mean(dim, keepdim), ref_mean, rtol=1e-5, atol=1e-5)
    if reduced:
        assert_close(h.amax(dim, keepdim), np.amax(x64, axis=axis, keepdims=keepdim), rtol=0, atol=0)
        assert_close(h.logsumexp(dim, keepdim), np.log(np.sum(np.exp(x64), axis=axis, keepdims=keepdim)),
                     rtol=1e-5, atol=1e-5)
        if reduced > 1:
            assert_close(h.var(dim, keepdim=keepdim), np.var(x64, axis=axis, ddof=1, keepdims=keepdim), rtol=1e-4,
                         atol=1e-5)
    else:
        with pytest.raises(IndexError):
            h.amax(dim, keepdim)
