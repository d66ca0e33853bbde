"""matrix_exp (forward and gradient vs torch, gradcheck, edge cases, bad inputs),
RotationTransform with zuko's parametrisation R = exp(A - A^T) (same A -> same
numbers as zuko, learned inside a flow), and MaskedAutoregressiveTransform(
adjacency=...) (zuko's semantics: same masks, passes, log-dets and inverses)."""
import math

import numpy as np
import pytest

import hepml
from hepml import flows
from helpers import gradcheck

torch = pytest.importorskip("torch")
zuko = pytest.importorskip("zuko")

RNG = np.random.default_rng(11)


def T(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


# ------------------------------------------------------------------ matrix_exp
# hepml computes in double and rounds once, so it is compared with torch in float64:
# the difference is float32 rounding of the result (~1e-7 relative to its largest entry).

@pytest.mark.parametrize("shape,scale", [((1, 1), 1.0), ((2, 2), 0.1), ((3, 3), 1.0), ((4, 5, 5), 2.0),
                                         ((2, 3, 8, 8), 1.0), ((6, 6), 10.0), ((60, 60), 0.5)])
def test_matrix_exp_matches_torch(shape, scale):
    a = (RNG.standard_normal(shape) * scale).astype(np.float32)
    g = RNG.standard_normal(shape).astype(np.float32)
    x = hepml.tensor(a, requires_grad=True)
    r = hepml.matrix_exp(x)
    r.backward(hepml.tensor(g))
    t = T(a).requires_grad_(True)
    rt = torch.linalg.matrix_exp(t)
    rt.backward(T(g))
    big = np.abs(rt.detach().numpy()).max()
    np.testing.assert_allclose(r.detach().numpy(), rt.detach().numpy(), rtol=1e-5, atol=1e-6 * big)
    gbig = np.abs(t.grad.numpy()).max()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6 * gbig)


def test_matrix_exp_gradcheck():
    gradcheck(lambda a: hepml.matrix_exp(a), RNG.standard_normal((3, 3)) * 0.7)
    gradcheck(lambda a: hepml.matrix_exp(a - a.mT), RNG.standard_normal((2, 4, 4)))
    gradcheck(lambda a: hepml.matrix_exp(a) * 0.1, RNG.standard_normal((3, 3)) * 3)  # with squarings


