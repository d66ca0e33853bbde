"""hepml.autograd.jacobian: agreement with torch.autograd.functional.jacobian (shapes
and values), the MADE's triangular structure, no side effects on module
parameters' gradients, and bad inputs."""
import numpy as np
import pytest

import hepml
from hepml import flows
from hepml.autograd import jacobian

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)
W = RNG.standard_normal((5, 4)).astype(np.float32)


# The same function written for both libraries: (name, hepml version, torch version, input shape)
CASES = [
    ("elementwise", lambda x: x.sin() * x.exp(), lambda x: x.sin() * x.exp(), (6,)),
    ("matrix", lambda x: x.matmul(hepml.tensor(W).mT).tanh(), lambda x: (x @ torch.tensor(W, dtype=torch.float64).mT).tanh(), (4,)),
    ("batched rows", lambda x: x.matmul(hepml.tensor(W).mT), lambda x: x @ torch.tensor(W, dtype=torch.float64).mT, (3, 4)),
    ("reduction to scalar", lambda x: (x * x).sum(), lambda x: (x * x).sum(), (2, 3)),
    ("row reduction", lambda x: (x * x.exp()).sum(-1), lambda x: (x * x.exp()).sum(-1), (3, 4)),
    ("mixing", lambda x: x.softmax(-1) * x.sum(), lambda x: x.softmax(-1) * x.sum(), (5,)),
    ("rotation", lambda x: (x - x.mT).matrix_exp(), lambda x: torch.linalg.matrix_exp(x - x.mT), (3, 3)),
]


@pytest.mark.parametrize("name,fh,ft,shape", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(name, fh, ft, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    jh = jacobian(fh, hepml.tensor(x))
    jt = torch.autograd.functional.jacobian(ft, torch.tensor(x, dtype=torch.float64))
    assert tuple(jh.shape) == tuple(jt.shape)
    np.testing.assert_allclose(jh.numpy(), jt.numpy(), rtol=1e-5, atol=1e-5)


def test_accepts_arrays_and_identity():
    x = RNG.standard_normal(4).astype(np.float32)
    np.testing.assert_array_equal(jacobian(lambda t: t, x).numpy(), np.eye(4, dtype=np.float32))


def test_output_independent_of_input_gives_zeros():
    const = hepml.randn(3)
    j = jacobian(lambda t: const * 2.0, hepml.randn(2))
    assert tuple(j.shape) == (3, 2)
    assert not j.numpy().any()
    j = jacobian(lambda t: t[0] * 0.0 + const, hepml.randn(2))  # depends on one element only
    assert not j.numpy()[:, 1].any()


def test_input_left_untouched():
    x = hepml.randn(3, requires_grad=True)
    jacobian(lambda t: t * t, x)
    assert x.grad is None


def _made(order, hidden=(32, 32), out_repeat=1):
    order = hepml.tensor(order, dtype=hepml.int64)
    adj = order.unsqueeze(-1) > order  # output i may depend on input j iff order[j] < order[i]
    if out_repeat > 1:
        adj = hepml.tensor(np.repeat(adj.numpy(), out_repeat, axis=0))
    return flows.MaskedMLP(adj, hidden_features=hidden), adj.numpy()


def test_masked_mlp_jacobian_is_strictly_triangular():
    hepml.manual_seed(3)
    mlp, adj = _made(list(range(6)))
    j = jacobian(mlp, hepml.randn(6)).numpy()
    assert j.shape == (6, 6)
    assert not np.triu(j).any(), "a MADE output depends on its own or a later input"
    # every allowed connection is used (random weights, ReLU units: zero only by accident)
    assert (j[np.tril_indices(6, -1)] != 0).mean() > 0.9


def test_masked_mlp_jacobian_follows_any_order_and_matches_torch():
    zuko = pytest.importorskip("zuko")
    hepml.manual_seed(4)
    order = [3, 0, 4, 1, 2]
    mlp, adj = _made(order, hidden=(16, 16), out_repeat=2)
    x = RNG.standard_normal(5).astype(np.float32)
    j = jacobian(mlp, hepml.tensor(x)).numpy()
    assert not j[~adj].any()
    # in the autoregressive order (rows and columns sorted by order) it is strictly lower-triangular
    perm = np.argsort(order)
    jo = j.reshape(5, 2, 5)[perm][:, :, perm]
    for t in range(2):
        assert not np.triu(jo[:, t, :]).any()
    # the same network in zuko, the Jacobian from torch
    zm = zuko.nn.MaskedMLP(torch.tensor(adj), hidden_features=(16, 16))
    zm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in mlp.state_dict().items()})
    jt = torch.autograd.functional.jacobian(lambda t: zm(t), torch.tensor(x))
    np.testing.assert_allclose(j, jt.numpy(), rtol=1e-5, atol=1e-6)


def test_maf_transform_jacobian_is_triangular_with_log_det():
    hepml.manual_seed(5)
    t = flows.MaskedAutoregressiveTransform(4, hidden_features=(16, 16), order=[2, 0, 3, 1])
    x = hepml.randn(4)
    j = jacobian(lambda v: t()(v), x).numpy()
    perm = np.argsort([2, 0, 3, 1])
    jo = j[perm][:, perm]
    assert not np.triu(jo, 1).any()
    ladj = t().call_and_ladj(x)[1]
    np.testing.assert_allclose(np.log(np.abs(np.diag(j))).sum(), float(ladj), rtol=1e-5, atol=1e-5)


def test_module_parameter_grads_are_restored():
    hepml.manual_seed(6)
    mlp, _ = _made(list(range(4)), hidden=(8,))
    assert all(p.grad is None for p in mlp.parameters())
    jacobian(mlp, hepml.randn(4))
    assert all(p.grad is None for p in mlp.parameters())
    # existing gradients come back unchanged (bound methods count as the module)
    mlp(hepml.randn(4)).sum().backward()
    before = [p.grad.numpy().copy() for p in mlp.parameters()]
    jacobian(mlp.forward, hepml.randn(4))
    for b, p in zip(before, mlp.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), b)


def test_bad_inputs():
    with pytest.raises(NotImplementedError, match="create_graph"):
        jacobian(lambda t: t, hepml.randn(2), create_graph=True)
    with pytest.raises(TypeError, match="'f' must be callable"):
        jacobian(3, hepml.randn(2))
    with pytest.raises(TypeError, match="must return a hepml.Tensor"):
        jacobian(lambda t: 1.0, hepml.randn(2))
    with pytest.raises(TypeError, match="one tensor"):
        jacobian(lambda t: t, (hepml.randn(2), hepml.randn(2)))
    with pytest.raises(TypeError, match="float32"):
        jacobian(lambda t: t, hepml.tensor([1, 2], dtype=hepml.int64))
