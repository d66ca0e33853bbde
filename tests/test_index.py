"""Indexing: t[key] against NumPy and torch (values and gradients), t[key] = v,
gather, index_select, masked_fill, nonzero; out-of-range and malformed
indices raise IndexError naming the dim and its size, never crash."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hepml
from helpers import assert_close, gradcheck, torch_or_skip

X = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
MASK2 = (X[:, :, 0] % 3) == 1          # shape (4, 5): a mask over the leading dims
MASK1 = np.array([True, False, True, True])

# Keys where hepml, NumPy and torch agree. Each entry is built fresh so that
# index arrays can be given as lists, NumPy arrays or hepml tensors.
KEYS = {
    "int": lambda: 2,
    "neg_int": lambda: -1,
    "ints": lambda: (1, -2, 3),
    "slice": lambda: slice(1, 3),
    "slice_step": lambda: (slice(None), slice(None, None, 2)),
    "slice_neg_start": lambda: (slice(-3, None), 1),
    "slice_out_of_range_clips": lambda: slice(2, 100),
    "empty_slice": lambda: (slice(3, 1), slice(None)),
    "W[:, :, 0:2]": lambda: (slice(None), slice(None), slice(0, 2)),
    "none": lambda: (None, 1),
    "none_middle": lambda: (slice(None), None, slice(None), None),
    "ellipsis": lambda: (Ellipsis, 0),
    "ellipsis_middle": lambda: (1, Ellipsis, slice(1, 3)),
    "ellipsis_none": lambda: (None, Ellipsis, None),
    "list": lambda: [0, 2, 3],
    "list_repeats": lambda: [1, 1, -1, 0],
    "array_2d": lambda: np.array([[0, 1], [3, 2]]),
    "tensor_index": lambda: hepml.tensor(np.array([3, 0]), dtype=hepml.int64),
    "array_dim1": lambda: (slice(None), [4, 0, -2]),
    "array_last": lambda: (Ellipsis, [5, 0]),
    "two_arrays": lambda: ([0, 1, 3], [4, 4, 0]),
    "two_arrays_broadcast": lambda: (np.array([[0], [3]]), slice(None), np.array([1, 2, 5])),
    "adjacent_arrays": lambda: (slice(None), [0, 1], [2, 3]),
    "array_and_int": lambda: ([0, 2], 1),
    "array_int_array": lambda: ([0, 2], 1, [3, 4]),
    "mask_leading": lambda: MASK2,
    "mask_dim0": lambda: MASK1,
    "mask_then_int": lambda: (MASK2, 1),
    "mask_then_slice": lambda: (MASK2, slice(1, 4)),
    "int_then_mask": lambda: (1, MASK2[0]),
    "full_mask": lambda: (X % 7) == 0,
    "not_mask": lambda: ~MASK2,
    "mask_tensor": lambda: hepml.tensor(MASK1),
    "zero_d_int_tensor": lambda: hepml.tensor(np.array(2), dtype=hepml.int64),
    "empty_list": lambda: [],
    "all_false_mask": lambda: np.zeros(4, bool),
}


def to_numpy_key(key):
    if isinstance(key, tuple):
        return tuple(to_numpy_key(k) for k in key)
    if isinstance(key, hepml.Tensor):
        return key.numpy()
    if isinstance(key, list):
        return np.array(key, dtype=np.int64)
    return key


def to_torch_key(torch, key):
    if isinstance(key, tuple):
        return tuple(to_torch_key(torch, k) for k in key)
    if isinstance(key, (hepml.Tensor, np.ndarray, list)):
        a = np.asarray(key.numpy() if isinstance(key, hepml.Tensor) else key)
        return torch.tensor(a.astype(np.int64) if a.dtype != np.bool_ else a)
    return key


@pytest.mark.parametrize("name", sorted(KEYS))
def test_getitem_matches_numpy(name):
    key = KEYS[name]()
    got = hepml.tensor(X)[key]
    want = X[to_numpy_key(key)]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_getitem_gradient_matches_torch(name):
    torch = torch_or_skip()
    key = KEYS[name]()
    hx = hepml.tensor(X, requires_grad=True)
    tx = torch.tensor(X, requires_grad=True)
    ho, to = hx[key], tx[to_torch_key(torch, key)]
    assert ho.shape == tuple(to.shape)
    np.testing.assert_array_equal(ho.numpy(), to.detach().numpy())
    g = np.random.default_rng(0).standard_normal(ho.shape).astype(np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)  # repeated indices accumulate


def test_torch_semantics_where_numpy_differs():
    torch = torch_or_skip()
    # torch selects with the int first, then indexes: (6, 2); NumPy gives (2, 6)
    h = hepml.tensor(X)[1, :, [0, 1]]
    t = torch.tensor(X)[1, :, [0, 1]]
    assert h.shape == tuple(t.shape) == (5, 2)
    np.testing.assert_array_equal(h.numpy(), t.numpy())
    # separated index arrays move to the front, as both do
    assert hepml.tensor(X)[[0, 1], :, [1, 2]].shape == (2, 5)


def test_negative_steps_like_numpy():
    x = hepml.tensor(X, requires_grad=True)
    for key in [slice(None, None, -1), (slice(None), slice(4, 0, -2)), (Ellipsis, slice(None, None, -3)),
                (slice(-1, -5, -1), 2, slice(None, None, -1))]:
        np.testing.assert_array_equal(x[key].numpy(), X[key])
    y = x[:, ::-2, 1]
    y.backward(gradient=np.ones(y.shape, np.float32))
    expect = np.zeros_like(X)
    expect[:, ::-2, 1] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expect)


def test_getitem_gradcheck():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2))
    gradcheck(lambda t: t[1:, ::-1, 0], x)
    gradcheck(lambda t: t[[0, 0, 2], 1:3], x)  # repeated index: gradients add
    gradcheck(lambda t: t[x[:, :, 0] > 0], x)
    gradcheck(lambda t: t[..., None, 1] * t[:, [1, 3], 0].sum(), x)


def test_getitem_results_are_copies_and_keep_dtype():
    x = hepml.tensor(X)
    y = x[1:3]
    y.numpy()[...] = -1
    assert x.numpy().min() == 0
    m = hepml.tensor(MASK2)
    assert m[1:].dtype == np.bool_ and m[MASK2].all().item()
    i = hepml.tensor(np.arange(5), dtype=hepml.int64)
    assert i[[4, 0]].dtype == np.int64 and i[[4, 0]].tolist() == [4, 0]
    assert x[1, 2, 3].shape == () and x[1, 2, 3].item() == X[1, 2, 3]
    assert [row.tolist() for row in hepml.tensor([[1.0, 2.0], [3.0, 4.0]])] == [[1, 2], [3, 4]]  # iteration


def test_out_of_range_indices_raise_index_error():
    x = hepml.tensor(X)
    cases = [
        (4, r"index 4 is out of bounds for dimension 0 with size 4"),
        ((0, -6), r"index -6 is out of bounds for dimension 1 with size 5"),
        ((slice(None), slice(None), 6), r"index 6 is out of bounds for dimension 2 with size 6"),
        ([0, 4], r"index 4 is out of bounds for dimension 0 with size 4"),
        ((Ellipsis, [-7]), r"index -7 is out of bounds for dimension 2 with size 6"),
        ((MASK2, 9), r"index 9 is out of bounds for dimension 2 with size 6"),
        (hepml.tensor(np.array([10]), dtype=hepml.int64), "dimension 0 with size 4"),
        ((0, 0, 0, 0), r"too many indices for tensor of dimension 3"),
        ((Ellipsis, 0, Ellipsis), "single ellipsis"),
        (np.ones(5, bool), r"the shape of the mask \(5,\) at index 0 does not match .* \(4, 5, 6\) at index 0"),
        ((slice(None), np.ones((5, 5), bool)), r"mask \(5, 5\) at index 1 does not match .* at index 2"),
        (hepml.tensor([0.0, 1.0]), "must be int64 or bool"),
        (np.array([0.5]), "integer or boolean"),
        (([0, 1], [0, 1, 2]), r"could not be broadcast together with shapes \(2,\) \(3,\)"),
        (True, "boolean scalar"),
    ]
    for key, msg in cases:
        with pytest.raises(IndexError, match=msg):
            x[key]
    with pytest.raises(TypeError, match="valid indices"):
        x["a"]
    with pytest.raises(TypeError, match="valid indices"):
        x[1.5]
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        x[::0]
    with pytest.raises(IndexError):
        hepml.tensor(3.0)[0]


# ----------------------------------------------------------------- setitem

def test_setitem_like_numpy():
    rng = np.random.default_rng(2)
    cases = [
        (1, 7.0),
        ((slice(None), 2), rng.standard_normal(6).astype(np.float32)),
        ((Ellipsis, slice(None, None, -2)), rng.standard_normal((5, 3)).astype(np.float32)),
        (MASK2, -1.0),
        (MASK2, rng.standard_normal((int(MASK2.sum()), 6)).astype(np.float32)),
        (([0, 1], [2, 3]), rng.standard_normal((2, 6)).astype(np.float32)),
        ((X % 5) == 0, 0.5),
        ((slice(None), None, 0), rng.standard_normal((1, 6)).astype(np.float32)),
    ]
    for key, value in cases:
        ref = X.copy()
        ref[to_numpy_key(key)] = value
        h = hepml.tensor(X)
        v0 = h._version
        h[key] = hepml.tensor(value) if isinstance(value, np.ndarray) else value
        np.testing.assert_array_equal(h.numpy(), ref)
        assert h._version == v0 + 1


def test_setitem_on_masks_and_indices():
    m = hepml.tensor(np.zeros(5, bool))
    m[[1, 3]] = True
    assert m.tolist() == [False, True, False, True, False]
    i = hepml.tensor(np.zeros((2, 3)), dtype=hepml.int64)
    i[1] = hepml.tensor(np.array([4, 5, 6]), dtype=hepml.int64)
    i[0, -1] = 9
    assert i.tolist() == [[0, 0, 9], [4, 5, 6]]


def test_setitem_refuses_tensors_that_require_grad():
    w = hepml.tensor(X, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place operation on a tensor that requires grad"):
        w[0] = 0.0
    with hepml.no_grad():
        w[0] = 0.0
    assert w.numpy()[0].max() == 0.0
    y = hepml.zeros(3)
    with pytest.raises(RuntimeError, match="value requires grad"):
        y[0] = hepml.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match=r"shape \(3,\) cannot be broadcast to the indexed shape \(5, 6\)"):
        hepml.tensor(X)[0] = np.ones(3)
    with pytest.raises(IndexError, match="dimension 0 with size 3"):
        y[3] = 1.0
    # a tensor modified after it was saved for backward is detected
    a = hepml.tensor([1.0, 2.0], requires_grad=True)
    b = hepml.tensor([3.0, 4.0])
    c = (a * b).sum()
    b[0] = 10.0
    with pytest.raises(RuntimeError, match="modified in place"):
        c.backward()


# ----------------------------------------------------- gather, index_select

@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_gather_like_torch(dim):
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    ishape = [3, 4, 5]
    ishape[dim] = 7
    idx = rng.integers(0, x.shape[dim], ishape)
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ho = hepml.gather(hx, dim, hepml.tensor(idx, dtype=hepml.int64))
    to = torch.gather(tx, dim, torch.tensor(idx))
    np.testing.assert_array_equal(ho.numpy(), to.detach().numpy())
    g = rng.standard_normal(ishape).astype(np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert hx.gather(dim, idx).shape == tuple(ishape)  # numpy index arrays work too


def test_gather_gradcheck_and_errors():
    x = np.random.default_rng(4).standard_normal((3, 4))
    gradcheck(lambda t: hepml.gather(t, 1, np.array([[0, 0], [3, 1], [2, 2]])), x)
    h = hepml.tensor(x)
    with pytest.raises(IndexError, match="gather\\(\\): index 4 is out of bounds for dimension 1 with size 4"):
        h.gather(1, np.array([[4]]))
    with pytest.raises(IndexError, match="index -1 is out of bounds"):
        h.gather(0, np.array([[-1]]))
    with pytest.raises(ValueError, match=r"index has shape \(2,\) but needs 2 dims"):
        h.gather(0, np.array([0, 1]))
    with pytest.raises(ValueError, match="no larger than"):
        h.gather(0, np.zeros((2, 5), np.int64))
    with pytest.raises(TypeError, match="int64 tensor"):
        h.gather(0, hepml.zeros(1, 1))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select_like_torch(dim):
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    idx = np.array([1, 0, 3, 3])
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ho, to = hx.index_select(dim, idx), torch.index_select(tx, dim, torch.tensor(idx))
    np.testing.assert_array_equal(ho.numpy(), to.detach().numpy())
    g = rng.standard_normal(ho.shape).astype(np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(hx.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(IndexError, match="index 9 is out of range for dimension"):
        hx.index_select(dim, [9])
    gradcheck(lambda t: hepml.index_select(t, dim, idx), x[:2, :4, :4] if dim else x[:, :2, :2])


# ------------------------------------------------------------- masked_fill

@pytest.mark.parametrize("mshape", [(4, 5, 6), (5, 6), (5, 1), (1, 6), (6,), (4, 1, 1), ()])
def test_masked_fill_like_torch(mshape):
    torch = torch_or_skip()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    mask = rng.random(mshape) > 0.5
    hx, tx = hepml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ho = hx.masked_fill(hepml.tensor(mask), -np.inf)
    to = tx.masked_fill(torch.tensor(mask), -np.inf)
    np.testing.assert_array_equal(ho.numpy(), to.detach().numpy())
    g = rng.standard_normal(x.shape).astype(np.float32)
    ho.backward(gradient=g)
    to.backward(torch.tensor(g))
    assert_close(hx.grad, tx.grad.numpy(), rtol=0, atol=0)


def test_masked_fill_inplace_select_nonzero():
    torch = torch_or_skip()
    x = hepml.tensor([[1.0, 2.0], [3.0, 4.0]])
    m = hepml.tensor(np.array([[True, False], [False, True]]))
    assert x.masked_fill_(m, 0.0) is x and x.tolist() == [[0, 2], [3, 0]] and x._version == 1
    with pytest.raises(RuntimeError, match="requires grad"):
        hepml.zeros(2, 2, requires_grad=True).masked_fill_(m, 1.0)
    with pytest.raises(ValueError, match=r"mask of shape \(3,\) cannot be broadcast to the input's shape \(2, 2\)"):
        x.masked_fill(np.ones(3, bool), 1.0)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        x.masked_fill(hepml.ones(2, 2), 1.0)
    assert x.masked_fill(m, hepml.tensor(7.0)).tolist() == [[7, 2], [3, 7]]
    gradcheck(lambda t: t.masked_fill(np.array([True, False, True]), 2.0) * t, np.ones((2, 3)))
    y = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]], np.float32)
    assert hepml.nonzero(hepml.tensor(y)).tolist() == torch.nonzero(torch.tensor(y)).tolist()
    rows, cols = hepml.tensor(y).nonzero(as_tuple=True)
    assert rows.tolist() == [0, 1, 1] and cols.tolist() == [1, 0, 2]
    assert hepml.tensor(y).masked_select(y > 0.0).tolist() == [1.5, 2.0]
    assert hepml.tensor(y).masked_select(np.array([True, False, True])).tolist() == [0.0, 0.0, 2.0, -1.0]


# ------------------------------------------------- property-based: basic keys

@st.composite
def basic_keys(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    items, d = [], 0
    n_items = draw(st.integers(0, ndim))
    for _ in range(n_items):
        kind = draw(st.sampled_from(["int", "slice", "none", "array"]))
        if kind == "none":
            items.append(None)
            continue
        size = shape[d]
        if kind == "int" and size > 0:
            items.append(draw(st.integers(-size, size - 1)))
        elif kind == "array" and size > 0:
            items.append(np.array(draw(st.lists(st.integers(-size, size - 1), min_size=0, max_size=4)), np.int64))
        else:
            start = draw(st.one_of(st.none(), st.integers(-7, 7)))
            stop = draw(st.one_of(st.none(), st.integers(-7, 7)))
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0)))
            items.append(slice(start, stop, step))
        d += 1
    if draw(st.booleans()) and d < ndim:
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    return shape, tuple(items)


@settings(max_examples=300, deadline=None)
@given(basic_keys())
def test_random_keys_match_numpy(case):
    shape, key = case
    if sum(isinstance(k, np.ndarray) for k in key) > 1:
        return  # several index arrays must broadcast: covered by the fixed cases
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    arrays = [k for k in key if isinstance(k, np.ndarray)]
    ints_before_array = arrays and any(isinstance(k, int) for k in key)
    try:
        want = x[key]
    except IndexError:
        # out of range (the Ellipsis moved an int onto a smaller dim): hepml must say so too
        with pytest.raises(IndexError, match="out of bounds for dimension"):
            hepml.tensor(x)[key]
        return
    got = hepml.tensor(x)[key]
    if ints_before_array:
        # torch drops int dims before advanced indexing: compare shapes through torch's rule
        assert got.size() == tuple(np.asarray(got.numpy()).shape)
        assert int(np.prod(got.shape)) == want.size
        np.testing.assert_array_equal(np.sort(got.numpy(), axis=None), np.sort(want, axis=None))
    else:
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
    # the gradient scatters back exactly the selected positions
    h = hepml.tensor(x, requires_grad=True)
    y = h[key]
    y.backward(gradient=np.ones(y.shape, np.float32))
    counts = np.zeros(shape)
    flat = np.arange(x.size).reshape(shape)[key]
    np.add.at(counts.reshape(-1), flat.reshape(-1), 1)
    np.testing.assert_array_equal(h.grad.numpy(), counts)


def test_inverted_mask_tensor():
    if not hasattr(hepml._C, "bitwise_not"):
        pytest.skip("~ on masks is provided by the elementwise family")
    m = hepml.tensor(MASK2)
    np.testing.assert_array_equal(hepml.tensor(X)[~m].numpy(), X[~MASK2])
    x = hepml.tensor(X, requires_grad=True)
    x[~m, 1].sum().backward()
    expect = np.zeros_like(X)
    expect[~MASK2, 1] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expect)
