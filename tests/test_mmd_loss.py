"""hepml.losses: MMD (one C node over the tiled kernel), the periodic phi loss,
masked / NaN means. References: a dense float64 NumPy N x M formula written
here, and the course's dense torch formula (float64) for values and gradients."""
import math

import numpy as np
import pytest

import hepml
import hepml.losses as L
from helpers import gradcheck, torch_or_skip

MULTISCALE = (0.1, 0.2, 0.5, 0.9, 1.4, 2.0)
RBF = (10.0, 15.0, 20.0, 50.0)


# ------------------------------------------------------------ references
def np_kernel(a, b, kernel, bw, degree):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if kernel == "polynomial":
        return (a @ b.T / a.shape[1] + 1.0) ** degree
    r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if kernel == "multiscale":
        return sum(c * c / (c * c + r2) for c in (bw or MULTISCALE))
    if kernel == "rbf":
        return sum(np.exp(-r2 / (2 * c)) for c in (bw or RBF))
    (s,) = bw if isinstance(bw, (tuple, list)) else (bw,)
    return np.exp(-r2 / (2 * s * s))


def np_mmd(x, y, kernel="multiscale", bw=None, estimator="biased", degree=3):
    kxx, kyy, kxy = (np_kernel(x, x, kernel, bw, degree), np_kernel(y, y, kernel, bw, degree),
                     np_kernel(x, y, kernel, bw, degree))
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def torch_course_mmd(x, y, kernel):
    """The course's dense formula (libs/mmd.py semantics), on torch tensors."""
    import torch
    xx, yy, zz = x @ x.t(), y @ y.t(), x @ y.t()
    rx = xx.diag().unsqueeze(0).expand_as(xx)
    ry = yy.diag().unsqueeze(0).expand_as(yy)
    dxx = rx.t() + rx - 2.0 * xx
    dyy = ry.t() + ry - 2.0 * yy
    dxy = rx.t() + ry - 2.0 * zz
    XX, YY, XY = torch.zeros_like(xx), torch.zeros_like(xx), torch.zeros_like(xx)
    if kernel == "multiscale":
        for a in MULTISCALE:
            XX += a ** 2 * (a ** 2 + dxx) ** -1
            YY += a ** 2 * (a ** 2 + dyy) ** -1
            XY += a ** 2 * (a ** 2 + dxy) ** -1
    else:
        for a in RBF:
            XX += torch.exp(-0.5 * dxx / a)
            YY += torch.exp(-0.5 * dyy / a)
            XY += torch.exp(-0.5 * dxy / a)
    return torch.mean(XX + YY - 2.0 * XY)


def samples(n, m, d, seed=0, shift=0.3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)).astype(np.float32),
            (rng.standard_normal((m, d)) * 1.2 + shift).astype(np.float32))


def scale_of(x, y, kernel, bw, degree):
    """Size of the individual K terms: the MMD is their difference, so float32
    pair terms give errors relative to this, not to the (small) MMD."""
    return abs(np_kernel(x, x, kernel, bw, degree)).mean()


CASES = [("multiscale", None), ("multiscale", (0.5, 2.0)), ("rbf", None), ("rbf", (1.0,)),
         ("gaussian", 0.8), ("polynomial", None)]


# ------------------------------------------------------------ values
@pytest.mark.parametrize("kernel,bw", CASES)
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("d", [1, 3])
def test_mmd_matches_numpy_float64(kernel, bw, estimator, d):
    n, m = (70, 70) if estimator == "biased" else (70, 45)
    x, y = samples(n, m, d, seed=d)
    ref = np_mmd(x, y, kernel, bw, estimator, 3)
    got = float(L.mmd(x, y, kernel=kernel, bandwidths=bw, estimator=estimator).numpy())
    assert abs(got - ref) <= 1e-5 * max(abs(ref), scale_of(x, y, kernel, bw, 3)), (got, ref)


