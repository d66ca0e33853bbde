"""Property tests (hypothesis) for the elementwise ops: random shapes with
zero-size dimensions and every broadcasting combination, random float32
values including nan, +-inf, +-0 and subnormals. hepml must equal numpy /
torch and never crash.

Tolerances: comparisons, selects and exact ops (neg, abs, floor, clamp,
maximum, where, ...) must agree bit for bit. The transcendental functions
agree within 1e-6 relative: hepml and torch use different math libraries
(hepml's own vectorised exp/log/tanh/sigmoid and glibc's libm, torch's
SLEEF), each within a few ulp of the exact result; atol 1e-30 absorbs results
in the subnormal range, which torch's vector code flushes differently.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hepml

torch = pytest.importorskip("torch")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_float = st.floats(width=32, allow_nan=True, allow_infinity=True)
finite_float = st.floats(min_value=-4, max_value=4, width=32)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4)
triples = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=4, min_side=0, max_side=3)

# sqrt is correctly rounded in hepml (IEEE sqrtf); torch's is off by 1 ulp for some inputs
EXACT_UNARY = ["neg", "abs", "sign", "floor", "ceil", "round", "square", "reciprocal"]
MATH_UNARY = ["sqrt", "exp", "log", "log1p", "expm1", "rsqrt", "sin", "cos", "tanh", "sigmoid", "atan", "erf", "logit"]
EXACT_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "fmod", "remainder"]
MATH_BINARY = ["pow", "atan2"]


def arrays(data, shape, elements=any_float):
    return data.draw(hnp.arrays(np.float32, shape, elements=elements))


def same(actual, expected, exact, what):
    actual = actual.numpy() if isinstance(actual, hepml.Tensor) else actual
    assert actual.shape == tuple(expected.shape), f"{what}: shape {actual.shape} != {tuple(expected.shape)}"
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-30, equal_nan=True, err_msg=what)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(EXACT_UNARY + MATH_UNARY), shape=shapes)
def test_unary_equals_torch(data, name, shape):
    a = arrays(data, shape)
    same(getattr(hepml, name)(a), getattr(torch, name)(torch.tensor(a)).numpy(), name in EXACT_UNARY, name)


@SETTINGS
@given(data=st.data(), p=st.sampled_from([2, 3, 0.5, -0.5, -1, -2, 1, 0, 1.5, -2.5, 7]), shape=shapes)
def test_pow_scalar_equals_torch(data, p, shape):
    a = arrays(data, shape)
    exact = p in (2, 1, 0)
    same(hepml.tensor(a) ** p, (torch.tensor(a) ** p).numpy(), exact, f"x ** {p}")


@SETTINGS
@given(data=st.data(), name=st.sampled_from(EXACT_BINARY + MATH_BINARY), bs=pairs)
def test_binary_equals_torch(data, name, bs):
    a, b = (arrays(data, s) for s in bs.input_shapes)
    expected = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    same(getattr(hepml, name)(a, b), expected, name in EXACT_BINARY, name)
    same(getattr(hepml, name)(hepml.tensor(a), b), expected, name in EXACT_BINARY, name)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(EXACT_BINARY + MATH_BINARY), bs=pairs)
def test_binary_gradients_equal_torch(data, name, bs):
    """Finite inputs; gradients summed over broadcast dimensions as torch does.
    The sums run in a different order (hepml in double), hence 1e-5."""
    a, b = (arrays(data, s, finite_float) for s in bs.input_shapes)
    if name in ("fmod", "remainder", "div"):
        b = np.where(np.abs(b) < 0.25, np.float32(0.5), b).astype(np.float32)
    g = arrays(data, bs.result_shape, finite_float)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ha, hb = hepml.tensor(a, requires_grad=True), hepml.tensor(b, requires_grad=True)
    getattr(torch, name)(ta, tb).backward(torch.tensor(g))
    getattr(hepml, name)(ha, hb).backward(gradient=g)
    for h, t in ((ha, ta), (hb, tb)):
        assert h.grad.shape == h.shape
        np.testing.assert_allclose(h.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-5, equal_nan=True,
                                   err_msg=name)


@SETTINGS
@given(data=st.data(), name=st.sampled_from(EXACT_UNARY + MATH_UNARY + ["nan_to_num"]), shape=shapes)
def test_unary_gradients_equal_torch(data, name, shape):
    """Any values, nan and inf included: the gradient's nan pattern and values follow torch."""
    a = arrays(data, shape)
    if name == "logit":
        # torch's logit gradient at -0.0 is +inf on its scalar path and -inf on
        # its vector path; hepml always gives dout * inf (the scalar path's)
        a = np.where(a == 0, np.float32(0), a)
    g = arrays(data, shape, finite_float)
    ta, ha = torch.tensor(a, requires_grad=True), hepml.tensor(a, requires_grad=True)
    getattr(torch, name)(ta).backward(torch.tensor(g))
    getattr(hepml, name)(ha).backward(gradient=g)
    assert ha.grad.shape == ha.shape
    np.testing.assert_allclose(ha.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-30, equal_nan=True, err_msg=name)