def test_matrix_exp_known_values():
    np.testing.assert_array_equal(hepml.matrix_exp(hepml.zeros(3, 3)).numpy(), np.eye(3))
    d = np.diag([0.5, -1.0, 2.0]).astype(np.float32)
    np.testing.assert_allclose(hepml.matrix_exp(d).numpy(), np.diag(np.exp([0.5, -1.0, 2.0])), rtol=1e-6)
    # exp of a 2-D skew-symmetric matrix is the rotation by that angle
    th = 2.5
    r = hepml.tensor([[0.0, -th], [th, 0.0]]).matrix_exp().numpy()
    np.testing.assert_allclose(r, [[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], atol=1e-6)


def test_matrix_exp_empty_and_nan():
    assert tuple(hepml.matrix_exp(hepml.zeros(0, 3, 3)).shape) == (0, 3, 3)
    assert tuple(hepml.matrix_exp(hepml.zeros(2, 0, 0)).shape) == (2, 0, 0)
    a = np.eye(2, dtype=np.float32)
    a[0, 1] = np.nan
    assert np.isnan(hepml.matrix_exp(a).numpy()).all()
    b = hepml.matrix_exp(np.stack([a, np.eye(2, dtype=np.float32)]))  # one bad matrix spoils only itself
    np.testing.assert_allclose(b.numpy()[1], np.diag([math.e, math.e]), rtol=1e-6)


def test_matrix_exp_independent_of_thread_count():
    a = RNG.standard_normal((400, 8, 8)).astype(np.float32)
    g = RNG.standard_normal((400, 8, 8)).astype(np.float32)
    out = []
    old = hepml.get_num_threads()
    try:
        for nt in (1, 2):
            hepml.set_num_threads(nt)
            x = hepml.tensor(a, requires_grad=True)
            hepml.matrix_exp(x).backward(hepml.tensor(g))
            out.append((hepml.matrix_exp(a).numpy(), x.grad.numpy()))
    finally:
        hepml.set_num_threads(old)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_matrix_exp_bad_inputs():
    with pytest.raises(ValueError, match=r"matrix_exp\(\): argument 'input' has shape \(3,\), expected square"):
        hepml.matrix_exp(hepml.randn(3))
    with pytest.raises(ValueError, match=r"has shape \(2, 3, 4\), expected square matrices"):
        hepml.matrix_exp(hepml.randn(2, 3, 4))


# ------------------------------------------------------------------ RotationTransform

def test_rotation_matches_zuko():
    a = RNG.standard_normal((4, 4)).astype(np.float32)
    x = RNG.standard_normal((10, 4)).astype(np.float32)
    zt = zuko.transforms.RotationTransform(torch.tensor(a))
    ht = flows.RotationTransform(hepml.tensor(a))
    np.testing.assert_allclose(ht.R.numpy(), zt.R.numpy(), rtol=1e-5, atol=2e-6)
    R = ht.R.numpy().astype(np.float64)
    np.testing.assert_allclose(R @ R.T, np.eye(4), atol=1e-6)
    assert abs(np.linalg.det(R) - 1) < 1e-5
    y, ladj = ht.call_and_ladj(hepml.tensor(x))
    np.testing.assert_allclose(y.numpy(), zt(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    assert tuple(ladj.shape) == (10,) and not ladj.numpy().any()
    np.testing.assert_allclose(ht.inv(y).numpy(), x, atol=1e-5)
    np.testing.assert_allclose(ht.inv(y).numpy(), zt.inv(torch.tensor(y.numpy())).numpy(), atol=1e-5)


def test_rotation_batched_matrices():
    a = RNG.standard_normal((5, 3, 3)).astype(np.float32)
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    zt = zuko.transforms.RotationTransform(torch.tensor(a))
    ht = flows.RotationTransform(a)
    y = ht(hepml.tensor(x))
    np.testing.assert_allclose(y.numpy(), zt(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ht.inv(y).numpy(), x, atol=1e-5)
    assert tuple(ht.log_abs_det_jacobian(hepml.tensor(x), y).shape) == (5,)


def test_rotation_learned_in_flow_matches_zuko():
    """A flow with MAF layers and a learned rotation between them: same parameters
    -> same log_prob and the same gradient w.r.t. the rotation's A as zuko."""
    torch.manual_seed(2)
    F = 3

    def build(lib):
        fl = zuko.flows if lib is zuko else flows
        tr = zuko.transforms if lib is zuko else flows
        rand = torch.randn(F, F) if lib is zuko else hepml.zeros(F, F)
        return fl.Flow([fl.MaskedAutoregressiveTransform(F, 2, hidden_features=(8,)),
                        fl.UnconditionalTransform(tr.RotationTransform, rand),
                        fl.MaskedAutoregressiveTransform(F, 2, hidden_features=(8,), order=[2, 1, 0])],
                       fl.UnconditionalDistribution(zuko.distributions.DiagNormal if lib is zuko else flows.DiagNormal,
                                                    torch.zeros(F) if lib is zuko else hepml.zeros(F),
                                                    torch.ones(F) if lib is zuko else hepml.ones(F), buffer=True))

    zf, hf = build(zuko), build(hepml)
    sd = zf.state_dict()
    assert sorted(sd) == sorted(hf.state_dict())
    hf.load_state_dict({k: v.numpy() for k, v in sd.items()})
    x, c = torch.randn(20, F), torch.randn(20, 2)
    lz = zf(c).log_prob(x)
    lz.sum().backward()
    lh = hf(hepml.tensor(c.numpy())).log_prob(hepml.tensor(x.numpy()))
    lh.sum().backward()
    np.testing.assert_allclose(lh.detach().numpy(), lz.detach().numpy(), rtol=1e-5, atol=1e-5)
    za = dict(zf.named_parameters())["transform.transforms.1._0"].grad.numpy()
    ha = dict(hf.named_parameters())["transform.transforms.1._0"].grad.numpy()
    np.testing.assert_allclose(ha, za, rtol=1e-4, atol=1e-5)
    with hepml.no_grad():
        s = hf(hepml.tensor(c.numpy()[:4])).sample((7,))
    assert tuple(s.shape) == (7, 4, F)


def test_rotation_bad_inputs():
    with pytest.raises(ValueError, match=r"RotationTransform: argument 'A' has shape \(3, 2\)"):
        flows.RotationTransform(hepml.randn(3, 2))
    t = flows.RotationTransform(hepml.randn(3, 3))
    with pytest.raises(ValueError, match=r"RotationTransform: input has shape \(4, 2\), expected \(\.\.\., 3\)"):
        t(hepml.randn(4, 2))


# ------------------------------------------------------------------ adjacency

ADJ = np.array([[1, 0, 0, 0, 0],
                [1, 1, 0, 0, 0],
                [0, 1, 1, 0, 0],
                [1, 0, 0, 1, 0],
                [0, 0, 1, 1, 1]], dtype=bool)  # generations: {0}, {1, 3}, {2}, {4} -> 4 passes
ADJ_CTX = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=bool)


def _pair(adjacency, context, univariate):
    torch.manual_seed(0)
    kw = {} if univariate == "affine" else dict(univariate=zuko.transforms.MonotonicRQSTransform,
                                                shapes=[(8,), (8,), (7,)])
    zt = zuko.flows.MaskedAutoregressiveTransform(5, context, adjacency=torch.tensor(adjacency),
                                                  hidden_features=(16, 16), **kw)
    with torch.no_grad():
        for p in zt.parameters():
            p.normal_(0, 0.3)
    ht = flows.MaskedAutoregressiveTransform(5, context, adjacency=adjacency, hidden_features=(16, 16),
                                             univariate=univariate)
    sd = zt.state_dict()
    assert sorted(sd) == sorted(ht.state_dict())  # no 'order' buffer, as zuko
    for k, v in sd.items():
        if k.endswith("mask"):
            np.testing.assert_array_equal(ht.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    ht.load_state_dict({k: v.numpy() for k, v in sd.items()})
    return zt, ht


@pytest.mark.parametrize("univariate", ["affine", "rqs"])
@pytest.mark.parametrize("context,adjacency", [(0, ADJ), (2, ADJ), (2, np.concatenate([ADJ, ADJ_CTX], 1))],
                         ids=["no-context", "context", "context-columns"])
def test_adjacency_matches_zuko(univariate, context, adjacency):
    zt, ht = _pair(adjacency, context, univariate)
    assert zt.passes == ht.passes == 4
    x = torch.randn(40, 5)
    c = torch.randn(40, context) if context else None
    hc = hepml.tensor(c.numpy()) if context else None
    zy, zl = zt(c).call_and_ladj(x)
    hy, hl = ht(hc).call_and_ladj(hepml.tensor(x.numpy()))
    tol = 1e-5 if univariate == "affine" else 3e-5
    np.testing.assert_allclose(hy.numpy(), zy.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(hl.numpy(), zl.detach().numpy(), rtol=tol, atol=tol)
    with hepml.no_grad():  # the all-in-C inversion, one generation per pass
        xf = ht(hc).inv(hy)
    xs = ht(hc)._slow_inverse(hy)  # zuko's fixed-point passes
    np.testing.assert_allclose(xf.numpy(), x.numpy(), atol=2e-5)
    np.testing.assert_allclose(xs.detach().numpy(), x.numpy(), atol=2e-5)


def test_adjacency_jacobian_follows_graph():
    _, ht = _pair(ADJ, 0, "affine")
    j = hepml.autograd.jacobian(lambda v: ht()(v), hepml.randn(5)).numpy()
    assert not j[~ADJ].any()
    assert (j[ADJ] != 0).all()


def test_adjacency_in_flow_samples():
    hepml.manual_seed(1)
    flow = flows.Flow([flows.MaskedAutoregressiveTransform(5, 2, adjacency=ADJ, hidden_features=(16,))],
                      flows.UnconditionalDistribution(flows.DiagNormal, hepml.zeros(5), hepml.ones(5), buffer=True))
    c = hepml.randn(3, 2)
    with hepml.no_grad():
        x, lp = flow(c).rsample_and_log_prob((6,))
    assert tuple(x.shape) == (6, 3, 5)
    np.testing.assert_allclose(flow(c).log_prob(x).detach().numpy(), lp.numpy(), rtol=1e-4, atol=1e-4)
    assert "(passes): 4" in repr(flow)


def test_adjacency_bad_inputs():
    with pytest.raises(ValueError, match=r"'adjacency' has shape \(5, 4\), expected \(5, 5\)"):
        flows.MaskedAutoregressiveTransform(5, adjacency=ADJ[:, :4])
    with pytest.raises(ValueError, match=r"expected \(5, 5\) or \(5, 7\)"):
        flows.MaskedAutoregressiveTransform(5, 2, adjacency=np.ones((5, 6), dtype=bool))
    bad = ADJ.copy()
    bad[2, 2] = False
    with pytest.raises(ValueError, match="ones on the diagonal"):
        flows.MaskedAutoregressiveTransform(5, adjacency=bad)
    cyc = ADJ.copy()
    cyc[0, 4] = True
    with pytest.raises(ValueError, match="has a cycle"):
        flows.MaskedAutoregressiveTransform(5, adjacency=cyc)
