"""Elementwise ops: unary math, binary ops with broadcasting, clamp, where,
comparisons, logical ops, isnan/isinf/isfinite, any/all, nan_to_num.

Each differentiable op: finite-difference gradcheck and agreement with torch
(forward and gradient within 1e-5 relative unless a tolerance says why).
"""
import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

NAN, INF = float("nan"), float("inf")

# name -> (low, high) of the inputs used for gradients (inside the domain,
# away from kinks and jumps)
UNARY = {
    "neg": (-2, 2), "abs": (0.2, 2), "exp": (-2, 2), "log": (0.3, 3), "log1p": (-0.5, 2), "expm1": (-2, 2),
    "sqrt": (0.3, 3), "rsqrt": (0.3, 3), "square": (-2, 2), "sin": (-3, 3), "cos": (-3, 3), "tanh": (-2, 2),
    "sigmoid": (-4, 4), "atan": (-3, 3), "reciprocal": (0.3, 3), "erf": (-2, 2), "logit": (0.1, 0.9),
}
ZERO_GRAD = ["sign", "floor", "ceil", "round"]
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, 1e-30, -1e-30, 1e-40, 30.0, -30.0, 88.0, 89.0, -87.0,
                    -104.0, -110.0, 1e30, -1e30, 3.0e38, NAN, INF, -INF], dtype=np.float32)


def _rand(rng, lo, hi, shape, signed=False):
    a = rng.uniform(lo, hi, shape)
    if signed:
        a *= rng.choice([-1.0, 1.0], shape)
    return a.astype(np.float32)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradcheck(name):
    rng = np.random.default_rng(0)
    lo, hi = UNARY[name]
    gradcheck(getattr(hepml, name), _rand(rng, lo, hi, (3, 4), signed=name == "abs"))


@pytest.mark.parametrize("name", sorted(UNARY) + ZERO_GRAD)
def test_unary_against_torch(name):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    lo, hi = UNARY.get(name, (-3, 3))
    a = _rand(rng, lo, hi, (4, 5), signed=name == "abs")
    g = rng.standard_normal(a.shape).astype(np.float32)
    ta, ha = torch.tensor(a, requires_grad=True), hepml.tensor(a, requires_grad=True)
    to, ho = getattr(torch, name)(ta), getattr(hepml, name)(ha)
    to.backward(torch.tensor(g))
    ho.backward(gradient=g)
    assert ho.dtype == np.float32 and ho.shape == tuple(to.shape)
    assert_close(ho, to.detach().numpy(), rtol=1e-5, atol=1e-7, what=f"{name} forward")
    assert_close(ha.grad, ta.grad.numpy(), rtol=1e-5, atol=1e-6, what=f"{name} gradient")
    # the method form is the same op
    assert_close(getattr(hepml.tensor(a), name)(), ho.detach().numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(UNARY) + ZERO_GRAD)
def test_unary_special_values_against_torch(name):
    """nan, +-inf, +-0, subnormals, overflow edges: same results as torch
    (up to 2 ulp, and flush-to-zero differences in the subnormal range)."""
    torch = torch_or_skip()
    ho = getattr(hepml, name)(SPECIAL).numpy()
    to = getattr(torch, name)(torch.tensor(SPECIAL)).numpy()
    np.testing.assert_allclose(ho, to, rtol=3e-7, atol=1e-37, equal_nan=True, err_msg=name)


def test_zero_gradient_ops():
    for name in ZERO_GRAD:
        x = hepml.tensor([0.3, -1.7, 2.5], requires_grad=True)
        y = getattr(hepml, name)(x)
        assert y.requires_grad  # as in torch: differentiable, with a zero gradient
        y.backward(gradient=np.ones(3))
        assert x.grad.tolist() == [0, 0, 0]
    x = hepml.tensor([0.25, -1.25, 2.75], requires_grad=True)
    gradcheck(hepml.floor, [0.5, -1.5, 2.5])
    gradcheck(hepml.round, [0.25, -1.25, 2.75])


def test_round_half_even_and_decimals():
    torch = torch_or_skip()
    a = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1.2345, 125.0, 0.125, 1234.5, -7.77], dtype=np.float32)
    assert hepml.round(a).tolist() == torch.round(torch.tensor(a)).tolist()
    for d in (1, 2, -1, -2):
        assert_close(hepml.round(a, decimals=d), torch.round(torch.tensor(a), decimals=d).numpy(), rtol=0, atol=0)
        assert_close(hepml.tensor(a).round(decimals=d), torch.round(torch.tensor(a), decimals=d).numpy(), rtol=0,
                     atol=0)


