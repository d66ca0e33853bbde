"""Sorting and order statistics: ``hepml.sort``, ``argsort``, ``quantile``,
``nanquantile``, ``median``, ``nanmedian`` and the Tensor methods of the same
names. The work is done by csrc/kernels/sort.c (a stable radix sort per row,
rows in parallel; results do not depend on the thread count).

Semantics follow torch:

- ``sort(input, dim=-1, descending=False, stable=False)`` returns a named pair
  ``(values, indices)`` (int64 indices along ``dim``). The sort is always
  stable (equal values keep their input order, also when descending), so
  ``stable=True`` and ``stable=False`` give the same result; torch's unstable
  sort may order ties differently. NaN sorts above +inf: last in ascending,
  first in descending order. -0.0 and 0.0 are equal. float32 and int64 inputs
  (bool is sorted as float32). The gradient of the values is scattered back
  through the indices.
- ``quantile(input, q, dim=None, keepdim=False, interpolation='linear')``:
  ``q`` a number in [0, 1] or a 1-D tensor/sequence of them; with a 1-D ``q``
  the result has the q dimension first. ``dim=None`` uses the flattened input.
  ``interpolation`` is 'linear', 'lower', 'higher', 'midpoint' or 'nearest'
  (round half to even), with the rank ``q * (n - 1)`` computed in float32 as
  torch does. Any NaN in a row makes its quantiles NaN; ``nanquantile``
  ignores NaNs (NaN only for an all-NaN row). The gradient goes to the two
  neighbouring order statistics with the interpolation weights.
- ``median(input)`` is the **lower** of the two middle values when the count is
  even (torch's convention: an element of the input, rank ``(n - 1) // 2``),
  *not* NumPy's average of the two; for NumPy's median use
  ``quantile(input, 0.5)`` (or ``interpolation='midpoint'``). Without ``dim`` it
  returns a 0-d tensor (NaN for an empty input, and if any entry is NaN);
  with ``dim`` a named pair ``(values, indices)``. ``nanmedian`` ignores NaNs.
  The gradient goes to the selected element (torch splits the gradient of
  ``median()`` without dim evenly among entries equal to the median; the two
  agree whenever the values are distinct).

Differences from torch: quantile/median convert int64 and bool input to
float32 (torch requires a floating input for quantile); rows are limited to
2**31 - 1 elements.
"""
from collections import namedtuple

from .. import _C
from ._register import tensor_methods

__all__ = ["sort", "argsort", "quantile", "nanquantile", "median", "nanmedian"]

# torch.return_types.sort / median: a named (values, indices) pair
sort_result = namedtuple("sort", ["values", "indices"])
median_result = namedtuple("median", ["values", "indices"])
nanmedian_result = namedtuple("nanmedian", ["values", "indices"])


def sort(input, dim=-1, descending=False, stable=False):
    """``(values, indices)`` of ``input`` sorted along ``dim`` (stable; NaN last)."""
    return sort_result(*_C.sort(input, dim, bool(descending), bool(stable)))


def argsort(input, dim=-1, descending=False, stable=False):
    """The int64 indices that sort ``input`` along ``dim`` (stable)."""
    return _C.argsort(input, dim, bool(descending), bool(stable))


def quantile(input, q, dim=None, keepdim=False, interpolation="linear"):
    """The ``q``-th quantiles of ``input`` along ``dim`` (flattened when None);
    a 1-D ``q`` puts the q dimension first. NaN in a row gives NaN."""
    return _C.quantile(input, q, dim, bool(keepdim), interpolation)


def nanquantile(input, q, dim=None, keepdim=False, interpolation="linear"):
    """``quantile`` ignoring NaN entries."""
    return _C.nanquantile(input, q, dim, bool(keepdim), interpolation)


def median(input, dim=None, keepdim=False):
    """torch's median: the LOWER middle value for even counts (not NumPy's
    average; use ``quantile(x, 0.5)`` for that). With ``dim``:
    ``(values, indices)``."""
    if dim is None:
        return _C.median(input, None, False)
    return median_result(*_C.median(input, dim, bool(keepdim)))


def nanmedian(input, dim=None, keepdim=False):
    """``median`` of the non-NaN entries (lower middle value)."""
    if dim is None:
        return _C.nanmedian(input, None, False)
    return nanmedian_result(*_C.nanmedian(input, dim, bool(keepdim)))


tensor_methods(sort=sort, argsort=argsort, quantile=quantile, nanquantile=nanquantile, median=median,
               nanmedian=nanmedian)
