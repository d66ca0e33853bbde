"""layer_norm, the activation functions and dropout."""
import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

F = hepml.ops.nn_functional


def _rand(rng, shape, scale=1.0, shift=0.0):
    return (shift + scale * rng.standard_normal(shape)).astype(np.float32)


# --------------------------------------------------------------- layer_norm

LN_CASES = [((4, 6), 6), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4)), ((7,), 7)]


@pytest.mark.parametrize("shape,ns", LN_CASES)
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm_gradcheck(shape, ns, affine):
    rng = np.random.default_rng(0)
    pshape = (ns,) if isinstance(ns, int) else ns
    x = _rand(rng, shape, 2.0, 1.0)
    w, b = _rand(rng, pshape, 0.5, 1.0), _rand(rng, pshape)
    if affine == "none":
        gradcheck(lambda x: hepml.layer_norm(x, ns), x)
    elif affine == "weight":
        gradcheck(lambda x, w: hepml.layer_norm(x, ns, w), x, w)
    else:
        gradcheck(lambda x, w, b: hepml.layer_norm(x, ns, w, b), x, w, b)


@pytest.mark.parametrize("shape,ns", LN_CASES + [((1024, 16, 32), 32), ((50, 300), 300), ((3, 2), 2)])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_against_torch(shape, ns, affine):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    pshape = (ns,) if isinstance(ns, int) else tuple(ns)
    x = _rand(rng, shape, 3.0, 2.0)
    w, b = _rand(rng, pshape, 0.5, 1.0), _rand(rng, pshape)
    g = _rand(rng, shape)
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hw = hepml.tensor(w, requires_grad=True) if affine else None
    hb = hepml.tensor(b, requires_grad=True) if affine else None
    tw = torch.tensor(w, requires_grad=True) if affine else None
    tb = torch.tensor(b, requires_grad=True) if affine else None
    ho = hepml.layer_norm(hx, ns, hw, hb, eps=1e-5)
    to = torch.nn.functional.layer_norm(tx, pshape, tw, tb, eps=1e-5)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(ho, to.detach().numpy(), rtol=1e-5, atol=2e-6, what="output")
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-4, atol=2e-5, what="grad input")
    if affine:
        # sums over up to 16384 rows: relative to the largest entry
        for h, t, what in [(hw.grad, tw.grad, "grad weight"), (hb.grad, tb.grad, "grad bias")]:
            t = t.numpy()
            assert_close(h, t, rtol=1e-5, atol=2e-6 * max(1.0, float(np.abs(t).max())), what=what)


def test_layer_norm_bias_only_and_weight_without_grad():
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    x, w, b = _rand(rng, (5, 4)), _rand(rng, (4,)), _rand(rng, (4,))
    hb = hepml.tensor(b, requires_grad=True)
    ho = hepml.layer_norm(hepml.tensor(x), 4, hepml.tensor(w), hb)
    tb = torch.tensor(b, requires_grad=True)
    to = torch.nn.functional.layer_norm(torch.tensor(x), (4,), torch.tensor(w), tb)
    g = _rand(rng, (5, 4))
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(hb.grad, tb.grad.numpy(), rtol=1e-5)
    hb2 = hepml.tensor(b, requires_grad=True)
    y = hepml.layer_norm(hepml.tensor(x), (4,), bias=hb2)
    assert_close(y, torch.nn.functional.layer_norm(torch.tensor(x), (4,), None, torch.tensor(b)).numpy(),
                 rtol=1e-5, atol=1e-6)
    assert y.grad_fn.name() == "NativeLayerNormBackward"


def test_layer_norm_bad_inputs():
    x = hepml.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\).*\(2, 3, 4\)"):
        hepml.layer_norm(x, 3)
    with pytest.raises(ValueError, match=r"normalized_shape \(5, 4\)"):
        hepml.layer_norm(x, (5, 4))
    with pytest.raises(ValueError, match=r"'weight' has shape \(3,\), expected normalized_shape \(4,\)"):
        hepml.layer_norm(x, 4, hepml.ones(3))
    with pytest.raises(ValueError, match=r"'bias' has shape \(1, 4\)"):
        hepml.layer_norm(x, 4, None, hepml.ones(1, 4))
    with pytest.raises(ValueError, match="eps"):
        hepml.layer_norm(x, 4, eps=-1.0)
    with pytest.raises(ValueError, match="normalized_shape"):
        hepml.layer_norm(hepml.zeros(2, 3, 4), (2, 3, 4, 5))


def test_layer_norm_empty_batch_and_nan():
    w = hepml.ones(4, requires_grad=True)
    x = hepml.zeros(0, 4, requires_grad=True)
    y = hepml.layer_norm(x, 4, w)
    assert y.shape == (0, 4)
    y.backward(gradient=np.zeros((0, 4), np.float32))
    assert x.grad.shape == (0, 4) and np.all(w.grad.numpy() == 0)
    a = np.ones((2, 4), np.float32)
    a[1, 2] = np.nan
    out = hepml.layer_norm(hepml.tensor(a), 4).numpy()
    assert np.all(np.isnan(out[1])) and np.all(np.isfinite(out[0]))


