"""sort / argsort / quantile / nanquantile / median / nanmedian against torch,
gradients by finite differences, NaN handling, edge cases and bad arguments."""
import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

torch = torch_or_skip()

INTERPS = ["linear", "lower", "higher", "midpoint", "nearest"]


def _data(shape, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-3, 4, size=shape).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32)


def _distinct(shape, seed=0):
    """Well separated distinct values (finite differences must not reorder them)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(np.float32) * 0.37 - n * 0.1).reshape(shape)


# ------------------------------------------------------------------ sort

@pytest.mark.parametrize("shape,dim", [((50,), -1), ((4, 300), 1), ((300, 5), 0), ((3, 40, 6), 1),
                                       ((2, 3, 70), -1), ((6, 5, 4), 0), ((1,), 0), ((7, 1), 1)])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_sort_stable_matches_torch(shape, dim, descending, ties):
    x = _data(shape, ties=ties)
    v, i = hepml.sort(hepml.tensor(x), dim=dim, descending=descending, stable=True)
    tv, ti = torch.sort(torch.tensor(x), dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    assert i.dtype == hepml.int64
    ia = hepml.argsort(hepml.tensor(x), dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(ia.numpy(), ti.numpy())


@pytest.mark.parametrize("descending", [False, True])
def test_sort_unstable_is_a_valid_sort(descending):
    x = _data((5, 1000), ties=True)
    v, i = hepml.sort(x, dim=1, descending=descending)
    tv, _ = torch.sort(torch.tensor(x), dim=1, descending=descending)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    idx = i.numpy()
    assert all(np.array_equal(np.sort(r), np.arange(1000)) for r in idx)
    np.testing.assert_array_equal(np.take_along_axis(x, idx, 1), v.numpy())


def test_sort_named_pair_and_methods():
    x = hepml.tensor(_data((4, 9)))
    r = x.sort(dim=0)
    assert r.values.shape == (4, 9) and r.indices.shape == (4, 9)
    np.testing.assert_array_equal(x.argsort(dim=0).numpy(), r.indices.numpy())
    np.testing.assert_array_equal(hepml.sort(x).values.numpy(), np.sort(x.numpy(), axis=-1))


def test_sort_nan_and_signed_zero():
    x = np.array([1.0, np.nan, -0.0, 0.0, -np.inf, np.nan, np.inf, -1.0, 0.0, -0.0], np.float32)
    for desc in (False, True):
        v, i = hepml.sort(x, descending=desc)
        tv, ti = torch.sort(torch.tensor(x), descending=desc, stable=True)
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(np.signbit(v.numpy()), np.signbit(tv.numpy()))


def test_sort_int64():
    rng = np.random.default_rng(3)
    x = rng.integers(-2**40, 2**40, size=(3, 500)).astype(np.int64)
    x[0, :5] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -1, 1]
    for desc in (False, True):
        v, i = hepml.sort(hepml.tensor(x, dtype=hepml.int64), dim=1, descending=desc)
        tv, ti = torch.sort(torch.tensor(x), dim=1, descending=desc, stable=True)
        assert v.dtype == hepml.int64
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())


def test_sort_empty_and_scalar():
    v, i = hepml.sort(np.zeros((3, 0), np.float32), dim=1)
    assert v.shape == (3, 0) and i.shape == (3, 0)
    v, i = hepml.sort(np.zeros((0, 4), np.float32), dim=1)
    assert v.shape == (0, 4)
    v, i = hepml.sort(hepml.tensor(2.5))
    assert v.shape == () and float(v.item()) == 2.5 and int(i.item()) == 0


def test_sort_gradient():
    x = _distinct((3, 5, 4))
    for dim in (0, 1, 2):
        for desc in (False, True):
            gradcheck(lambda t: hepml.sort(t, dim=dim, descending=desc).values, x)
    xt = torch.tensor(x, requires_grad=True)
    g = _data((3, 5, 4), seed=2)
    torch.sort(xt, dim=1)[0].backward(torch.tensor(g))
    h = hepml.tensor(x, requires_grad=True)
    hepml.sort(h, dim=1).values.backward(gradient=hepml.tensor(g))
    np.testing.assert_array_equal(h.grad.numpy(), xt.grad.numpy())


def test_sort_bad_arguments():
    with pytest.raises(IndexError, match=r"sort\(\): dim 2 is out of range"):
        hepml.sort(np.zeros((2, 3), np.float32), dim=2)
    with pytest.raises(IndexError, match=r"argsort\(\): dim -3 is out of range"):
        hepml.argsort(np.zeros((2, 3), np.float32), dim=-3)
    with pytest.raises(TypeError, match="dim must be an int"):
        hepml.sort(np.zeros((2, 3), np.float32), dim=(0, 1))


def test_sort_thread_count_independent():
    x = _data((16, 20000), ties=True)
    before = hepml.get_num_threads() if hasattr(hepml, "get_num_threads") else None
    if before is None:
        pytest.skip("hepml.get_num_threads not available")
    try:
        outs = []
        for n in (1, 2):
            hepml.set_num_threads(n)
            r = hepml.sort(x, dim=1)
            q = hepml.quantile(x, [0.1, 0.5, 0.9], dim=1)
            outs.append((r.values.numpy().copy(), r.indices.numpy().copy(), q.numpy().copy()))
    finally:
        hepml.set_num_threads(before)
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------- quantile

@pytest.mark.parametrize("interpolation", INTERPS)
@pytest.mark.parametrize("q", [0.0, 0.3, 0.5, 0.77, 1.0, [0.0, 0.1, 0.5, 0.9, 1.0], [0.25]])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (None, True), (0, False), (1, True), (-1, False)])
def test_quantile_matches_torch(interpolation, q, dim, keepdim):
    x = _data((37, 6), seed=5)
    out = hepml.quantile(hepml.tensor(x), q, dim=dim, keepdim=keepdim, interpolation=interpolation)
    tq = torch.tensor(q, dtype=torch.float32) if isinstance(q, list) else q
    ref = torch.quantile(torch.tensor(x), tq, dim=dim, keepdim=keepdim, interpolation=interpolation)
    assert tuple(out.shape) == tuple(ref.shape)
    assert_close(out, ref.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("interpolation", INTERPS)
def test_quantile_ties_3d_and_even_sizes(interpolation):
    x = _data((4, 10, 3), seed=7, ties=True)
    q = [0.05, 0.5, 0.95]
    for dim in (0, 1, 2):
        out = hepml.quantile(x, q, dim=dim, interpolation=interpolation)
        ref = torch.quantile(torch.tensor(x), torch.tensor(q), dim=dim, interpolation=interpolation)
        assert_close(out, ref.numpy(), rtol=1e-6, atol=1e-7)
    assert_close(hepml.tensor(x).quantile(0.5, dim=1), torch.tensor(x).quantile(0.5, dim=1).numpy())


def test_quantile_large_column():
    x = _data((20001, 3), seed=11)
    q = [0.0, 0.15865525, 0.5, 0.84134475, 1.0]
    out = hepml.quantile(x, q, dim=0)
    ref = torch.quantile(torch.tensor(x), torch.tensor(q), dim=0)
    assert_close(out, ref.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("interpolation", INTERPS)
def test_quantile_gradient(interpolation):
    x = _distinct((7, 4), seed=1)
    gradcheck(lambda t: hepml.quantile(t, [0.1, 0.5, 0.83], dim=0, interpolation=interpolation), x)
    gradcheck(lambda t: hepml.quantile(t, 0.3, interpolation=interpolation), x)
    q = torch.tensor([0.1, 0.5, 0.83])
    xt = torch.tensor(x, requires_grad=True)
    g = _data((3, 4), seed=4)
    torch.quantile(xt, q, dim=0, interpolation=interpolation).backward(torch.tensor(g))
    h = hepml.tensor(x, requires_grad=True)
    hepml.quantile(h, [0.1, 0.5, 0.83], dim=0, interpolation=interpolation).backward(gradient=hepml.tensor(g))
    assert_close(h.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_quantile_nan():
    x = _data((6, 9), seed=2)
    x[1, 3] = np.nan
    x[4, :] = np.nan
    for interp in INTERPS:
        out = hepml.quantile(x, [0.2, 0.5], dim=1, interpolation=interp).numpy()
        ref = torch.quantile(torch.tensor(x), torch.tensor([0.2, 0.5]), dim=1, interpolation=interp).numpy()
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        assert np.isnan(out[:, 1]).all() and np.isnan(out[:, 4]).all()
        out = hepml.nanquantile(x, [0.2, 0.5], dim=1, interpolation=interp).numpy()
        ref = torch.nanquantile(torch.tensor(x), torch.tensor([0.2, 0.5]), dim=1, interpolation=interp).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
        assert np.isnan(out[:, 4]).all() and not np.isnan(out[:, 1]).any()
    assert np.isnan(float(hepml.quantile(x, 0.5).item()))
    assert float(hepml.nanquantile(x, 0.5).item()) == pytest.approx(
        float(torch.nanquantile(torch.tensor(x), 0.5)), rel=1e-6)


def test_quantile_size_one_and_scalar():
    x = np.array([[3.0], [4.0]], np.float32)
    for interp in INTERPS:
        out = hepml.quantile(x, [0.0, 0.4, 1.0], dim=1, interpolation=interp)
        np.testing.assert_array_equal(out.numpy(), [[3.0, 4.0]] * 3)
    assert float(hepml.quantile(hepml.tensor(7.0), 0.3).item()) == 7.0
    assert hepml.quantile(x, 0.5, dim=0, keepdim=True).shape == (1, 1)


def test_quantile_bad_arguments():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"quantile\(\): argument 'q' must lie in \[0, 1\], got 1.5"):
        hepml.quantile(x, 1.5)
    with pytest.raises(ValueError, match=r"argument 'q' must lie in \[0, 1\], got -0.1"):
        hepml.quantile(x, [0.5, -0.1], dim=0)
    with pytest.raises(ValueError, match=r"argument 'q' must lie in \[0, 1\], got nan"):
        hepml.nanquantile(x, float("nan"))
    with pytest.raises(ValueError, match=r"argument 'q' must be a number or a 1-D tensor, got shape \(2, 1\)"):
        hepml.quantile(x, [[0.5], [0.2]])
    with pytest.raises(ValueError, match=r"argument 'interpolation' must be one of .*got 'cubic'"):
        hepml.quantile(x, 0.5, interpolation="cubic")
    with pytest.raises(IndexError, match=r"quantile\(\): dim 2 is out of range"):
        hepml.quantile(x, 0.5, dim=2)
    with pytest.raises(ValueError, match=r"argument 'input' must be non-empty, got shape \(0, 3\)"):
        hepml.quantile(np.zeros((0, 3), np.float32), 0.5, dim=1)


# ---------------------------------------------------------------- median

@pytest.mark.parametrize("shape", [(9,), (10,), (6, 8), (7, 5, 4)])
@pytest.mark.parametrize("ties", [False, True])
def test_median_matches_torch(shape, ties):
    x = _data(shape, seed=3, ties=ties)
    assert float(hepml.median(x).item()) == float(torch.median(torch.tensor(x)))
    for dim in range(len(shape)):
        for keepdim in (False, True):
            v, i = hepml.median(hepml.tensor(x), dim=dim, keepdim=keepdim)
            tv, ti = torch.median(torch.tensor(x), dim=dim, keepdim=keepdim)
            assert tuple(v.shape) == tuple(tv.shape)
            np.testing.assert_array_equal(v.numpy(), tv.numpy())
            # ties: any position holding the median value is a valid index
            np.testing.assert_array_equal(np.take_along_axis(x, i.numpy() if keepdim else np.expand_dims(
                i.numpy(), dim), dim), v.numpy() if keepdim else np.expand_dims(v.numpy(), dim))
            if not ties:
                np.testing.assert_array_equal(i.numpy(), ti.numpy())


def test_median_is_the_lower_middle_value():
    x = np.array([4.0, 1.0, 3.0, 2.0], np.float32)
    assert float(hepml.median(x).item()) == 2.0          # torch's convention
    assert float(hepml.quantile(x, 0.5).item()) == 2.5   # NumPy's median
    assert float(hepml.quantile(x, 0.5, interpolation="midpoint").item()) == 2.5
    assert float(hepml.tensor(x).median().item()) == 2.0


def test_median_nan():
    x = np.array([[1.0, np.nan, 3.0, np.nan, 0.0], [2.0, 1.0, 5.0, 4.0, 3.0], [np.nan] * 5], np.float32)
    v, i = hepml.median(x, dim=1)
    tv, ti = torch.median(torch.tensor(x), dim=1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    v, i = hepml.nanmedian(x, dim=1)
    tv, ti = torch.nanmedian(torch.tensor(x), dim=1)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy()[:2], ti.numpy()[:2])
    assert np.isnan(float(hepml.median(x).item()))
    assert float(hepml.nanmedian(x).item()) == float(torch.nanmedian(torch.tensor(x)))


def test_median_gradient():
    x = _distinct((5, 6), seed=9)
    gradcheck(lambda t: hepml.median(t, dim=1).values, x)
    gradcheck(lambda t: hepml.median(t, dim=0, keepdim=True).values, x)
    gradcheck(lambda t: hepml.median(t), x)
    gradcheck(lambda t: hepml.nanmedian(t, dim=1).values, x)
    # ties: median() without dim shares the gradient among equal entries, as torch
    y = np.array([1.0, 2.0, 2.0, 3.0, 2.0], np.float32)
    h, t = hepml.tensor(y, requires_grad=True), torch.tensor(y, requires_grad=True)
    hepml.median(h).backward()
    torch.median(t).backward()
    assert_close(h.grad, t.grad.numpy())


def test_median_empty_and_bad_arguments():
    assert np.isnan(float(hepml.median(np.zeros((0,), np.float32)).item()))
    with pytest.raises(IndexError, match=r"median\(\): cannot take the median over dim 1 of size 0"):
        hepml.median(np.zeros((3, 0), np.float32), dim=1)
    with pytest.raises(IndexError, match=r"median\(\): dim 3 is out of range"):
        hepml.median(np.zeros((3, 2), np.float32), dim=3)
    v, i = hepml.median(np.zeros((0, 4), np.float32), dim=1)
    assert v.shape == (0,) and i.shape == (0,)


def test_validation_median_follows_numpy():
    from hepml.viz.validation import _median, _quantiles
    rng = np.random.default_rng(0)
    for n in (1, 2, 10, 1001):
        a = rng.normal(size=(n, 4)).astype(np.float32)
        np.testing.assert_array_equal(_median(hepml.tensor(a)), np.median(a.astype(np.float64), axis=0))
        qs = (0.0, 0.16, 0.5, 0.84, 1.0)
        np.testing.assert_allclose(_quantiles(hepml.tensor(a), qs),
                                   np.quantile(a.astype(np.float64), qs, axis=0), rtol=1e-12, atol=0)