def test_sign_and_abs_at_zero_and_nan_follow_torch():
    x = hepml.tensor([0.0, -0.0, NAN, -2.0], requires_grad=True)
    assert hepml.sign(x).tolist() == [0, 0, 0, -1]  # torch's sign(nan) is 0 (numpy gives nan)
    hepml.abs(x).backward(gradient=np.ones(4))
    assert x.grad.tolist() == [0, 0, 0, -1]


@pytest.mark.parametrize("eps", [None, 0.05, 0.2])
def test_logit_against_torch(eps):
    torch = torch_or_skip()
    a = np.array([-0.5, 0.0, 0.01, 0.1, 0.3, 0.5, 0.85, 0.99, 1.0, 1.5], dtype=np.float32)
    ta, ha = torch.tensor(a, requires_grad=True), hepml.tensor(a, requires_grad=True)
    to, ho = torch.logit(ta, eps=eps), hepml.logit(ha, eps=eps)
    to.backward(torch.ones(a.shape))
    ho.backward(gradient=np.ones(a.shape))
    np.testing.assert_allclose(ho.numpy(), to.detach().numpy(), rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(ha.grad.numpy(), ta.grad.numpy(), rtol=1e-5, equal_nan=True)
    if eps is not None:
        gradcheck(lambda t: hepml.logit(t, eps=eps), [0.3, 0.5, 0.7])


@pytest.mark.parametrize("p", [2, 3, 0.5, -0.5, -1, -2, 1, 0, 1.7, -2.3, 4])
def test_pow_scalar_exponent(p):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    a = rng.uniform(0.3, 2.0, (3, 4)).astype(np.float32)
    gradcheck(lambda t: t ** p, a)
    g = rng.standard_normal(a.shape).astype(np.float32)
    ta, ha = torch.tensor(a, requires_grad=True), hepml.tensor(a, requires_grad=True)
    (ta ** p).backward(torch.tensor(g))
    hepml.pow(ha, p).backward(gradient=g)
    assert_close(ha ** p, (torch.tensor(a) ** p).numpy(), rtol=1e-6)
    assert_close(ha.grad, ta.grad.numpy(), rtol=1e-5)
    # special bases (0, negative, inf, nan) agree with torch's conventions, gradient included
    s = np.array([0.0, -0.0, -1.5, 2.0, INF, -INF, NAN], dtype=np.float32)
    ts, hs = torch.tensor(s, requires_grad=True), hepml.tensor(s, requires_grad=True)
    (ts ** p).backward(torch.ones(s.shape))
    (hs ** p).backward(gradient=np.ones(s.shape))
    np.testing.assert_allclose((hs ** p).numpy(), (torch.tensor(s) ** p).numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(hs.grad.numpy(), ts.grad.numpy(), rtol=1e-6, equal_nan=True)


# -------------------------------------------------------------- binary ops

BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((5, 1), (1, 6))]


def _binary_inputs(name, rng, sa, sb):
    if name == "pow":
        return _rand(rng, 0.5, 2.0, sa), _rand(rng, -1.5, 1.5, sb)
    if name in ("remainder", "fmod"):
        # |a/b| in (0.1, 0.9): no jump of floor/trunc within the difference step
        b = _rand(rng, 1.5, 2.0, sb, signed=True)
        a = _rand(rng, 0.2, 1.3, sa, signed=True)
        return a, b
    if name == "atan2":
        return _rand(rng, 0.3, 2.0, sa, signed=True), _rand(rng, 0.3, 2.0, sb, signed=True)
    # maximum / minimum: distinct values, well apart
    a = rng.permutation(np.arange(int(np.prod(sa))))[:int(np.prod(sa))].reshape(sa) * 0.37 - 1
    b = rng.permutation(np.arange(int(np.prod(sb)))).reshape(sb) * 0.41 - 1.13
    return a.astype(np.float32), b.astype(np.float32)


BINARY = ["pow", "atan2", "remainder", "fmod", "maximum", "minimum"]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
def test_binary_gradcheck(name, shapes):
    rng = np.random.default_rng(3)
    gradcheck(getattr(hepml, name), *_binary_inputs(name, rng, *shapes))


@pytest.mark.parametrize("name", BINARY + ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
def test_binary_against_torch(name, shapes):
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    a, b = _binary_inputs(name, rng, *shapes)
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    g = rng.standard_normal(out_shape).astype(np.float32)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ha, hb = hepml.tensor(a, requires_grad=True), hepml.tensor(b, requires_grad=True)
    to, ho = getattr(torch, name)(ta, tb), getattr(hepml, name)(ha, hb)
    to.backward(torch.tensor(g))
    ho.backward(gradient=g)
    assert_close(ho, to.detach().numpy(), rtol=1e-6, what=f"{name} forward")
    assert_close(ha.grad, ta.grad.numpy(), rtol=1e-5, atol=1e-6, what=f"{name} gradient of input")
    assert_close(hb.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-6, what=f"{name} gradient of other")


@pytest.mark.parametrize("name", BINARY)
def test_binary_special_values_against_torch(name):
    """Every pair of special values, forward and both gradients, as torch."""
    torch = torch_or_skip()
    v = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 7.0, -7.0, INF, -INF, NAN], dtype=np.float32)
    a, b = np.meshgrid(v, v, indexing="ij")
    a, b = a.copy(), b.copy()
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ha, hb = hepml.tensor(a, requires_grad=True), hepml.tensor(b, requires_grad=True)
    to, ho = getattr(torch, name)(ta, tb), getattr(hepml, name)(ha, hb)
    to.backward(torch.ones(a.shape))
    ho.backward(gradient=np.ones(a.shape))
    np.testing.assert_allclose(ho.numpy(), to.detach().numpy(), rtol=1e-6, equal_nan=True, err_msg=name)
    np.testing.assert_allclose(ha.grad.numpy(), ta.grad.numpy(), rtol=1e-6, equal_nan=True, err_msg=name)
    np.testing.assert_allclose(hb.grad.numpy(), tb.grad.numpy(), rtol=1e-6, equal_nan=True, err_msg=name)