def test_layer_norm_param_grads_independent_of_threads():
    rng = np.random.default_rng(3)
    x, w, b, g = _rand(rng, (4000, 32)), _rand(rng, (32,)), _rand(rng, (32,)), _rand(rng, (4000, 32))
    n0 = hepml.get_num_threads()
    res = []
    try:
        for nt in (1, 2):
            hepml.set_num_threads(nt)
            hx, hw, hb = (hepml.tensor(a, requires_grad=True) for a in (x, w, b))
            hepml.layer_norm(hx, 32, hw, hb).backward(gradient=g)
            res.append([hx.grad.numpy().copy(), hw.grad.numpy().copy(), hb.grad.numpy().copy()])
    finally:
        hepml.set_num_threads(n0)
    for p, q in zip(*res):
        np.testing.assert_array_equal(p, q)


# -------------------------------------------------------------- activations

# (hepml function, torch function, kinks to keep gradcheck away from)
def _acts(torch):
    tf = torch.nn.functional
    return {
        "relu": (F.relu, tf.relu),
        "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), lambda x: tf.leaky_relu(x, 0.1)),
        "leaky_relu_default": (F.leaky_relu, tf.leaky_relu),
        "elu": (F.elu, tf.elu),
        "elu_alpha": (lambda x: F.elu(x, alpha=0.5), lambda x: tf.elu(x, alpha=0.5)),
        "selu": (F.selu, tf.selu),
        "gelu": (F.gelu, tf.gelu),
        "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: tf.gelu(x, approximate="tanh")),
        "softplus": (F.softplus, tf.softplus),
        "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=4.0),
                          lambda x: tf.softplus(x, beta=2.0, threshold=4.0)),
        "silu": (F.silu, tf.silu),
    }


ACT_NAMES = ["relu", "leaky_relu", "leaky_relu_default", "elu", "elu_alpha", "selu", "gelu", "gelu_tanh",
             "softplus", "softplus_beta", "silu"]
HEPML_ACTS = {
    "relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.1), "leaky_relu_default": F.leaky_relu,
    "elu": F.elu, "elu_alpha": lambda x: F.elu(x, alpha=0.5), "selu": F.selu, "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "softplus": F.softplus,
    "softplus_beta": lambda x: F.softplus(x, beta=2.0, threshold=4.0), "silu": F.silu,
}


@pytest.mark.parametrize("name", ACT_NAMES)
@pytest.mark.parametrize("shape", [(7,), (3, 5)])
def test_activation_gradcheck(name, shape):
    rng = np.random.default_rng(4)
    x = _rand(rng, shape, 2.0)
    x[np.abs(x) < 0.05] = 0.3  # away from the kink at 0
    x[np.abs(x - 2.0) < 0.05] = 1.7  # and from softplus_beta's switch at threshold / beta
    gradcheck(HEPML_ACTS[name], x)


@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_against_torch(name):
    torch = torch_or_skip()
    hf, tf = _acts(torch)[name]
    rng = np.random.default_rng(5)
    # wide range, both signs, plus exact kinks and values past softplus's threshold
    x = np.concatenate([_rand(rng, 5000, 3.0), np.linspace(-30, 30, 601, dtype=np.float32),
                        np.array([0.0, -0.0, 1e-6, -1e-6, 2.0, 20.0, 25.0, -90.0, 90.0], np.float32)])
    g = _rand(rng, x.shape)
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ho, to = hf(hx), tf(tx)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(ho, to.detach().numpy(), rtol=1e-5, atol=1e-6, what="output")
    # torch's tanh-GELU gradient cancels in 1 + tanh(u) for x < -4 (errors up to
    # ~5e-7 absolute, see test_gelu_tanh_gradient_tail); hepml's x * sigmoid(2u)
    # form does not, so allow that much
    atol = 3e-6 if name == "gelu_tanh" else 1e-6
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-5, atol=atol, what="gradient")


