"""Indexing ops: gather, index_select, masked_fill, nonzero (``t[key]`` and
``t[key] = value`` are Tensor.__getitem__/__setitem__, in hepml/_tensor.py).

The index positions are worked out in C (csrc/python/ops_index.c) and the
data moved by the gather / scatter kernels of csrc/kernels/shape.c; gradients
are scatter-adds (repeated indices accumulate, in a fixed order).

Differences from torch:
- results of indexing are copies (torch returns views for basic slicing);
- ``t[key] = value`` is refused on a tensor that requires grad while grad
  mode is on (torch records it in the graph); use ``with hepml.no_grad():``
  for parameter surgery, or build the tensor out of place (cat, masked_fill);
- masked_fill's value is a number (a 0-d tensor is read as a number and gets
  no gradient).
"""
from .. import _C
from ._register import tensor_methods


def gather(input, dim, index):
    """``out[i][j] = input[index[i][j]][j]`` for dim 0 (and likewise for any
    dim), as torch.gather: ``index`` is int64 with the input's number of dims,
    no larger than the input except along ``dim``."""
    return _C.gather(input, dim, index)


def index_select(input, dim, index):
    """The entries at the 1-d int64 ``index`` positions along ``dim``."""
    return _C.index_select(input, dim, index)


def masked_fill(input, mask, value):
    """``value`` where the bool ``mask`` (broadcast to the input's shape) is
    True, the input elsewhere; the gradient is zero where filled."""
    return _C.masked_fill(input, mask, value)


def masked_select(input, mask):
    """The entries where ``mask`` is True, as a 1-d tensor (``input[mask]``
    for a mask of the input's shape; masks are broadcast first)."""
    if tuple(mask.shape) != tuple(input.shape):
        shape = tuple(input.shape)
        input = _C.expand(input, _broadcast_shape(shape, tuple(mask.shape)))
        mask = _C.expand(mask, tuple(input.shape))
    return _C.index(_C.reshape(input, (-1,)), _C.reshape(mask, (-1,)))


def _broadcast_shape(a, b):
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise ValueError(f"masked_select(): mask shape {b} cannot be broadcast with input shape {a}")
        out.append(max(x, y))
    return tuple(out)


def nonzero(input, *, as_tuple=False):
    """Positions of the non-zero (True) entries: int64 [n, ndim], or with
    ``as_tuple=True`` one 1-d tensor per dim (usable as an index)."""
    nz = _C.nonzero(input)
    if not as_tuple:
        return nz
    return tuple(_C.select(nz, 1, k) for k in range(nz.shape[1]))


def argwhere(input):
    """``nonzero(input)``: int64 [n, ndim]."""
    return _C.nonzero(input)


def _masked_fill_(self, mask, value):
    """In place: ``value`` where ``mask`` is True (refused on tensors that
    require grad, outside no_grad). Returns self."""
    return _C.masked_fill_(self, mask, value)


__all__ = ["gather", "index_select", "masked_fill", "masked_select", "nonzero", "argwhere"]

tensor_methods(gather=gather, index_select=index_select, masked_fill=masked_fill, masked_fill_=_masked_fill_,
               masked_select=masked_select, nonzero=nonzero, argwhere=argwhere)