def test_maximum_minimum_ties_split_the_gradient():
    x = hepml.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = hepml.tensor([1.0, 1.0, 4.0], requires_grad=True)
    hepml.maximum(x, y).backward(gradient=np.ones(3))
    assert x.grad.tolist() == [0.5, 1, 0] and y.grad.tolist() == [0.5, 0, 1]
    x.grad = y.grad = None
    hepml.minimum(x, y).backward(gradient=np.ones(3))
    assert x.grad.tolist() == [0.5, 0, 1] and y.grad.tolist() == [0.5, 1, 0]
    assert np.isnan(hepml.maximum(hepml.tensor([NAN, 1.0]), hepml.tensor([1.0, NAN])).numpy()).all()


def test_remainder_has_sign_of_divisor_and_operators():
    a = hepml.tensor([5.0, -5.0, 5.0, -5.0, 4.5])
    b = hepml.tensor([3.0, 3.0, -3.0, -3.0, 1.5])
    assert hepml.remainder(a, b).tolist() == [5 % 3, -5 % 3, 5 % -3, -5 % -3, 4.5 % 1.5]
    assert (a % 3).tolist() == [2, 1, 2, 1, 1.5]
    assert hepml.fmod(a, b).tolist() == [2, -2, 2, -2, 0]
    x = hepml.tensor([1.0, 2.0], requires_grad=True)
    assert (2 ** x).tolist() == [2, 4] and (x ** x).tolist() == [1, 4]
    assert (-x).tolist() == [-1, -2] and (+x) is x and abs(-x).tolist() == [1, 2]
    assert (x.pow(2)).tolist() == [1, 4] and x.atan2(hepml.tensor(1.0)).shape == (2,)