@pytest.mark.parametrize("degree", [1, 3, 4])
def test_polynomial_degree(degree):
    x, y = samples(40, 40, 2, seed=3)
    ref = np_mmd(x, y, "polynomial", None, "unbiased", degree)
    got = float(L.mmd(x, y, kernel="polynomial", estimator="unbiased", degree=degree).numpy())
    assert abs(got - ref) <= 1e-5 * max(abs(ref), scale_of(x, y, "polynomial", None, degree))


def test_gaussian_median_heuristic():
    x, y = samples(50, 60, 2, seed=5)
    z = np.concatenate([x, y]).astype(np.float64)
    dist = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(len(z), 1)]
    sigma = np.median(dist)
    assert abs(L.median_bandwidth(x, y) - sigma) <= 1e-5 * sigma
    ref = np_mmd(x, y, "gaussian", sigma, "unbiased")
    got = float(L.mmd(x, y, kernel="gaussian", estimator="unbiased").numpy())
    assert abs(got - ref) <= 1e-5 * max(abs(ref), 1.0)


def test_mmd_of_identical_samples_is_zero():
    x, _ = samples(100, 100, 2)
    assert abs(float(L.mmd(x, x).numpy())) < 1e-6


# ------------------------------------------------------------ torch course formula
@pytest.mark.parametrize("kernel", ["multiscale", "rbf"])
@pytest.mark.parametrize("d", [1, 4])
def test_mmd_matches_course_torch_formula_with_gradients(kernel, d):
    torch = torch_or_skip()
    x, y = samples(64, 64, d, seed=11)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    tv = torch_course_mmd(tx, ty, kernel)
    tv.backward()
    hx, hy = hepml.tensor(x, requires_grad=True), hepml.tensor(y, requires_grad=True)
    hv = L.mmd(hx, hy, kernel=kernel)
    hv.backward()
    scale = scale_of(x, y, kernel, None, 3)
    assert abs(float(hv.numpy()) - tv.item()) <= 1e-5 * max(abs(tv.item()), scale)
    for h, t in ((hx, tx), (hy, ty)):
        g, gt = h.grad.numpy().astype(np.float64), t.grad.numpy()
        np.testing.assert_allclose(g, gt, rtol=1e-4, atol=1e-5 * np.abs(gt).max())


def test_mmd_course_matches_torch_per_feature_mean():
    torch = torch_or_skip()
    x, y = samples(128, 128, 8, seed=2)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    tv = sum(torch_course_mmd(tx[:, i:i + 1], ty[:, i:i + 1], "multiscale") for i in range(8)) / 8
    tv.backward()
    hx, hy = hepml.tensor(x, requires_grad=True), hepml.tensor(y, requires_grad=True)
    hv = L.mmd_course(hx, hy)
    hv.backward()
    assert abs(float(hv.numpy()) - tv.item()) <= 1e-5 * max(abs(tv.item()), 1.0)
    np.testing.assert_allclose(hx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5 * np.abs(tx.grad.numpy()).max())
    np.testing.assert_allclose(hy.grad.numpy(), ty.grad.numpy(), rtol=1e-4, atol=1e-5 * np.abs(ty.grad.numpy()).max())
    # the [N, 2, 4] layout (two W bosons x four features) gives the same number
    v3 = L.mmd_course(hepml.tensor(x.reshape(128, 2, 4)), hepml.tensor(y.reshape(128, 2, 4)))
    assert float(v3.numpy()) == float(hv.numpy())


# ------------------------------------------------------------ gradients
@pytest.mark.parametrize("kernel,bw", CASES)
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd_gradcheck(kernel, bw, estimator):
    x, y = samples(5, 5 if estimator == "biased" else 4, 2, seed=7)
    gradcheck(lambda a, b: L.mmd(a, b, kernel=kernel, bandwidths=bw, estimator=estimator), x, y)


@pytest.mark.parametrize("kernel,bw", [("multiscale", None), ("gaussian", 0.7), ("polynomial", None)])
def test_mmd_per_feature_gradcheck(kernel, bw):
    # the median-heuristic sigma is a constant of the graph (not differentiated),
    # so finite differences, which move it, are checked with a fixed sigma
    x, y = samples(5, 5, 3, seed=8)
    gradcheck(lambda a, b: L.mmd(a, b, kernel=kernel, bandwidths=bw, per_feature=True), x, y)