@SETTINGS
@given(data=st.data(), bs=pairs, lo=any_float, hi=any_float, which=st.sampled_from(["both", "min", "max"]))
def test_clamp_equals_torch(data, bs, lo, hi, which):
    x, t = (arrays(data, s) for s in bs.input_shapes)
    lo, hi = (lo if which != "max" else None), (hi if which != "min" else None)
    same(hepml.clamp(x, lo, hi), torch.clamp(torch.tensor(x), lo, hi).numpy(), True, "clamp numbers")
    # tensor bounds broadcast with the input (torch wants them broadcastable to the input)
    if np.broadcast_shapes(x.shape, t.shape) == x.shape:
        tt = torch.tensor(t)
        same(hepml.clamp(x, t, hi), torch.clamp(torch.tensor(x), tt, None if hi is None else torch.tensor(hi)).numpy(),
             True, "clamp tensor")


CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
       "ge": np.greater_equal}


@SETTINGS
@given(data=st.data(), name=st.sampled_from(sorted(CMP)), bs=pairs)
def test_comparisons_equal_numpy(data, name, bs):
    a, b = (arrays(data, s) for s in bs.input_shapes)
    out = getattr(hepml, name)(a, b)
    assert out.dtype == np.bool_
    same(out, CMP[name](a, b), True, name)
    scalar = data.draw(any_float)
    same(getattr(hepml, name)(hepml.tensor(a), scalar), CMP[name](a, np.float32(scalar)), True, name + " scalar")


@SETTINGS
@given(data=st.data(), bs=pairs, name=st.sampled_from(["logical_and", "logical_or", "logical_xor"]))
def test_logical_equal_numpy(data, bs, name):
    a = data.draw(hnp.arrays(np.bool_, bs.input_shapes[0]))
    b = arrays(data, bs.input_shapes[1])  # floats count as != 0
    same(getattr(hepml, name)(a, b), getattr(np, name)(a, b != 0), True, name)
    same(hepml.logical_not(b), ~(b != 0), True, "logical_not")


@SETTINGS
@given(data=st.data(), bs=triples)
def test_where_equals_numpy_and_routes_gradients(data, bs):
    c = data.draw(hnp.arrays(np.bool_, bs.input_shapes[0]))
    x, y = (arrays(data, s) for s in bs.input_shapes[1:])
    hx, hy = hepml.tensor(x, requires_grad=True), hepml.tensor(y, requires_grad=True)
    out = hepml.where(c, hx, hy)
    same(out, np.where(c, x, y), True, "where")
    g = np.ones(bs.result_shape, np.float32)
    out.backward(gradient=g)
    cb = np.broadcast_to(c, bs.result_shape)
    # each output element sends its gradient to exactly one of x, y
    assert hx.grad.shape == x.shape and hy.grad.shape == y.shape
    assert hx.grad.numpy().sum() + hy.grad.numpy().sum() == pytest.approx(g.sum())
    assert hx.grad.numpy().sum() == pytest.approx(cb.sum())


@SETTINGS
@given(data=st.data(), shape=shapes, dim=st.integers(-4, 3), keepdim=st.booleans())
def test_tests_and_any_all_equal_numpy(data, shape, dim, keepdim):
    a = arrays(data, shape)
    for name in ("isnan", "isinf", "isfinite"):
        same(getattr(hepml, name)(a), getattr(np, name)(a), True, name)
    m = a > 0
    for name in ("any", "all"):
        same(getattr(hepml, name)(m), np.asarray(getattr(np, name)(m)), True, name)
        if -max(len(shape), 1) <= dim < max(len(shape), 1) and len(shape) > 0:
            same(getattr(hepml, name)(m, dim=dim, keepdim=keepdim), getattr(np, name)(m, axis=dim, keepdims=keepdim),
                 True, f"{name} dim={dim}")


@SETTINGS
@given(data=st.data(), shape=shapes, nan=any_float, posinf=st.none() | any_float, neginf=st.none() | any_float)
def test_nan_to_num_equals_torch(data, shape, nan, posinf, neginf):
    a = arrays(data, shape)
    same(hepml.nan_to_num(a, nan, posinf, neginf),
         torch.nan_to_num(torch.tensor(a), nan, posinf, neginf).numpy(), True, "nan_to_num")


@SETTINGS
@given(bs=pairs)
def test_incompatible_shapes_raise_not_crash(bs):
    a_shape, b_shape = bs.input_shapes
    bad = tuple(b_shape) + (5,) if not a_shape or a_shape[-1] not in (1, 5) else tuple(b_shape) + (7,)
    if a_shape and a_shape[-1] not in (1, bad[-1]):
        with pytest.raises(ValueError, match="cannot be broadcast"):
            hepml.maximum(np.zeros(a_shape, np.float32), np.zeros(bad, np.float32))
        with pytest.raises(ValueError, match="cannot be broadcast"):
            hepml.lt(np.zeros(a_shape, np.float32), np.zeros(bad, np.float32))