def test_pow_scalar_base_gradient_and_conventions():
    torch = torch_or_skip()
    e = np.array([0.0, 1.0, -1.0, 2.5], dtype=np.float32)
    for base in (2.0, 0.0, 0.5):
        te, he = torch.tensor(e, requires_grad=True), hepml.tensor(e, requires_grad=True)
        (base ** te).backward(torch.ones(4))
        (base ** he).backward(gradient=np.ones(4))
        np.testing.assert_allclose((base ** he).numpy(), (base ** te).detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(he.grad.numpy(), te.grad.numpy(), rtol=1e-5, equal_nan=True)
    gradcheck(lambda t: hepml.pow(2.0, t), [0.5, -1.0, 2.0])


# ------------------------------------------------------------------ clamp

def test_clamp_scalar_bounds():
    torch = torch_or_skip()
    a = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, NAN, INF, -INF], dtype=np.float32)
    for lo, hi in [(-1.0, 1.0), (None, 0.5), (-0.5, None), (1.0, -1.0), (0, 1)]:
        ta, ha = torch.tensor(a, requires_grad=True), hepml.tensor(a, requires_grad=True)
        to, ho = torch.clamp(ta, lo, hi), hepml.clamp(ha, lo, hi)
        to.backward(torch.ones(a.shape))
        ho.backward(gradient=np.ones(a.shape))
        np.testing.assert_array_equal(ho.numpy(), to.detach().numpy())
        np.testing.assert_array_equal(ha.grad.numpy(), ta.grad.numpy(), err_msg=f"clamp({lo}, {hi})")
    gradcheck(lambda t: hepml.clamp(t, -1.0, 1.0), [-2.0, -0.5, 0.3, 1.7])
    assert hepml.tensor([3.0]).clip(max=1).tolist() == [1]
    assert np.isnan(hepml.clamp(hepml.tensor([1.0]), min=NAN).item())


@pytest.mark.parametrize("which", ["both", "min", "max", "min_number"])
def test_clamp_tensor_bounds_against_torch(which):
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (4, 3, 5)).astype(np.float32)  # torch wants bounds broadcastable to input
    lo = rng.uniform(-1.5, 0.5, (3, 1)).astype(np.float32)
    hi = rng.uniform(-0.5, 1.5, (5,)).astype(np.float32)
    lo[0, 0] = 1.2  # some rows with min > max
    tx, tlo, thi = (torch.tensor(v, requires_grad=True) for v in (x, lo, hi))
    hx, hlo, hhi = (hepml.tensor(v, requires_grad=True) for v in (x, lo, hi))
    args = {"both": ((tlo, thi), (hlo, hhi)), "min": ((tlo, None), (hlo, None)), "max": ((None, thi), (None, hhi)),
            "min_number": ((torch.tensor(-0.3), thi), (-0.3, hhi))}[which]
    to, ho = torch.clamp(tx, *args[0]), hepml.clamp(hx, *args[1])
    g = rng.standard_normal(tuple(to.shape)).astype(np.float32)
    to.backward(torch.tensor(g))
    ho.backward(gradient=g)
    assert_close(ho, to.detach().numpy(), rtol=0, atol=0)
    for h, t in ((hx, tx), (hlo, tlo), (hhi, thi)):
        if t.grad is None:
            assert h.grad is None
        else:
            assert_close(h.grad, t.grad.numpy(), rtol=1e-5, atol=1e-6)
    # away from the kinks the finite differences agree too
    xs = np.array([[-1.0, 0.2, 1.3]], dtype=np.float32)
    gradcheck(lambda a, b, c: hepml.clamp(a, b, c), xs, np.array([-0.5], np.float32), np.array([[0.8], [1.6]],
                                                                                              np.float32))


# ------------------------------------------------------------------ where

@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (3, 4)), ((4,), (2, 3, 1), ()),
                                    ((2, 1, 4), (1, 3, 1), (3, 4))])
def test_where_against_torch(shapes):
    torch = torch_or_skip()
    rng = np.random.default_rng(6)
    c = rng.random(shapes[0]) > 0.5
    x = rng.standard_normal(shapes[1]).astype(np.float32)
    y = rng.standard_normal(shapes[2]).astype(np.float32)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    hx, hy = hepml.tensor(x, requires_grad=True), hepml.tensor(y, requires_grad=True)
    to, ho = torch.where(torch.tensor(c), tx, ty), hepml.where(c, hx, hy)
    g = rng.standard_normal(tuple(to.shape)).astype(np.float32)
    to.backward(torch.tensor(g))
    ho.backward(gradient=g)
    assert_close(ho, to.detach().numpy(), rtol=0, atol=0)
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-6)
    assert_close(hy.grad, ty.grad.numpy(), rtol=1e-6)
    gradcheck(lambda a, b: hepml.where(c, a, b), x, y)
    # scalars and the method form
    assert_close(hepml.where(c, x, 0.0), np.where(c, x, np.float32(0)), rtol=0, atol=0)
    assert_close(hepml.tensor(x).where(hepml.tensor(c), -1.0), np.where(c, x, np.float32(-1)), rtol=0, atol=0)


