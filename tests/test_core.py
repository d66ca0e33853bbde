"""The tensor type, autograd engine, creation ops and broadcasting arithmetic."""
import gc

import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip


def test_tensor_from_lists_and_arrays():
    t = hepml.tensor([[1, 2], [3, 4]])
    assert t.dtype == np.float32 and t.shape == (2, 2) and t.ndim == 2 and t.numel() == 4
    m = hepml.tensor(np.array([True, False]))
    assert m.dtype == np.bool_
    i = hepml.tensor(np.arange(3), dtype=hepml.int64)
    assert i.dtype == np.int64
    assert hepml.tensor(np.float64(2.5)).item() == 2.5


def test_numpy_is_zero_copy():
    t = hepml.zeros(3)
    a = t.numpy()
    a[1] = 5
    assert t.tolist() == [0, 5, 0]
    assert np.shares_memory(np.asarray(t), a)
    src = np.arange(4, dtype=np.float32)
    assert np.shares_memory(hepml.from_numpy(src).numpy(), src)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="real numbers or booleans"):
        hepml.tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="complex|real numbers"):
        hepml.tensor(np.array([1j]))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        hepml.zeros(2, 3) + hepml.zeros(4)
    with pytest.raises(ValueError, match="negative"):
        hepml.zeros(-1)
    with pytest.raises(ValueError, match="only a tensor with one element"):
        hepml.zeros(2).item()
    with pytest.raises(ValueError, match="overflows|too many"):
        hepml.zeros(2**40, 2**40)
    with pytest.raises(TypeError, match="float32"):
        hepml.tensor([1, 2], dtype=hepml.int64, requires_grad=True)


def test_repr_like_torch():
    t = hepml.tensor([1.0, 2.0], requires_grad=True)
    assert repr(t) == "tensor([1., 2.], requires_grad=True)"
    assert "grad_fn=<MulBackward>" in repr(t * 2)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3))])
def test_binary_gradients(op, shapes):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, shapes[0])
    b = rng.uniform(0.5, 2.0, shapes[1])
    gradcheck(getattr(hepml, op), a, b)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_against_torch(op):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 2.0, (2, 3, 4)).astype(np.float32)
    b = rng.uniform(0.5, 2.0, (3, 1)).astype(np.float32)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ha, hb = hepml.tensor(a, requires_grad=True), hepml.tensor(b, requires_grad=True)
    g = rng.standard_normal((2, 3, 4)).astype(np.float32)
    to = getattr(torch, op)(ta, tb)
    ho = getattr(hepml, op)(ha, hb)
    to.backward(torch.tensor(g))
    ho.backward(gradient=g)
    assert_close(ho, to.detach().numpy(), rtol=1e-6)
    assert_close(ha.grad, ta.grad.numpy(), rtol=1e-5)
    assert_close(hb.grad, tb.grad.numpy(), rtol=1e-5)


def test_scalars_and_reflected_operators():
    x = hepml.tensor([1.0, 2.0])
    assert (2 - x).tolist() == [1, 0]
    assert (1 / x).tolist() == [1, 0.5]
    assert (np.float32(3) * x).tolist() == [3, 6]
    assert isinstance(np.ones(2) + x, hepml.Tensor)


def test_gradient_accumulates_and_diamond_graph():
    x = hepml.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x          # used twice below: the engine must sum both paths
    z = y * x + y
    z.backward(gradient=np.ones(3))
    assert_close(x.grad, 3 * np.array([1, 4, 9]) + 2 * np.array([1, 2, 3]))
    (x * 2).backward(gradient=np.ones(3))  # accumulates into .grad
    assert_close(x.grad, 3 * np.array([1, 4, 9]) + 2 * np.array([1, 2, 3]) + 2)


def test_shared_gradient_arrays_are_not_aliased():
    a = hepml.tensor([1.0], requires_grad=True)
    b = hepml.tensor([1.0], requires_grad=True)
    (a + b).backward(gradient=np.ones(1))
    (a * 3).backward(gradient=np.ones(1))
    assert a.grad.item() == 4 and b.grad.item() == 1


def test_second_backward_needs_retain_graph():
    x = hepml.tensor([2.0], requires_grad=True)
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 8
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_needs_scalar_or_gradient():
    x = hepml.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(gradient=np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        hepml.tensor([1.0]).backward()


def test_no_grad_and_detach():
    x = hepml.tensor([1.0], requires_grad=True)
    with hepml.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert hepml.is_grad_enabled()
    d = (x * 2).detach()
    assert not d.requires_grad


def test_inplace_on_saved_tensor_is_detected():
    w = hepml.tensor([1.0, 2.0], requires_grad=True)
    x = hepml.tensor([3.0, 4.0])
    y = w * x
    x.fill_(0.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward(gradient=np.ones(2))


def test_inplace_on_leaf_requires_no_grad():
    w = hepml.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w.fill_(0.0)
    with hepml.no_grad():
        w.fill_(3.0)
    assert w.item() == 3.0


def test_graph_is_freed_without_gc():
    import weakref
    x = hepml.tensor([1.0], requires_grad=True)
    y = x * 2
    z = y * 3
    ref = weakref.ref(y)
    gc.disable()
    try:
        del y
        assert ref() is not None  # z's node still needs it
        del z
        assert ref() is None
    finally:
        gc.enable()


def test_rng_is_seeded_and_thread_independent():
    hepml.manual_seed(7)
    hepml.set_num_threads(1)
    a = hepml.randn(100_000).numpy().copy()
    hepml.manual_seed(7)
    hepml.set_num_threads(2)
    b = hepml.randn(100_000).numpy().copy()
    assert np.array_equal(a, b)
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02
    c = hepml.randn(100_000).numpy()
    assert not np.array_equal(a, c)


def test_creation_ops():
    assert hepml.arange(5).dtype == np.int64
    assert hepml.arange(0, 1, 0.25).tolist() == [0, 0.25, 0.5, 0.75]
    assert hepml.linspace(0, 1, 5).tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert hepml.full((2,), 3.5).tolist() == [3.5, 3.5]
    assert sorted(hepml.randperm(10).tolist()) == list(range(10))
    r = hepml.randint(3, 7, (1000,)).numpy()
    assert r.min() == 3 and r.max() == 6
    u = hepml.rand(10000).numpy()
    assert u.min() >= 0 and u.max() < 1
    assert hepml.zeros_like(hepml.ones(2, 3)).shape == (2, 3)


def test_buffers_are_reused():
    for _ in range(3):
        a = hepml.randn(512, 512)
        b = a * 2
        del a, b
    before = hepml._C._pool_stats()["misses"]
    for _ in range(10):
        a = hepml.randn(512, 512)
        b = a * 2
        del a, b
    assert hepml._C._pool_stats()["misses"] == before


def test_show_config_runs(capsys):
    hepml.show_config()
    out = capsys.readouterr().out
    assert "BLAS" in out and "OpenMP threads" in out
