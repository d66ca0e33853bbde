"""hepml.Tensor: the Python face of the C tensor.

Storage is a contiguous NumPy array (float32, or bool/int64 for masks and
indices): ``t.numpy()`` and ``np.asarray(t)`` share memory with the tensor.
Every method calls into hepml._C; nothing numeric happens in Python.

Differences from torch on purpose:
- tensors are always contiguous; transpose/permute/slicing return copies, so a
  slice never aliases its parent;
- ``numpy()`` also works on tensors that require grad (it is a view of the
  values; gradients do not flow through NumPy);
- arithmetic on bool/int64 tensors promotes to float32.
"""
import numpy as np

from . import _C


class Tensor(_C.TensorBase):
    # numpy defers to our reflected operators (np_array * tensor -> Tensor)
    __array_ufunc__ = None
    __hash__ = object.__hash__

    def __repr__(self):
        arr = self.numpy()
        body = np.array2string(arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3,
                               formatter={"float_kind": _fmt_float(arr)} if arr.dtype == np.float32 else None)
        extras = []
        if self.dtype != np.float32:
            extras.append(f"dtype=hepml.{self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.ndim

    @property
    def data(self):
        """The values without history (shares storage), as in torch."""
        return self.detach()

    def tolist(self):
        return self.numpy().tolist()

    def float(self):
        return self if self.dtype == np.float32 else tensor(self.numpy(), dtype=np.float32)

    def long(self):
        return self if self.dtype == np.int64 else tensor(self.numpy(), dtype=np.int64)

    def bool(self):
        return self if self.dtype == np.bool_ else tensor(self.numpy(), dtype=np.bool_)

    def to(self, dtype):
        dtype = np.dtype(dtype)
        return {np.dtype(np.float32): self.float, np.dtype(np.int64): self.long,
                np.dtype(np.bool_): self.bool}[dtype]()

    def cpu(self):
        return self

    def clone(self):
        """A copy of the values that keeps the graph (gradients flow back)."""
        return _C.add(self, 0.0) if self.requires_grad else tensor(self.numpy())

    def zero_(self):
        return _C.fill_(self, 0.0)

    def fill_(self, value):
        return _C.fill_(self, float(value))

    def uniform_(self, a=0.0, b=1.0):
        return _C.uniform_(self, float(a), float(b))

    def normal_(self, mean=0.0, std=1.0):
        return _C.normal_(self, float(mean), float(std))

    def copy_(self, src):
        return _C.copy_(self, src)

    # arithmetic: the C ops convert numbers and arrays themselves
    def __add__(self, other): return _C.add(self, other)
    def __radd__(self, other): return _C.add(other, self)
    def __sub__(self, other): return _C.sub(self, other)
    def __rsub__(self, other): return _C.sub(other, self)
    def __mul__(self, other): return _C.mul(self, other)
    def __rmul__(self, other): return _C.mul(other, self)
    def __truediv__(self, other): return _C.div(self, other)
    def __rtruediv__(self, other): return _C.div(other, self)

    # elementwise operators (hepml/ops/unary.py, arith.py, compare.py). As in
    # torch, comparisons return bool tensors; == / != against something that
    # is not a tensor, array or number (None, a string) is False / True.
    # & | ^ ~ are for bool masks only.
    def __neg__(self): return _C.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _C.abs(self)
    def __pow__(self, other): return _C.pow(self, other)
    def __rpow__(self, other): return _C.pow(other, self)
    def __mod__(self, other): return _C.remainder(self, other)
    def __lt__(self, other): return _C.lt(self, other)
    def __le__(self, other): return _C.le(self, other)
    def __gt__(self, other): return _C.gt(self, other)
    def __ge__(self, other): return _C.ge(self, other)

    def __eq__(self, other):
        try:
            return _C.eq(self, other)
        except TypeError:
            return NotImplemented

    def __ne__(self, other):
        try:
            return _C.ne(self, other)
        except TypeError:
            return NotImplemented

    def __and__(self, other): return _C.bitwise_and(self, other)
    def __or__(self, other): return _C.bitwise_or(self, other)
    def __xor__(self, other): return _C.bitwise_xor(self, other)
    def __invert__(self): return _C.bitwise_not(self)

    # indexing and transposes (hepml/ops/index.py, hepml/ops/shape.py). t[key]
    # follows torch: ints, slices (negative steps too), None, ..., int64 index
    # tensors/arrays and bool masks; the result is a copy. t[key] = value
    # writes in place (refused on tensors that require grad, outside no_grad).
    def __getitem__(self, key):
        return _C.index(self, key)

    def __setitem__(self, key, value):
        _C.index_put_(self, key, value)

    @property
    def T(self):
        """The dims in reverse order (a copy): the transpose of a matrix."""
        return _C.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self):
        """The last two dims swapped (a copy): a batch of matrix transposes."""
        return _C.transpose(self, -2, -1)


def _fmt_float(arr):
    finite = arr[np.isfinite(arr)] if arr.size else arr
    if finite.size and (np.abs(finite).max() >= 1e5 or (np.abs(finite[finite != 0]).min(initial=1) < 1e-4)):
        return lambda x: f"{x:.4e}"
    if finite.size and np.all(finite == np.round(finite)):
        return lambda x: f"{x:.0f}." if np.isfinite(x) else str(x)
    return lambda x: f"{x:.4f}"


_C._set_tensor_class(Tensor)


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (lists, NumPy arrays of any real
    dtype -> float32; bool arrays stay bool, for masks)."""
    return _C.tensor(data, dtype, requires_grad)


def from_numpy(array):
    """A tensor sharing ``array``'s memory when it is contiguous float32/bool/int64; a copy otherwise."""
    return _C.from_numpy(array)