def test_where_masks_nan_gradients_away():
    x = hepml.tensor([1.0, -1.0], requires_grad=True)
    safe = hepml.where(x > 0, x, 1.0)
    hepml.where(x > 0, hepml.log(safe), 0.0).backward(gradient=np.ones(2))
    assert x.grad.tolist() == [1, 0]


# ------------------------------------------------------------- nan_to_num

def test_nan_to_num_against_torch():
    torch = torch_or_skip()
    a = np.array([NAN, INF, -INF, 1.5, -2.0, 0.0], dtype=np.float32)
    for kw in [{}, {"nan": 1.0}, {"posinf": 10.0, "neginf": -10.0}, {"nan": -1.0, "posinf": 2.0}]:
        ta, ha = torch.tensor(a, requires_grad=True), hepml.tensor(a, requires_grad=True)
        to, ho = torch.nan_to_num(ta, **kw), hepml.nan_to_num(ha, **kw)
        to.backward(torch.ones(6))
        ho.backward(gradient=np.ones(6))
        np.testing.assert_array_equal(ho.numpy(), to.detach().numpy())
        np.testing.assert_array_equal(ha.grad.numpy(), ta.grad.numpy())
    gradcheck(hepml.nan_to_num, [0.5, -1.5])
    assert hepml.tensor(a).nan_to_num(nan=7.0).tolist()[0] == 7


# ---------------------------------------------------- comparisons, logical

CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
       "ge": np.greater_equal}


@pytest.mark.parametrize("name", sorted(CMP))
def test_comparisons_against_numpy(name):
    rng = np.random.default_rng(7)
    a = rng.integers(-2, 3, (3, 1, 4)).astype(np.float32)
    b = rng.integers(-2, 3, (5, 1)).astype(np.float32)
    a[0, 0, 0], b[1, 0] = NAN, INF
    ref = CMP[name](a, b)
    for x, y in [(a, b), (hepml.tensor(a), b), (a, hepml.tensor(b)), (hepml.tensor(a), hepml.tensor(b))]:
        out = getattr(hepml, name)(x, y)
        assert out.dtype == np.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), ref)
    np.testing.assert_array_equal(getattr(hepml, name)(hepml.tensor(a), 1.0).numpy(), CMP[name](a, np.float32(1)))
    np.testing.assert_array_equal(getattr(hepml.tensor(a), name)(b).numpy(), ref)


def test_comparison_operators():
    a = np.array([1.0, 2.0, NAN, 3.0], dtype=np.float32)
    t = hepml.tensor(a, requires_grad=True)
    assert (t == 2).tolist() == [False, True, False, False]
    assert (t != 2).tolist() == [True, False, True, True]
    assert (t < 2).tolist() == [True, False, False, False] and (t <= 2).tolist() == [True, True, False, False]
    assert (t > 2).tolist() == [False, False, False, True] and (t >= 2).tolist() == [False, True, False, True]
    assert (2 < t).tolist() == (t > 2).tolist()                     # reflected through __gt__
    assert (np.float32(2) == t).tolist() == (t == 2).tolist()
    assert (t == np.array([1, 0, 0, 3])).tolist() == [True, False, False, True]
    assert (t == None) is False and (t != None) is True  # noqa: E711  (as in torch)
    assert (t == "a") is False
    assert {t: 1}[t] == 1  # still hashable by identity
    m = hepml.tensor(np.array([True, False, True]))
    assert (m == True).tolist() == [True, False, True]  # noqa: E712


def test_int64_comparisons_are_exact():
    big = 2 ** 40
    i = hepml.tensor(np.array([big, big + 1, -3], dtype=np.int64), dtype=hepml.int64)
    assert (i == big + 1).tolist() == [False, True, False]
    assert (i > big).tolist() == [False, True, False]
    assert hepml.eq(i, np.array([big, big, -3])).tolist() == [True, False, True]
    assert (i == 1.5).tolist() == [False, False, False]  # mixed with a float: compared in float32
    assert (hepml.arange(5) < 2).tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
