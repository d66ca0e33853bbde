"""Reductions, scans and softmax: ``hepml.sum(x, dim)`` and ``x.sum(dim)``.

Semantics follow torch: ``dim`` is None (every dim), an int, or a tuple of
ints (an empty tuple also means every dim); ``keepdim=True`` keeps reduced dims
with size 1. The kernels (csrc/kernels/reduce.c) accumulate in double in a
fixed order, so results do not depend on the number of threads.

Where hepml differs from torch, on purpose or for simplicity:

- ``sum`` of bool or int64 tensors returns int64 (as torch: ``mask.sum()``
  counts); every other reduction converts bool/int64 input to float32 first
  (``mean`` of an int tensor is an error in torch, a float32 mean here;
  ``max``/``amax`` of an int64 tensor is float32 here).
- ``max(x)`` / ``min(x)`` without dim split the gradient evenly among tied
  maxima (as torch, and as ``amax``); ``max(x, dim)`` returns
  ``(values, indices)`` and sends the gradient to the first maximal position.
  NaN counts as the maximum (and minimum): it propagates, as in torch.
- max/min/amax/amin/argmax/argmin over zero elements raise IndexError
  (torch: RuntimeError); ``sum`` of nothing is 0 and ``mean`` of nothing nan.
- ``norm`` is the vector p-norm over ``dim`` for finite p > 0 ("fro" = 2);
  ``p=inf`` and matrix norms are not provided (use ``x.abs().amax(dim)``).
"""
from collections import namedtuple

import numpy as np

from .. import _C
from ._register import tensor_methods

# torch.return_types.max / min: a named (values, indices) pair
max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])


def sum(input, dim=None, keepdim=False):  # noqa: A001 (torch's name)
    """Sum over ``dim`` (all dims when None). bool/int64 input gives int64."""
    return _C.sum(input, dim, keepdim)


def mean(input, dim=None, keepdim=False):
    """Mean over ``dim``; nan when the reduced dims hold no elements."""
    return _C.mean(input, dim, keepdim)


def nansum(input, dim=None, keepdim=False):
    """Sum treating NaN as zero (its gradient is 0 at NaN entries)."""
    return _C.nansum(input, dim, keepdim)


def nanmean(input, dim=None, keepdim=False):
    """Mean of the non-NaN entries (nan where there are none)."""
    return _C.nanmean(input, dim, keepdim)


def prod(input, dim=None, keepdim=False):
    """Product over ``dim`` (the gradient is exact with zeros present)."""
    return _C.prod(input, dim, keepdim)


def max(input, dim=None, keepdim=False):  # noqa: A001 (torch's name)
    """Without ``dim``: the largest element (a 0-d tensor). With an int ``dim``:
    ``(values, indices)`` of the maxima along it (first position on ties).
    ``max(a, b)`` with a tensor ``b`` is the elementwise maximum."""
    if dim is None:
        return _C.max(input, None, keepdim)
    if isinstance(dim, (_C.TensorBase, np.ndarray)):
        return _C.maximum(input, dim)  # torch.max(a, b): the elementwise maximum
    return max_result(*_C.max(input, dim, keepdim))


def min(input, dim=None, keepdim=False):  # noqa: A001 (torch's name)
    """Without ``dim``: the smallest element. With an int ``dim``:
    ``(values, indices)`` of the minima along it (first position on ties)."""
    if dim is None:
        return _C.min(input, None, keepdim)
    if isinstance(dim, (_C.TensorBase, np.ndarray)):
        return _C.minimum(input, dim)  # torch.min(a, b): the elementwise minimum
    return min_result(*_C.min(input, dim, keepdim))


def amax(input, dim=None, keepdim=False):
    """Maximum over ``dim`` (int or tuple); tied maxima share the gradient."""
    return _C.amax(input, dim, keepdim)


def amin(input, dim=None, keepdim=False):
    """Minimum over ``dim`` (int or tuple); tied minima share the gradient."""
    return _C.amin(input, dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    """int64 position of the first maximum along ``dim`` (of the flattened
    tensor when None). No gradient."""
    return _C.argmax(input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """int64 position of the first minimum along ``dim`` (flattened when None)."""
    return _C.argmin(input, dim, keepdim)


def _correction(unbiased, correction):
    if unbiased is not None and correction is not None:
        raise TypeError("var()/std(): pass either unbiased or correction, not both")
    if correction is not None:
        return float(correction)
    return 0.0 if unbiased is False else 1.0


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with ``correction`` (default 1: divide by N - 1;
    ``unbiased=False`` is correction 0), as torch."""
    return _C.var(input, dim, _correction(unbiased, correction), keepdim, False)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over ``dim`` (see ``var``). Where it is 0 the
    gradient is 0, as in torch."""
    return _C.var(input, dim, _correction(unbiased, correction), keepdim, True)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var, mean)`` over ``dim``."""
    return var(input, dim, unbiased, keepdim, correction=correction), _C.mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std, mean)`` over ``dim``."""
    return std(input, dim, unbiased, keepdim, correction=correction), _C.mean(input, dim, keepdim)


def logsumexp(input, dim=None, keepdim=False):
    """log(sum(exp(input))) over ``dim``, computed with the max subtracted so it
    neither overflows nor underflows; -inf for all -inf entries."""
    return _C.logsumexp(input, dim, keepdim)


def norm(input, p="fro", dim=None, keepdim=False):
    """Vector p-norm (sum |x|^p)^(1/p) over ``dim`` (all when None); p = "fro"
    or 2 (default), 1, or any finite p > 0. Gradient 0 where the norm is 0."""
    if p == "fro" or p is None:
        p = 2.0
    if isinstance(p, str):
        raise ValueError(f"norm(): p={p!r} is not supported; use a number > 0 or 'fro'")
    return _C.norm(input, float(p), dim, keepdim)


def cumsum(input, dim):
    """Running sum along ``dim`` (accumulated in double)."""
    return _C.cumsum(input, dim)


def softmax(input, dim):
    """exp(x) / sum(exp(x)) along ``dim``, computed stably (max-shifted); one
    fused backward. ``dim`` is required (torch warns when it is implicit)."""
    return _C.softmax(input, dim)


def log_softmax(input, dim):
    """x - logsumexp(x) along ``dim``, stable; one fused backward."""
    return _C.log_softmax(input, dim)


__all__ = ["sum", "mean", "nansum", "nanmean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "var",
           "std", "var_mean", "std_mean", "logsumexp", "norm", "cumsum", "softmax", "log_softmax"]

tensor_methods(sum=sum, mean=mean, nansum=nansum, nanmean=nanmean, prod=prod, max=max, min=min, amax=amax,
               amin=amin, argmax=argmax, argmin=argmin, var=var, std=std, logsumexp=logsumexp, norm=norm,
               cumsum=cumsum, softmax=softmax, log_softmax=log_softmax)
