"""Broadcasting arithmetic (the operators + - * / call these too)."""
from .. import _C

add = _C.add
sub = _C.sub
mul = _C.mul
div = _C.div

__all__ = ["add", "sub", "mul", "div"]
