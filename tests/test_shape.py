"""Shape ops: reshape family (zero-copy), permute/transpose, expand, repeat,
cat/stack, split/chunk/unbind, narrow/select, flip, roll: values against NumPy
and torch, gradients against torch and finite differences, bad inputs."""
import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, torch_or_skip


def arange(*shape):
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


def against_torch(hfn, tfn, *arrays, seed=0, rtol=0.0):
    """Forward values and the gradient of every input, hepml vs torch (data
    movement is exact: rtol 0 unless the function also does arithmetic)."""
    torch = torch_or_skip()
    hs = [hepml.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ho, to = hfn(*hs), tfn(*ts)
    assert ho.shape == tuple(to.shape)
    assert_close(ho, to.detach().numpy(), rtol=rtol, atol=rtol)
    g = np.random.default_rng(seed).standard_normal(tuple(to.shape)).astype(np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    for h, t in zip(hs, ts):
        assert_close(h.grad, t.grad.numpy(), rtol=1e-6, atol=1e-6, what="gradient")


# ----------------------------------------------------------- reshape family

def test_reshape_infers_and_shares_storage():
    x = hepml.tensor(arange(2, 3, 4))
    y = x.reshape(4, -1)
    assert y.shape == (4, 6) and np.shares_memory(x.numpy(), y.numpy())
    assert x.view(-1).shape == (24,) and x.reshape((3, 8)).shape == (3, 8) and x.view(2, 12).shape == (2, 12)
    assert hepml.reshape(x, (-1,)).shape == (24,) and x.view_as(hepml.zeros(6, 4)).shape == (6, 4)
    assert hepml.tensor(5.0).reshape(1, 1).shape == (1, 1) and hepml.zeros(0, 3).reshape(-1, 3).shape == (0, 3)
    np.testing.assert_array_equal(y.numpy(), arange(2, 3, 4).reshape(4, 6))
    m = hepml.tensor(np.array([True, False, True, True]))
    assert m.reshape(2, 2).dtype == np.bool_


def test_reshape_errors():
    x = hepml.zeros(2, 3)
    with pytest.raises(ValueError, match=r"shape \(4, 2\) is invalid for an input of 6 elements"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="only one dimension can be inferred"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match=r"\(4, -1\) is invalid"):
        x.reshape(4, -1)
    with pytest.raises(ValueError, match="invalid"):
        hepml.zeros(0, 3).reshape(0, -1)
    with pytest.raises(ValueError, match="non-negative"):
        x.reshape(-2, 3)
    with pytest.raises(TypeError, match="another dtype"):
        x.view(np.int64)


@pytest.mark.parametrize("shape,start,end", [((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 3, 4, 5), 1, -2),
                                             ((2, 3), 1, 1), ((), 0, -1), ((5,), 0, 0)])
def test_flatten_like_torch(shape, start, end):
    torch = torch_or_skip()
    x = arange(*shape)
    h = hepml.flatten(hepml.tensor(x), start, end)
    assert h.shape == tuple(torch.flatten(torch.tensor(x), start, end).shape)
    against_torch(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), x)


def test_squeeze_unsqueeze_unflatten_like_torch():
    torch = torch_or_skip()
    x = arange(2, 1, 3, 1)
    h, t = hepml.tensor(x), torch.tensor(x)
    for dim in [None, 1, -1, 0, (1, 3), (0, 1)]:
        hs = h.squeeze(dim) if dim is not None else h.squeeze()
        ts = t.squeeze(dim) if dim is not None else t.squeeze()
        assert hs.shape == tuple(ts.shape)
    for dim in [0, 2, 4, -1, -5]:
        assert h.unsqueeze(dim).shape == tuple(t.unsqueeze(dim).shape)
    assert h.unflatten(2, (3, 1)).shape == (2, 1, 3, 1, 1)
    assert hepml.unflatten(hepml.zeros(2, 12), -1, (3, -1)).shape == (2, 3, 4)
    with pytest.raises(IndexError, match="out of range"):
        h.unsqueeze(5)
    against_torch(lambda t: t.unsqueeze(1).squeeze(-1), lambda t: t.unsqueeze(1).squeeze(-1), x)


def test_reshape_gradient_is_a_copy():
    # the gradient of a reshape must not share memory with the output gradient
    # (two consumers of one gradient array would write into each other)
    x = hepml.tensor(arange(2, 3), requires_grad=True)
    y = x.reshape(6)
    z = (y + y.reshape(3, 2).reshape(6)) * 1.0
    z.backward(gradient=np.ones(6, np.float32))
    assert x.grad.tolist() == [[2, 2, 2], [2, 2, 2]]
    gradcheck(lambda t: t.reshape(3, 2) * 2.0, arange(2, 3))


# ---------------------------------------------------------------- permute

@pytest.mark.parametrize("dims", [(0, 1, 2), (2, 1, 0), (1, 0, 2), (0, 2, 1), (2, 0, 1), (-1, 0, 1)])
def test_permute_like_numpy_and_torch(dims):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    h = hepml.tensor(x).permute(*dims)
    np.testing.assert_array_equal(h.numpy(), np.transpose(x, dims))
    against_torch(lambda t: t.permute(dims), lambda t: t.permute(dims), x)
    assert hepml.permute(hepml.tensor(x), dims).shape == h.shape


def test_transposes():
    x = arange(3, 4, 5)
    h = hepml.tensor(x)
    np.testing.assert_array_equal(h.transpose(0, 2).numpy(), np.swapaxes(x, 0, 2))
    np.testing.assert_array_equal(h.mT.numpy(), np.swapaxes(x, -1, -2))
    np.testing.assert_array_equal(h.T.numpy(), x.T)
    np.testing.assert_array_equal(hepml.tensor(x[0]).t().numpy(), x[0].T)
    assert hepml.tensor([1.0, 2.0]).t().tolist() == [1.0, 2.0]
    assert hepml.swapaxes(h, 1, 2).shape == (3, 5, 4)
    t = h.transpose(0, 1)
    t.numpy()[...] = -1  # a copy: the source is untouched
    assert h.numpy()[0, 0, 0] == 0
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        h.t()
    with pytest.raises(ValueError, match="appears more than once"):
        h.permute(0, 0, 1)
    with pytest.raises(ValueError, match="3 dimensions"):
        h.permute(0, 1)
    gradcheck(lambda t: t.transpose(0, 1), arange(2, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
@pytest.mark.parametrize("shape,d0,d1", [((67, 45), 0, 1), ((3, 40, 33), 1, 2), ((300, 301), 0, 1),
                                         ((2, 40, 3, 50), 1, 3)])
def test_large_and_typed_transposes(dtype, shape, d0, d1):
    # exercises the tiled float path, the parallel path and 1/8-byte elements
    x = (np.random.default_rng(1).standard_normal(shape) * 10).astype(dtype)
    h = hepml.tensor(x, dtype=dtype)
    np.testing.assert_array_equal(h.transpose(d0, d1).numpy(), np.swapaxes(x, d0, d1))


def test_movedim_like_torch():
    torch = torch_or_skip()
    x = arange(2, 3, 4, 5)
    for s, d in [(0, -1), (-1, 0), ((0, 1), (2, 3)), ((3, 0), (0, 1))]:
        assert hepml.tensor(x).movedim(s, d).tolist() == torch.movedim(torch.tensor(x), s, d).tolist()


# ----------------------------------------------------------- expand/repeat

@pytest.mark.parametrize("shape,sizes", [((3, 1), (3, 4)), ((1, 3), (2, 4, 3)), ((3,), (2, 3)), ((3, 1), (-1, 5)),
                                         ((), (2, 2)), ((1, 1), (0, 3))])
def test_expand_like_torch(shape, sizes):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    against_torch(lambda t: t.expand(*sizes), lambda t: t.expand(*sizes), x)
    assert hepml.tensor(x).expand(sizes).shape == hepml.broadcast_to(hepml.tensor(x), sizes).shape


def test_expand_errors_and_expand_as():
    x = hepml.zeros(2, 3)
    with pytest.raises(ValueError, match="expanded size 4 must match the existing size 3 at non-singleton dimension 1"):
        x.expand(2, 4)
    with pytest.raises(ValueError, match="-1 is not allowed"):
        x.expand(-1, 2, 3)
    with pytest.raises(ValueError, match="got 1 sizes"):
        x.expand(6)
    assert hepml.zeros(3, 1).expand_as(hepml.zeros(2, 3, 4)).shape == (2, 3, 4)
    gradcheck(lambda t: t.expand(2, 3, 4), np.ones((3, 1)))


@pytest.mark.parametrize("shape,reps", [((2, 3), (2, 1)), ((2, 3), (1, 3)), ((3,), (2, 2)), ((2, 1, 3), (1, 2, 2)),
                                        ((), (3,)), ((2,), (0,))])
def test_repeat_like_torch(shape, reps):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    against_torch(lambda t: t.repeat(*reps), lambda t: t.repeat(*reps), x)


def test_repeat_gradcheck_and_errors():
    gradcheck(lambda t: t.repeat(2, 3), np.random.default_rng(0).standard_normal((2, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        hepml.zeros(2, 3).repeat(2)


# -------------------------------------------------------------- cat/stack

@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cat_like_torch(dim):
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for k, s in enumerate(shapes):
        s[dim] = k + 1
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    against_torch(lambda *ts: hepml.cat(ts, dim), lambda *ts: torch.cat(ts, dim), *arrays)
    assert hepml.concat([hepml.tensor(a) for a in arrays], dim=dim).shape == hepml.cat(arrays, dim).shape


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack_like_torch(dim):
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(4)]
    against_torch(lambda *ts: hepml.stack(ts, dim), lambda *ts: torch.stack(ts, dim), *arrays)


def test_cat_stack_mixed_inputs_and_errors():
    a = hepml.tensor([[1.0, 2.0]], requires_grad=True)
    b = hepml.tensor([[3.0, 4.0]])  # no grad: only a gets one
    c = hepml.cat([a, b, np.array([[5.0, 6.0]])])
    assert c.tolist() == [[1, 2], [3, 4], [5, 6]]
    c.sum().backward()
    assert a.grad.tolist() == [[1, 1]] and b.grad is None
    assert hepml.cat([hepml.zeros(0), hepml.ones(2, 2)]).shape == (2, 2)  # legacy empty 1-d skipped
    m = hepml.cat([hepml.tensor(np.array([True])), hepml.tensor(np.array([False]))])
    assert m.dtype == np.bool_ and m.tolist() == [True, False]
    assert hepml.stack([hepml.tensor(1.0), hepml.tensor(2.0)]).tolist() == [1.0, 2.0]
    assert hepml.cat([hepml.zeros(2), hepml.tensor(np.array([1, 2]), dtype=hepml.int64)]).dtype == np.float32
    with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(2, 4\), which does not match"):
        hepml.cat([hepml.zeros(2, 3), hepml.zeros(2, 4)])
    with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(3, 2\)"):
        hepml.stack([hepml.zeros(2, 3), hepml.zeros(3, 2)])
    with pytest.raises(ValueError, match="non-empty"):
        hepml.cat([])
    with pytest.raises(IndexError, match="out of range"):
        hepml.cat([hepml.zeros(2, 3)], 2)
    with pytest.raises(TypeError, match="sequence of tensors"):
        hepml.cat(hepml.zeros(2))
    gradcheck(lambda x, y: hepml.cat([x, y * 2.0], 1), np.ones((2, 2)), np.ones((2, 3)))
    gradcheck(lambda x, y: hepml.stack([x, y], 1), np.ones((2, 2)), np.ones((2, 2)))


# --------------------------------------------------- split/chunk/unbind/narrow

@pytest.mark.parametrize("arg,dim", [(2, 0), (3, 1), ([1, 4], 1), ([0, 2, 3], 1), (5, 1), (1, -1)])
def test_split_like_torch(arg, dim):
    torch = torch_or_skip()
    x = np.random.default_rng(6).standard_normal((4, 5, 3)).astype(np.float32)
    hs, ts = hepml.tensor(x).split(arg, dim), torch.tensor(x).split(arg, dim)
    assert len(hs) == len(ts)
    for h, t in zip(hs, ts):
        np.testing.assert_array_equal(h.numpy(), t.numpy())
    against_torch(lambda t: hepml.split(t, arg, dim)[-1] * 2.0 + hepml.split(t, arg, dim)[0].sum(),
                  lambda t: torch.split(t, arg, dim)[-1] * 2.0 + torch.split(t, arg, dim)[0].sum(), x, rtol=1e-6)


@pytest.mark.parametrize("n,chunks", [(5, 3), (6, 4), (6, 3), (2, 5), (0, 3)])
def test_chunk_like_torch(n, chunks):
    torch = torch_or_skip()
    x = np.arange(2 * n, dtype=np.float32).reshape(2, n)
    hs, ts = hepml.tensor(x).chunk(chunks, 1), torch.tensor(x).chunk(chunks, 1)
    assert [h.tolist() for h in hs] == [t.tolist() for t in ts]


def test_unbind_narrow_select():
    torch = torch_or_skip()
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    for dim in (0, 1, -1):
        hs, ts = hepml.tensor(x).unbind(dim), torch.tensor(x).unbind(dim)
        assert [h.tolist() for h in hs] == [t.tolist() for t in ts]
    against_torch(lambda t: t.narrow(1, 1, 2), lambda t: t.narrow(1, 1, 2), x)
    against_torch(lambda t: t.narrow(0, -2, 2), lambda t: t.narrow(0, -2, 2), x)
    against_torch(lambda t: t.select(1, -1), lambda t: t.select(1, -1), x)
    gradcheck(lambda t: t.unbind(1)[2] * t.unbind(1)[0], x)
    with pytest.raises(IndexError, match="out of range for dimension 1 with size 4"):
        hepml.tensor(x).narrow(1, 3, 2)
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        hepml.tensor(x).select(1, 4)
    with pytest.raises(ValueError, match="add up to 4"):
        hepml.tensor(x).split([1, 2], 1)
    with pytest.raises(ValueError, match="positive"):
        hepml.tensor(x).split(0)


# ----------------------------------------------------------------- flip/roll

@pytest.mark.parametrize("dims", [0, (1,), (0, 2), (-1,), (0, 1, 2)])
def test_flip_like_torch(dims):
    torch = torch_or_skip()
    x = np.random.default_rng(8).standard_normal((3, 4, 5)).astype(np.float32)
    d = (dims,) if isinstance(dims, int) else dims
    against_torch(lambda t: t.flip(dims), lambda t: t.flip(d), x)
    np.testing.assert_array_equal(hepml.flip(hepml.tensor(x), dims).numpy(), np.flip(x, dims))


@pytest.mark.parametrize("shifts,dims", [(1, None), (-7, None), (2, 1), ((1, -2), (0, 2)), (5, -1), (0, 0)])
def test_roll_like_torch(shifts, dims):
    torch = torch_or_skip()
    x = np.random.default_rng(9).standard_normal((3, 4, 5)).astype(np.float32)
    against_torch(lambda t: t.roll(shifts, dims), lambda t: torch.roll(t, shifts, dims), x)
    gradcheck(lambda t: hepml.roll(t, shifts, dims) * hepml.tensor(np.arange(60.0).reshape(3, 4, 5)), x)


def test_large_copies_are_exact():
    # sizes over the parallel threshold of the copy kernels
    rng = np.random.default_rng(10)
    x = rng.standard_normal((64, 300, 17)).astype(np.float32)
    h = hepml.tensor(x)
    np.testing.assert_array_equal(h.permute(2, 0, 1).numpy(), np.transpose(x, (2, 0, 1)))
    np.testing.assert_array_equal(h.flip(1).numpy(), x[:, ::-1])
    np.testing.assert_array_equal(hepml.cat([h, h], 2).numpy(), np.concatenate([x, x], 2))
    np.testing.assert_array_equal(h[:, 3:250:3, 1].numpy(), x[:, 3:250:3, 1])
    np.testing.assert_array_equal(h.expand(2, 64, 300, 17).numpy()[1], x)


SHAPE_OPS = {
    "reshape": lambda t: t.reshape(4, -1),
    "view": lambda t: t.view(-1),
    "flatten": lambda t: t.flatten(1),
    "unflatten": lambda t: t.unflatten(1, (1, 3)),
    "unsqueeze": lambda t: t.unsqueeze(-1),
    "squeeze": lambda t: t.unsqueeze(0).squeeze(),
    "permute": lambda t: t.permute(2, 0, 1),
    "transpose": lambda t: t.transpose(0, 2),
    "T": lambda t: t.T,
    "mT": lambda t: t.mT,
    "movedim": lambda t: t.movedim(0, -1),
    "expand": lambda t: t[:, :1].expand(2, 3, 2),
    "repeat": lambda t: t.repeat(1, 2, 1),
    "cat": lambda t: hepml.cat([t, t * 2.0], 1),
    "stack": lambda t: hepml.stack([t, t * 2.0], 2),
    "split": lambda t: t.split(1, 1)[1],
    "chunk": lambda t: t.chunk(2, 2)[0],
    "unbind": lambda t: t.unbind(2)[1],
    "narrow": lambda t: t.narrow(1, 1, 2),
    "select": lambda t: t.select(0, 1),
    "flip": lambda t: t.flip(1, 2),
    "roll": lambda t: t.roll(1, 1),
}


@pytest.mark.parametrize("op", sorted(SHAPE_OPS))
def test_shape_op_gradcheck(op):
    x = np.random.default_rng(11).standard_normal((2, 3, 2))
    w = np.random.default_rng(12).standard_normal(SHAPE_OPS[op](hepml.tensor(x)).shape).astype(np.float32)
    gradcheck(lambda t: SHAPE_OPS[op](t) * hepml.tensor(w), x)
