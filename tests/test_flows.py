"""hepml.flows: agreement with zuko (same weights -> same log_prob, gradients and
samples), invertibility, log-dets against finite-difference Jacobians,
normalisation by quadrature, gradchecks, training, and bad inputs."""
import math

import numpy as np
import pytest

import hepml
from hepml import flows
from helpers import gradcheck

torch = pytest.importorskip("torch")
zuko = pytest.importorskip("zuko")

KINDS = {"maf": (zuko.flows.MAF, flows.MAF), "nsf": (zuko.flows.NSF, flows.NSF),
         "ncsf": (zuko.flows.NCSF, flows.NCSF), "nice": (zuko.flows.NICE, flows.NICE)}


def _pair(kind, features=3, context=2, std=0.3, seed=0, **kw):
    torch.manual_seed(seed)
    Z, H = KINDS[kind]
    kw.setdefault("transforms", 2)
    kw.setdefault("hidden_features", (16, 16))
    zf, hf = Z(features, context, **kw), H(features, context, **kw)
    with torch.no_grad():
        for p in zf.parameters():
            p.normal_(0, std)
    hf.load_state_dict({k: v.numpy() for k, v in zf.state_dict().items()})
    return zf, hf


def _data(kind, n, features, context, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g) if kind != "ncsf" else torch.rand(n, features, generator=g) * 6.2 - 3.1
    c = torch.randn(n, context, generator=g)
    return x, c


def H(t):
    return hepml.tensor(t.detach().numpy())