def test_gradient_only_for_one_sample():
    x, y = samples(20, 20, 2)
    hx = hepml.tensor(x, requires_grad=True)
    L.mmd(hx, y).backward()
    assert hx.grad is not None and hx.grad.shape == (20, 2)


def test_no_grad_gives_same_value():
    x, y = samples(50, 50, 3)
    hx = hepml.tensor(x, requires_grad=True)
    v = L.mmd(hx, y)
    with hepml.no_grad():
        w = L.mmd(hx, y)
    assert w.grad_fn is None
    np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------ per_feature
@pytest.mark.parametrize("kernel,bw", CASES + [("gaussian", None)])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_per_feature_equals_separate_calls(kernel, bw, estimator):
    x, y = samples(60, 60 if estimator == "biased" else 50, 4, seed=9)
    hx, hy = hepml.tensor(x, requires_grad=True), hepml.tensor(y, requires_grad=True)
    v = L.mmd(hx, hy, kernel=kernel, bandwidths=bw, estimator=estimator, per_feature=True)
    assert v.shape == (4,)
    w = np.arange(1, 5, dtype=np.float32)
    (v * hepml.tensor(w)).sum().backward()
    for f in range(4):
        cx = hepml.tensor(np.ascontiguousarray(x[:, f:f + 1]), requires_grad=True)
        cy = hepml.tensor(np.ascontiguousarray(y[:, f:f + 1]), requires_grad=True)
        s = L.mmd(cx, cy, kernel=kernel, bandwidths=bw, estimator=estimator)
        (s * float(w[f])).backward()
        np.testing.assert_allclose(v.numpy()[f], s.numpy(), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(hx.grad.numpy()[:, f], cx.grad.numpy()[:, 0], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(hy.grad.numpy()[:, f], cy.grad.numpy()[:, 0], rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("kwargs,x_shape,y_shape,match", [
    ({}, (10,), (10,), "2-D"),
    ({}, (10, 2), (10, 3), "same number of features"),
    ({}, (10, 2), (12, 2), "equal sample sizes"),
    ({"estimator": "unbiased"}, (1, 2), (5, 2), "at least 2"),
    ({"kernel": "laplace"}, (10, 2), (10, 2), "kernel"),
    ({"estimator": "fast"}, (10, 2), (10, 2), "estimator"),
    ({"bandwidths": (1.0, -1.0)}, (10, 2), (10, 2), "positive"),
    ({"kernel": "gaussian", "bandwidths": (1.0, 2.0)}, (10, 2), (10, 2), "bandwidths"),
    ({"kernel": "polynomial", "bandwidths": 1.0}, (10, 2), (10, 2), "degree"),
    ({"kernel": "polynomial", "degree": 0}, (10, 2), (10, 2), "degree"),
])
def test_bad_inputs(kwargs, x_shape, y_shape, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        L.mmd(rng.random(x_shape).astype(np.float32), rng.random(y_shape).astype(np.float32), **kwargs)


def test_non_finite_input_raises():
    x, y = samples(10, 10, 2)
    y[3, 1] = np.nan
    with pytest.raises(ValueError, match="'y' contains NaN"):
        L.mmd(x, y)
    x[0, 0] = np.inf
    with pytest.raises(ValueError, match="'x' contains NaN"):
        L.mmd(x, y)


def test_median_heuristic_degenerate_raises():
    z = np.ones((10, 2), np.float32)
    with pytest.raises(ValueError, match="median heuristic"):
        L.mmd(z, z, kernel="gaussian")


# ------------------------------------------------------------ periodic phi loss
def _course_scale(phi, mean, std):
    u = np.log((phi + L.COURSE_PI) / (2 * L.COURSE_PI)) - np.log1p(-(phi + L.COURSE_PI) / (2 * L.COURSE_PI))
    return ((u - mean) / std).astype(np.float32)


def test_periodic_phi_loss_values():
    rng = np.random.default_rng(1)
    mean, std = 0.1, 1.7
    pp = rng.uniform(-3.1, 3.1, 200)
    pt = rng.uniform(-3.1, 3.1, 200)
    pp[:3], pt[:3] = [3.1, -3.1, 0.0], [-3.1, 3.1, 0.0]
    sp, st = _course_scale(pp, mean, std), _course_scale(pt, mean, std)

    def unscale(s):
        return 1 / (1 + np.exp(-(s.astype(np.float64) * std + mean))) * 2 * L.COURSE_PI - L.COURSE_PI
    d = unscale(sp) - unscale(st)
    ref = np.arctan2(np.sin(d), np.cos(d)) ** 2
    got = L.periodic_phi_loss(sp, st, scaling=(mean, std), reduction="none").numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-5)
    assert got[0] < 0.01 and got[1] < 0.01  # across the -pi / +pi seam: small, not (6.2)^2
    np.testing.assert_allclose(float(L.periodic_phi_loss(sp, st, (mean, std)).numpy()), ref.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(L.periodic_phi_loss(sp, st, (mean, std), "sum").numpy()), ref.sum(), rtol=1e-4)


def test_periodic_phi_loss_matches_torch_gradients():
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    sp, st = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)
    mean, std = -0.2, 1.3
    tp = torch.tensor(sp, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(st, dtype=torch.float64, requires_grad=True)
    PI = L.COURSE_PI
    d = (torch.sigmoid(tp * std + mean) - torch.sigmoid(tt * std + mean)) * 2 * PI
    tl = (torch.remainder(d + math.pi, 2 * math.pi) - math.pi).pow(2).mean()
    tl.backward()
    hp, ht = hepml.tensor(sp, requires_grad=True), hepml.tensor(st, requires_grad=True)
    hl = L.periodic_phi_loss(hp, ht, scaling=(mean, std))
    hl.backward()
    np.testing.assert_allclose(float(hl.numpy()), tl.item(), rtol=1e-5)
    np.testing.assert_allclose(hp.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ht.grad.numpy(), tt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_periodic_phi_loss_gradcheck():
    rng = np.random.default_rng(3)
    sp, st = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    gradcheck(lambda a, b: L.periodic_phi_loss(a, b, scaling=(0.3, 1.5), reduction="none"), sp, st)


def test_periodic_phi_loss_bad_inputs():
    with pytest.raises(ValueError, match="reduction"):
        L.periodic_phi_loss([0.0], [0.0], reduction="max")
    with pytest.raises(ValueError, match="scaling"):
        L.periodic_phi_loss([0.0], [0.0], scaling=1.0)
    with pytest.raises(ValueError, match="same shape"):
        L.periodic_phi_loss([0.0, 1.0], [0.0])


# ------------------------------------------------------------ means
def test_masked_mean_and_nan_mean():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, np.nan]], np.float32)
    mask = ~np.isnan(x)
    hx = hepml.tensor(x, requires_grad=True)
    v = L.masked_mean(hx, mask)
    assert float(v.numpy()) == pytest.approx(13.0 / 4)
    v.backward()
    np.testing.assert_allclose(hx.grad.numpy(), np.where(mask, 0.25, 0.0))
    np.testing.assert_allclose(L.nan_mean(x, dim=1).numpy(), [2.0, 4.5])
    np.testing.assert_allclose(L.nan_mean(x, dim=0, keepdim=True).numpy(), [[2.5, 5.0, 3.0]])
    assert np.isnan(float(L.nan_mean([np.nan, np.nan]).numpy()))


def test_independent_of_thread_count():
    x, y = samples(700, 700, 8, seed=4)
    n0 = hepml.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            hepml.set_num_threads(t)
            hx = hepml.tensor(x, requires_grad=True)
            v = L.mmd(hx, y, per_feature=True)
            v.sum().backward()
            out.append((v.numpy().copy(), hx.grad.numpy().copy()))
    finally:
        hepml.set_num_threads(n0)
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
