"""Comparisons and truth values; every result is a bool tensor without gradient.

- ``eq ne lt le gt ge`` (and the operators ``== != < <= > >=``): operands are
  tensors, arrays or numbers, broadcast. They compare in float32, except two
  integer operands of which one is an int64 tensor, which compare exactly.
- ``logical_and/or/xor/not``: bool in, bool out; float and int64 inputs count
  as ``!= 0`` (so nan is True), as in torch.
- ``bitwise_and/or/xor/not`` (the operators ``& | ^ ~``): bool tensors only
  (torch also has integer bitwise ops; hepml has no use for them).
- ``isnan isinf isfinite``; ``any``/``all`` over everything or one ``dim``.
"""
from .. import _C
from ._register import tensor_methods
from .arith import _as_method

eq = _C.eq
ne = _C.ne
lt = _C.lt
le = _C.le
gt = _C.gt
ge = _C.ge
logical_and = _C.logical_and
logical_or = _C.logical_or
logical_xor = _C.logical_xor
logical_not = _C.logical_not
bitwise_and = _C.bitwise_and
bitwise_or = _C.bitwise_or
bitwise_xor = _C.bitwise_xor
bitwise_not = _C.bitwise_not
isnan = _C.isnan
isinf = _C.isinf
isfinite = _C.isfinite


def any(input, dim=None, keepdim=False):  # noqa: A001 (torch's name)
    """True if any element (along ``dim``, or of the whole tensor) is True / != 0."""
    return _C.any(input, dim, keepdim)


def all(input, dim=None, keepdim=False):  # noqa: A001 (torch's name)
    """True if every element (along ``dim``, or of the whole tensor) is True / != 0."""
    return _C.all(input, dim, keepdim)


__all__ = ["eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "logical_not",
           "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "isnan", "isinf", "isfinite", "any", "all"]

tensor_methods(**{name: _as_method(globals()[name], name) for name in __all__})