# Tolerances: float32 everywhere; hepml's and zuko's float32 results both differ
# from a float64 zuko by ~1e-5 on log p ~ 5-10 (spline knots from cumsum of
# softmax), so agreement is asked within 1e-5 relative (3e-5 for splines).
@pytest.mark.parametrize("kind", ["maf", "nsf", "ncsf", "nice"])
def test_log_prob_and_gradients_match_zuko(kind):
    zf, hf = _pair(kind)
    x, c = _data(kind, 64, 3, 2)
    x.requires_grad_(True)
    c.requires_grad_(True)
    lz = zf(c).log_prob(x)
    lz.sum().backward()
    hx, hc = H(x).requires_grad_(), H(c).requires_grad_()
    lh = hf(hc).log_prob(hx)
    lh.sum().backward()
    rtol = 1e-5 if kind in ("maf", "nice") else 3e-5
    np.testing.assert_allclose(lh.detach().numpy(), lz.detach().numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(hx.grad.numpy(), x.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(hc.grad.numpy(), c.grad.numpy(), rtol=1e-3, atol=1e-4)
    hp = dict(hf.named_parameters())
    for name, p in zf.named_parameters():
        g = p.grad.numpy()
        np.testing.assert_allclose(hp[name].grad.numpy(), g, rtol=1e-3, atol=1e-4 * max(1, np.abs(g).max()),
                                   err_msg=name)


@pytest.mark.parametrize("kind", ["maf", "nsf", "ncsf", "nice"])
def test_samples_match_zuko_given_base_noise(kind):
    zf, hf = _pair(kind)
    _, c = _data(kind, 32, 3, 2)
    z = zf(c).base.sample((4,))
    xz = zf(c).transform.inv(z).detach().numpy()
    with hepml.no_grad():  # the all-in-C inversion
        xh = hf(H(c)).transform.inv(H(z)).numpy()
    np.testing.assert_allclose(xh, xz, rtol=1e-4, atol=1e-4)
    # the differentiable pass loop (rsample path) agrees with the C inversion
    hc = H(c).requires_grad_()
    xs = hf(hc).transform.inv(H(z))
    assert xs.requires_grad
    np.testing.assert_allclose(xs.detach().numpy(), xh, rtol=1e-5, atol=1e-5)
    # gradients of samples w.r.t. parameters and context agree with zuko's rsample
    tc = c.clone().requires_grad_(True)
    zf(tc).transform.inv(z).square().sum().backward()
    xs.square().sum().backward()
    np.testing.assert_allclose(hc.grad.numpy(), tc.grad.numpy(), rtol=1e-3, atol=1e-3)
    hp = dict(hf.named_parameters())
    for name, p in zf.named_parameters():
        g = p.grad.numpy()
        np.testing.assert_allclose(hp[name].grad.numpy(), g, rtol=1e-3, atol=1e-4 * max(1, np.abs(g).max()),
                                   err_msg=name)
    assert not hf(H(c)).sample((2,)).requires_grad


def test_sample_shapes_and_rsample_and_log_prob():
    _, hf = _pair("nsf", features=2, context=3)
    c = hepml.randn(4, 3)
    assert tuple(hf(c).sample((7,)).shape) == (7, 4, 2)
    assert tuple(hf(c[0]).sample((5,)).shape) == (5, 2)
    x, lp = hf(c).rsample_and_log_prob((6,))
    assert tuple(x.shape) == (6, 4, 2) and tuple(lp.shape) == (6, 4)
    np.testing.assert_allclose(lp.detach().numpy(), hf(c).log_prob(x.detach()).detach().numpy(), atol=1e-4)
    (x.sum() + lp.sum()).backward()  # differentiable through the inverse kernels
    assert hf.transform.transforms[0].hyper[0].weight.grad is not None
    with hepml.no_grad():
        x, lp = hf(c).rsample_and_log_prob((6,))
    np.testing.assert_allclose(lp.numpy(), hf(c).log_prob(x).detach().numpy(), atol=1e-4)
    u = flows.MAF(3, transforms=2)
    assert tuple(u().sample((5,)).shape) == (5, 3)
    assert tuple(u().log_prob(hepml.randn(2, 5, 3)).shape) == (2, 5)


@pytest.mark.parametrize("kind", ["maf", "nsf", "ncsf"])
@pytest.mark.parametrize("options", [{}, {"passes": 2}, {"randperm": True, "transforms": 3}])
def test_inverse_of_forward(kind, options):
    _, hf = _pair(kind, features=5, context=2, **options)
    x, c = _data(kind, 50, 5, 2)
    with hepml.no_grad():
        t = hf(H(c)).transform
        z = t(H(x))
        back = t.inv(z).numpy()
    ref = x.numpy()
    if kind == "ncsf":  # equal modulo 2 pi
        d = np.abs(np.remainder(back - ref + math.pi, 2 * math.pi) - math.pi)
        assert d.max() < 1e-4
    else:
        np.testing.assert_allclose(back, ref, atol=1e-4)


@pytest.mark.parametrize("univariate", ["affine", "rqs"])
def test_coupling_inverse_of_forward_and_bad_mask(univariate):
    f = flows.NICE(5, 2, transforms=3, randmask=True, univariate=univariate, hidden_features=(8,))
    x, c = _data("nsf", 30, 5, 2)
    with hepml.no_grad():
        t = f(H(c)).transform
        np.testing.assert_allclose(t.inv(t(H(x))).numpy(), x.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="mask"):
        flows.GeneralCouplingTransform(3, mask=[True, True, True])
    with pytest.raises(ValueError, match=r"event shape \(5,\)"):
        f(H(c)).log_prob(hepml.randn(30, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 5\)"):
        f(H(c)).transform(hepml.randn(30, 4))


def _jacobian_fd(f, x, eps=2e-3):
    x = x.astype(np.float64)
    n = x.shape[-1]
    J = np.zeros((x.shape[0], n, n))
    for j in range(n):
        d = np.zeros(n)
        d[j] = eps
        with hepml.no_grad():
            yp = f(hepml.tensor((x + d).astype(np.float32))).numpy().astype(np.float64)
            ym = f(hepml.tensor((x - d).astype(np.float32))).numpy().astype(np.float64)
        J[:, :, j] = (yp - ym) / (2 * eps)
    return J


@pytest.mark.parametrize("kind", ["maf", "nsf"])
def test_log_det_matches_finite_difference_jacobian(kind):
    _, hf = _pair(kind, features=3, context=0, std=0.2)
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    t = hf().transform
    J = _jacobian_fd(t, x)
    with hepml.no_grad():
        _, ladj = t.call_and_ladj(hepml.tensor(x))
    np.testing.assert_allclose(ladj.numpy(), np.linalg.slogdet(J)[1], atol=5e-3)
    # and of the inverse direction
    with hepml.no_grad():
        z = t(hepml.tensor(x)).numpy()
        _, ladj_inv = t.inv.call_and_ladj(hepml.tensor(z))
    Ji = _jacobian_fd(t.inv, z)
    np.testing.assert_allclose(ladj_inv.numpy(), np.linalg.slogdet(Ji)[1], atol=5e-3)


def test_density_integrates_to_one_1d():
    g = torch.Generator().manual_seed(3)
    w, h, d = (torch.randn(s, generator=g).numpy() for s in ((1, 8), (1, 8), (1, 7)))
    f = flows.Flow([flows.UnconditionalTransform(flows.MonotonicRQSTransform, hepml.tensor(w), hepml.tensor(h),
                                                 hepml.tensor(d), bound=3.0),
                    flows.UnconditionalTransform(flows.MonotonicAffineTransform, hepml.tensor([0.3]),
                                                 hepml.tensor([0.5]))],
                   flows.UnconditionalDistribution(flows.DiagNormal, hepml.zeros(1), hepml.ones(1), buffer=True))
    grid = np.linspace(-15, 15, 30001, dtype=np.float32)[:, None]
    with hepml.no_grad():
        p = np.exp(f().log_prob(hepml.tensor(grid)).numpy().astype(np.float64))
    assert abs(np.trapezoid(p, grid[:, 0]) - 1) < 1e-3


@pytest.mark.parametrize("kind", ["maf", "nsf"])
def test_density_integrates_to_one_2d(kind):
    _, hf = _pair(kind, features=2, context=0, std=0.2)
    u = np.linspace(-9, 9, 361)
    X, Y = np.meshgrid(u, u, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()], -1).astype(np.float32)
    with hepml.no_grad():
        p = np.exp(hf().log_prob(hepml.tensor(pts)).numpy().astype(np.float64)).reshape(X.shape)
    total = np.trapezoid(np.trapezoid(p, u, axis=1), u)
    assert abs(total - 1) < 1e-2


def test_gradcheck_log_prob_inputs_and_context():
    for kind in ("maf", "nsf"):
        _, hf = _pair(kind, features=2, context=2, std=0.3, transforms=1, hidden_features=(4,))
        x, c = _data(kind, 3, 2, 2)
        gradcheck(lambda x, c: hf(c).log_prob(x), x.numpy(), c.numpy(), rtol=3e-2, atol=3e-3)


def test_gradcheck_log_prob_parameters():
    _, hf = _pair("nsf", features=2, context=1, std=0.3, transforms=1, hidden_features=(3,))
    x, c = _data("nsf", 3, 2, 1)
    lin = hf.transform.transforms[0].hyper[2]

    def fn(w, b):
        lin._parameters["weight"], lin._parameters["bias"] = w, b  # plain tensors as the layer's parameters
        return hf(H(c)).log_prob(H(x))
    gradcheck(fn, lin.weight.detach().numpy(), lin.bias.detach().numpy(), rtol=3e-2, atol=3e-3)


@pytest.mark.parametrize("inverse", [False, True])
def test_gradcheck_elementwise_kernels(inverse):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.5, 2.5, (2, 3)).astype(np.float32)
    pa = (rng.standard_normal((2, 3, 2)) * 0.5).astype(np.float32)
    pr = (rng.standard_normal((2, 3, 14)) * 0.5).astype(np.float32)
    gradcheck(lambda x, p: hepml._C.flow_affine(x, p, 1e-3, inverse), x, pa)
    gradcheck(lambda x, p: hepml._C.flow_rqs(x, p, 5, 3.0, 1e-3, False, inverse), x, pr)
    gradcheck(lambda x, p: hepml._C.flow_rqs(x, p, 5, math.pi, 1e-3, True, inverse), x, pr)


def test_masked_linear_matches_torch_and_gradcheck():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    m = rng.random((3, 5)) < 0.5
    out = hepml._C.masked_linear(hepml.tensor(x), hepml.tensor(w), hepml.tensor(m), hepml.tensor(b))
    ref = torch.nn.functional.linear(torch.tensor(x), torch.tensor(w) * torch.tensor(m), torch.tensor(b))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    gradcheck(lambda x, w, b: hepml._C.masked_linear(x, w, hepml.tensor(m), b), x, w, b)


def test_made_masks_match_zuko():
    torch.manual_seed(0)
    adj = torch.randn(6, 4) < 0
    adj[:, 0] = True
    for hidden in [(8,), (16, 7), (5, 5, 5)]:
        zm = zuko.nn.MaskedMLP(adj, hidden)
        hm = flows.MaskedMLP(hepml.tensor(adj.numpy()), hidden)
        zmasks = [m.mask.numpy() for m in zm if hasattr(m, "mask")]
        hmasks = [m.mask.numpy() for m in hm if isinstance(m, flows.MaskedLinear)]
        assert len(zmasks) == len(hmasks)
        for a, b in zip(zmasks, hmasks):
            np.testing.assert_array_equal(a, b)


def test_transforms_roundtrip_and_ladj():
    rng = np.random.default_rng(2)
    x = hepml.tensor(rng.uniform(-2, 2, (4, 3)).astype(np.float32))
    w, h, d = (hepml.tensor(rng.standard_normal(s).astype(np.float32)) for s in ((3, 6), (3, 6), (3, 5)))
    ts = [flows.AffineTransform(hepml.tensor([1.0, 2.0, -0.5]), hepml.tensor([2.0, 0.5, -3.0])),
          flows.ExpTransform(), flows.SigmoidTransform(),
          flows.MonotonicAffineTransform(hepml.tensor([0.1, 0.2, 0.3]), hepml.tensor([0.5, -1.0, 2.0])),
          flows.MonotonicRQSTransform(w, h, d, bound=3.0), flows.CircularShiftTransform(bound=math.pi),
          flows.PermutationTransform([2, 0, 1])]
    for t in ts:
        with hepml.no_grad():
            y, ladj = t.call_and_ladj(x)
            np.testing.assert_allclose(t.inv(y).numpy(), x.numpy(), atol=1e-4, err_msg=repr(t))
            np.testing.assert_allclose(t(x).numpy(), y.numpy(), atol=1e-6)
            np.testing.assert_allclose(t.log_abs_det_jacobian(x, y).numpy(), ladj.numpy(), atol=1e-5)
    # element-wise transforms against zuko
    zt = zuko.transforms.MonotonicRQSTransform(*(torch.tensor(a.numpy()) for a in (w, h, d)), bound=3.0)
    zy, zl = zt.call_and_ladj(torch.tensor(x.numpy()))
    with hepml.no_grad():
        y, ladj = ts[4].call_and_ladj(x)
    np.testing.assert_allclose(y.numpy(), zy.numpy(), atol=1e-5)
    np.testing.assert_allclose(ladj.numpy(), zl.numpy(), atol=1e-5)


def test_training_reduces_nll():
    hepml.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 512
    centres = np.where(rng.random(n)[:, None] < 0.5, [-2.0, 0.0], [2.0, 1.0])
    data = hepml.tensor((centres + 0.4 * rng.standard_normal((n, 2))).astype(np.float32))
    flow = flows.MAF(2, transforms=3, hidden_features=(32, 32))
    opt = hepml.optim.Adam(flow.parameters(), lr=3e-3)
    with hepml.no_grad():
        start = -float(flow().log_prob(data).mean().item())
    for _ in range(150):
        loss = -flow().log_prob(data).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with hepml.no_grad():
        end = -float(flow().log_prob(data).mean().item())
    assert end < start - 0.5, (start, end)


def test_bad_inputs():
    f = flows.MAF(3, 2, transforms=1, hidden_features=(8,))
    c = hepml.randn(4, 2)
    with pytest.raises(ValueError, match="context"):
        f().log_prob(hepml.randn(4, 3))
    with pytest.raises(ValueError, match=r"context has shape"):
        f(hepml.randn(4, 5))
    with pytest.raises(ValueError, match="3"):
        f(c).log_prob(hepml.randn(4, 4))
    with pytest.raises(ValueError, match="3"):
        with hepml.no_grad():
            f(c).transform.inv(hepml.randn(4, 2))
    with pytest.raises(ValueError, match="params"):
        hepml._C.flow_rqs(hepml.randn(3), hepml.randn(3, 10), 4)
    with pytest.raises(ValueError, match="slope"):
        hepml._C.flow_affine(hepml.randn(3), hepml.randn(3, 2), 2.0)
    with pytest.raises(ValueError, match="mask"):
        hepml._C.masked_linear(hepml.randn(2, 3), hepml.randn(4, 3), hepml.randn(4, 3))
    with pytest.raises(ValueError, match="null Jacobian"):
        flows.MaskedMLP(hepml.tensor(np.zeros((3, 3), bool)), (4,))
    with pytest.raises(ValueError, match="order"):
        flows.MaskedAutoregressiveTransform(3, order=[0, 1])
