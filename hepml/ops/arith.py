"""Broadcasting arithmetic (the operators + - * / ** % call these too),
elementwise maximum/minimum, clamp and where.

dtypes: bool and int64 operands are converted to float32 (hepml's arithmetic
is float32; torch would keep integer dtypes for some of these).
"""
from .. import _C
from ._register import tensor_methods


def _as_method(fn, name=None):
    """A Python function calling ``fn(self, ...)``: C functions assigned to a
    class do not bind ``self``, so Tensor methods wrap them."""
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name or fn.__name__
    method.__doc__ = fn.__doc__
    return method

add = _C.add
sub = _C.sub
mul = _C.mul
div = _C.div
atan2 = _C.atan2
remainder = _C.remainder
fmod = _C.fmod
maximum = _C.maximum
minimum = _C.minimum
where = _C.where


def pow(input, exponent):  # noqa: A001 (torch's name)
    """input ** exponent with broadcasting. A number exponent takes a fast path
    (x*x for 2, sqrt for 0.5, ...); a number base (``pow(2, t)``) works too.
    Gradients follow torch: zero for the base where the exponent is 0, zero
    for the exponent where the base is 0 and the exponent >= 0."""
    return _C.pow(input, exponent)


def clamp(input, min=None, max=None):  # noqa: A002 (torch's names)
    """min(max(input, min), max). Bounds are numbers or tensors (broadcast with
    input; tensor bounds get gradients). As in torch: nan stays nan, min > max
    gives max, and input's gradient is 0 where it was clamped."""
    return _C.clamp(input, min, max)


clip = clamp


def _where_method(self, condition, other):
    """``x.where(condition, y)`` is ``where(condition, x, y)``, as in torch."""
    return _C.where(condition, self, other)


__all__ = ["add", "sub", "mul", "div", "pow", "atan2", "remainder", "fmod", "maximum", "minimum", "clamp", "clip",
           "where"]

tensor_methods(add=_as_method(add), sub=_as_method(sub), mul=_as_method(mul), div=_as_method(div), pow=pow,
               atan2=_as_method(atan2), remainder=_as_method(remainder), fmod=_as_method(fmod),
               maximum=_as_method(maximum), minimum=_as_method(minimum), clamp=clamp, clip=clamp, where=_where_method)