def test_gelu_tanh_gradient_tail():
    x = np.linspace(-6, -3, 13).astype(np.float32)
    xd = x.astype(np.float64)
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (xd + 0.044715 * xd**3))
    ref = 0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * c * (1 + 3 * 0.044715 * xd * xd)
    hx = hepml.tensor(x, requires_grad=True)
    F.gelu(hx, approximate="tanh").backward(gradient=np.ones(13, np.float32))
    assert_close(hx.grad, ref, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_nan_and_inf_like_torch(name):
    torch = torch_or_skip()
    hf, tf = _acts(torch)[name]
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0], np.float32)
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ho, to = hf(hx), tf(tx)
    g = np.ones(5, np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    np.testing.assert_allclose(ho.numpy(), to.detach().numpy(), rtol=1e-6, equal_nan=True)
    # gradients at +-inf are conventions (inf * 0); compare the finite/NaN entries torch defines
    np.testing.assert_allclose(hx.grad.numpy()[[0, 3, 4]], tx.grad.numpy()[[0, 3, 4]], rtol=1e-6, equal_nan=True)


def test_activation_methods_and_names():
    x = hepml.tensor([-1.0, 2.0], requires_grad=True)
    assert x.relu().tolist() == [0.0, 2.0]
    assert hepml.relu is F.relu and hepml.selu is F.selu
    assert F.relu(x).grad_fn.name() == "ReluBackward"
    assert F.selu(x).grad_fn.name() == "SeluBackward"
    # inplace is accepted for compatibility; the input is left unchanged
    y = F.relu(x.detach(), inplace=True)
    assert x.tolist() == [-1.0, 2.0] and y.tolist() == [0.0, 2.0]


def test_activation_bad_arguments():
    x = hepml.zeros(3)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="beta must be non-zero"):
        F.softplus(x, beta=0.0)
    with pytest.raises(TypeError, match="relu"):
        F.relu("x")


def test_activation_empty():
    for name in ACT_NAMES:
        x = hepml.zeros(0, 3, requires_grad=True)
        y = HEPML_ACTS[name](x)
        assert y.shape == (0, 3)
        y.backward(gradient=np.zeros((0, 3), np.float32))
        assert x.grad.shape == (0, 3)


# ------------------------------------------------------------------ dropout

def test_dropout_statistics():
    n, p = 1_000_000, 0.3
    x = hepml.ones(n)
    y = hepml.dropout(x, p).numpy()
    zero = y == 0
    assert abs(zero.mean() - p) < 0.003  # ~6 sigma of the binomial
    assert abs(y.mean() - 1.0) < 0.005  # kept values scaled by 1 / (1 - p)
    np.testing.assert_allclose(y[~zero], 1.0 / (1.0 - p), rtol=1e-6)


def test_dropout_same_seed_same_mask_and_threads():
    x = hepml.ones(100_000)
    hepml.manual_seed(7)
    a = hepml.dropout(x, 0.5).numpy().copy()
    b = hepml.dropout(x, 0.5).numpy().copy()
    assert not np.array_equal(a, b)  # consecutive calls draw new masks
    n0 = hepml.get_num_threads()
    try:
        hepml.set_num_threads(1)
        hepml.manual_seed(7)
        c = hepml.dropout(x, 0.5).numpy().copy()
    finally:
        hepml.set_num_threads(n0)
    np.testing.assert_array_equal(a, c)


def test_dropout_backward_uses_the_same_mask():
    rng = np.random.default_rng(8)
    x = _rand(rng, (64, 33))
    hx = hepml.tensor(x, requires_grad=True)
    y = hepml.dropout(hx, 0.4)
    g = _rand(rng, (64, 33))
    y.backward(gradient=g)
    mask = np.where(y.numpy() == 0, 0.0, y.numpy() / x)  # x has no zeros
    assert_close(hx.grad, g * mask, rtol=1e-6, atol=1e-7)
    assert y.grad_fn.name() == "DropoutBackward"


def test_dropout_identity_cases():
    x = hepml.randn(10, requires_grad=True)
    assert hepml.dropout(x, 0.5, training=False) is x
    assert hepml.dropout(x, 0.0) is x
    assert F.dropout(x, p=0.2, training=False) is x


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan")])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        hepml.dropout(hepml.ones(3), p)


def test_dropout_nan_and_empty():
    x = np.full(1000, np.nan, np.float32)
    y = hepml.dropout(hepml.tensor(x), 0.5).numpy()
    # torch multiplies by the mask: dropped NaNs become NaN * 0 = NaN too
    assert np.all(np.isnan(y))
    e = hepml.dropout(hepml.zeros(0, 4, requires_grad=True), 0.5)
    assert e.shape == (0, 4)


def test_gelu_and_softplus_tails_keep_relative_precision():
    # Far in the left tail torch's 1 + erf(x / sqrt 2) and log1p(exp(x)) lose
    # digits or underflow early; hepml keeps a few ulp of relative precision.
    special = pytest.importorskip("scipy.special")
    x = np.linspace(-12.0, 4.0, 1601).astype(np.float32)
    xd = x.astype(np.float64)
    hx = hepml.tensor(x, requires_grad=True)
    y = F.gelu(hx)
    y.backward(gradient=np.ones_like(x))
    phi = np.exp(-0.5 * xd * xd) / np.sqrt(2 * np.pi)
    assert_close(y, xd * special.ndtr(xd), rtol=2e-6, atol=1e-37)
    # the gradient crosses zero near x = -0.75 (Phi + x phi cancels): absolute there
    assert_close(hx.grad, special.ndtr(xd) + xd * phi, rtol=2e-6, atol=2e-7)
    z = np.linspace(-80.0, 15.0, 951).astype(np.float32)
    assert_close(F.softplus(hepml.tensor(z)), np.logaddexp(0.0, z.astype(np.float64)), rtol=2e-6, atol=1e-40)