def test_logical_ops(name):
    rng = np.random.default_rng(8)
    a = rng.random((3, 1, 4)) > 0.5
    b = rng.random((2, 4)) > 0.5
    ref = getattr(np, name)(a, b)
    out = getattr(hepml, name)(a, b)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out.numpy(), ref)
    # floats count as != 0, nan included (torch)
    f = np.array([0.0, 1.0, NAN, -2.0], dtype=np.float32)
    g = np.array([1.0, 0.0, 1.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(getattr(hepml, name)(f, g).numpy(), getattr(np, name)(f != 0, g != 0))
    ops = {"logical_and": "__and__", "logical_or": "__or__", "logical_xor": "__xor__"}
    np.testing.assert_array_equal(getattr(hepml.tensor(a), ops[name])(hepml.tensor(b)).numpy(), ref)
    np.testing.assert_array_equal(getattr(hepml.tensor(a), name)(b).numpy(), ref)


def test_logical_not_and_invert():
    m = np.array([True, False, True])
    assert hepml.logical_not(m).tolist() == [False, True, False]
    assert (~hepml.tensor(m)).tolist() == [False, True, False]
    assert hepml.logical_not(np.array([0.0, 2.0, NAN], np.float32)).tolist() == [True, False, False]
    assert hepml.logical_not(hepml.arange(3)).tolist() == [True, False, False]


def test_isnan_isinf_isfinite():
    a = np.array([0.0, NAN, INF, -INF, 1e38, -1e-40], dtype=np.float32)
    for name in ("isnan", "isinf", "isfinite"):
        out = getattr(hepml, name)(a)
        assert out.dtype == np.bool_
        np.testing.assert_array_equal(out.numpy(), getattr(np, name)(a))
        np.testing.assert_array_equal(getattr(hepml.tensor(a), name)().numpy(), getattr(np, name)(a))
    assert hepml.isfinite(hepml.arange(3)).tolist() == [True] * 3  # int64: always finite


def test_any_all():
    rng = np.random.default_rng(9)
    a = rng.random((3, 4, 5)) > 0.8
    for fn in ("any", "all"):
        assert getattr(hepml, fn)(a).item() == getattr(np, fn)(a)
        assert getattr(hepml, fn)(a).shape == ()
        for d in (0, 1, 2, -1):
            for keep in (False, True):
                np.testing.assert_array_equal(getattr(hepml, fn)(a, dim=d, keepdim=keep).numpy(),
                                              getattr(np, fn)(a, axis=d, keepdims=keep))
        assert getattr(hepml.tensor(a), fn)().item() == getattr(np, fn)(a)
    assert hepml.tensor([0.0, NAN]).any().item() and not hepml.tensor([0.0, 1.0]).all().item()
    assert not hepml.any(hepml.zeros(0)).item() and hepml.all(hepml.zeros(0)).item()
    assert hepml.any(hepml.zeros(2, 0), dim=1).tolist() == [False, False]
    assert hepml.all(hepml.zeros(0, 3), dim=0).tolist() == [True] * 3
    assert hepml.all(np.ones(300_000, bool)).item() and not hepml.any(np.zeros(300_000, bool)).item()


# ------------------------------------------------------------- bad inputs

def test_non_broadcastable_shapes_are_named():
    a, b = hepml.zeros(2, 3), hepml.zeros(4)
    for fn in (hepml.pow, hepml.atan2, hepml.remainder, hepml.maximum, hepml.eq, hepml.lt, hepml.logical_and):
        with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\).*cannot be broadcast"):
            fn(a > 0 if fn is hepml.logical_and else a, b)
    with pytest.raises(ValueError, match=r"where\(\).*'other' \(4,\)"):
        hepml.where(hepml.zeros(2, 3) > 0, a, b)
    with pytest.raises(ValueError, match=r"clamp\(\).*'max' \(4,\)"):
        hepml.clamp(a, hepml.zeros(3), b)


def test_bool_and_int_inputs():
    m = hepml.tensor(np.array([True, False]))
    e = hepml.exp(m)  # as torch: converted to float32
    assert e.dtype == np.float32 and e.tolist() == pytest.approx([np.e, 1.0])
    assert hepml.sqrt(hepml.arange(3)).dtype == np.float32
    assert hepml.abs(hepml.arange(-1, 1)).tolist() == [1, 0]  # float32 result (torch would keep int64)
    with pytest.raises(TypeError, match="bool tensor is not supported.*~"):
        -m
    with pytest.raises(TypeError, match="must be a bool tensor.*logical_and"):
        hepml.tensor([1.0]) & hepml.tensor([1.0])
    with pytest.raises(TypeError, match="bitwise_not.*bool"):
        ~hepml.tensor([1.0])


def test_other_bad_arguments():
    with pytest.raises(TypeError, match=r"exp\(\): argument 'input' must hold real numbers"):
        hepml.exp("x")
    with pytest.raises(TypeError, match=r"exp\(\): argument 'input' must hold real numbers"):
        hepml.exp(object())
    with pytest.raises(TypeError, match=r"exp\(\).*None"):
        hepml.exp(None)
    with pytest.raises(TypeError, match="where.*'condition' must be a bool tensor"):
        hepml.where(hepml.tensor([1.0, 0.0]), 1.0, 0.0)
    with pytest.raises(ValueError, match="at least one of 'min' or 'max'"):
        hepml.clamp(hepml.zeros(2))
    with pytest.raises(ValueError, match="eps must be in"):
        hepml.logit(hepml.zeros(2), eps=0.7)
    with pytest.raises(TypeError, match="nan_to_num.*'nan' must be a number"):
        hepml.nan_to_num(hepml.zeros(2), nan=hepml.zeros(1))
    with pytest.raises(TypeError, match="complex|real numbers"):
        hepml.sin(np.array([1j]))
    with pytest.raises(IndexError, match="any"):
        hepml.any(hepml.zeros(2), dim=3)
    with pytest.raises(OverflowError, match="int64"):
        hepml.eq(hepml.arange(3), 2 ** 70)


# ------------------------------------------------------ big arrays, threads

@pytest.mark.parametrize("shape_a, shape_b", [((300_001,), (300_001,)), ((3, 100_003), (100_003,)),
                                              ((700, 1, 300), (1, 5, 300)), ((200_000, 2), (200_000, 1))])
def test_large_broadcasts_use_tiles_and_threads(shape_a, shape_b):
    rng = np.random.default_rng(10)
    a = rng.uniform(0.5, 2, shape_a).astype(np.float32)
    b = rng.uniform(-1, 1, shape_b).astype(np.float32)
    results = []
    for threads in (1, 2):
        hepml.set_num_threads(threads)
        results.append([hepml.pow(a, b).numpy().copy(), hepml.maximum(a, b).numpy().copy(),
                        hepml.lt(a, b).numpy().copy(), hepml.where(a > 1, a, b).numpy().copy(),
                        hepml.exp(a).numpy().copy(), hepml.clamp(a, b, 1.5).numpy().copy()])
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)  # independent of the thread count
    assert_close(results[0][0], np.power(a, b), rtol=1e-6)
    np.testing.assert_array_equal(results[0][1], np.maximum(a, b))
    np.testing.assert_array_equal(results[0][2], a < b)
    np.testing.assert_array_equal(results[0][3], np.where(a > 1, a, b))
    np.testing.assert_array_equal(results[0][5], np.minimum(np.maximum(a, b), np.float32(1.5)))


def test_exp_log_tanh_sigmoid_accuracy_over_the_float_range():
    """The vectorised exp/log/tanh/sigmoid against float64 references, within 3 ulp."""
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2 ** 32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        refs = {"exp": np.exp(x64), "log": np.log(x64), "tanh": np.tanh(x64), "sigmoid": 1 / (1 + np.exp(-x64))}
    for name, ref in refs.items():
        got = getattr(hepml, name)(x).numpy().astype(np.float64)
        with np.errstate(over="ignore"):
            r32 = ref.astype(np.float32)
        ok = np.isfinite(r32) & (np.abs(r32) >= np.finfo(np.float32).tiny)
        ulp = np.spacing(np.abs(r32[ok]).astype(np.float32)).astype(np.float64)
        err = np.abs(got[ok] - ref[ok]) / ulp
        assert err.max() <= 3, f"{name}: {err.max():.2f} ulp at x={x[ok][np.argmax(err)]!r}"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=name)
        np.testing.assert_array_equal(got[~ok & ~np.isnan(ref)] == np.inf, r32[~ok & ~np.isnan(ref)] == np.inf)
