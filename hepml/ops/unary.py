"""Unary elementwise math: functions ``hepml.exp(x)`` and methods ``x.exp()``.

dtypes, torch-like: bool and int64 inputs are converted to float32 (as torch
does for exp, log, sqrt, ...); where torch keeps an integer dtype (abs, floor,
sign, square, ...) hepml returns float32 as well. ``-mask`` on a bool tensor is
an error, as in torch (use ``~mask``).

Gradients as in torch: sign, floor, ceil and round have a zero gradient;
abs has gradient sign(x) (0 at 0); logit without eps gives nan outside [0, 1],
with eps 0 where the input was clamped; nan_to_num passes the gradient where
the input was finite.
"""
from .. import _C
from ._register import tensor_methods
from .arith import _as_method

neg = _C.neg
abs = _C.abs  # noqa: A001 (torch's name)
exp = _C.exp
log = _C.log
log1p = _C.log1p
expm1 = _C.expm1
sqrt = _C.sqrt
rsqrt = _C.rsqrt
square = _C.square
sin = _C.sin
cos = _C.cos
tanh = _C.tanh
sigmoid = _C.sigmoid
atan = _C.atan
sign = _C.sign
floor = _C.floor
ceil = _C.ceil
reciprocal = _C.reciprocal
erf = _C.erf
negative = neg


def round(input, *, decimals=0):  # noqa: A001 (torch's name)
    """Round half to even (as torch and numpy), to ``decimals`` decimal places."""
    return _C.round(input, decimals=int(decimals))


def logit(input, eps=None):
    """log(p / (1 - p)); with eps, p is first clamped to [eps, 1 - eps]."""
    return _C.logit(input, eps)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """nan -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (default: the
    largest / lowest finite float32)."""
    return _C.nan_to_num(input, nan, posinf, neginf)


__all__ = ["neg", "negative", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "sin", "cos", "tanh",
           "sigmoid", "atan", "sign", "floor", "ceil", "round", "reciprocal", "erf", "logit", "nan_to_num"]

tensor_methods(**{name: _as_method(globals()[name], name) for name in __all__})
