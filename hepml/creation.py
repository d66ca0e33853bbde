"""Creating tensors: constants, ranges, random numbers (seeded by hepml.manual_seed)."""
from . import _C
from ._tensor import Tensor


def _size(size):
    if len(size) == 1 and not isinstance(size[0], int):
        return tuple(size[0])
    return tuple(size)


def full(size, fill_value, dtype=None, requires_grad=False):
    return _C.full(tuple(size) if not isinstance(size, int) else (size,), fill_value, dtype, requires_grad)


def zeros(*size, dtype=None, requires_grad=False):
    return _C.full(_size(size), 0, dtype, requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _C.full(_size(size), 1, dtype, requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    """Like torch.empty, but zero-filled: uninitialised memory helps nobody learning."""
    return _C.full(_size(size), 0, dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Values from start (inclusive) to end (exclusive). int64 when every argument is an int, as in torch."""
    if end is None:
        start, end = 0, start
    if dtype is None and all(isinstance(v, int) for v in (start, end, step)):
        dtype = "int64"
    return _C._arange(float(start), float(end), float(step), dtype, requires_grad)


def linspace(start, end, steps, requires_grad=False):
    return _C.linspace(float(start), float(end), int(steps), requires_grad)


def rand(*size, requires_grad=False):
    """Uniform on [0, 1)."""
    return _C._rand(_size(size), requires_grad)


def randn(*size, requires_grad=False):
    """Standard normal."""
    return _C._randn(_size(size), requires_grad)


def randint(low, high=None, size=None):
    """Uniform integers in [low, high) (int64). ``randint(high, size)`` also works."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint(): size is required")
    return _C._randint(int(low), int(high), tuple(size) if not isinstance(size, int) else (size,))


def randperm(n):
    return _C.randperm(int(n))


def _like(fn):
    def make(input, *args, dtype=None, requires_grad=False):
        return fn(input.shape, *args, dtype=dtype if dtype is not None else input.dtype, requires_grad=requires_grad)
    return make


def zeros_like(input, dtype=None, requires_grad=False):
    return _C.full(input.shape, 0, dtype if dtype is not None else input.dtype, requires_grad)


def ones_like(input, dtype=None, requires_grad=False):
    return _C.full(input.shape, 1, dtype if dtype is not None else input.dtype, requires_grad)


def empty_like(input, dtype=None, requires_grad=False):
    return zeros_like(input, dtype, requires_grad)


def full_like(input, fill_value, dtype=None, requires_grad=False):
    return _C.full(input.shape, fill_value, dtype if dtype is not None else input.dtype, requires_grad)


def rand_like(input, requires_grad=False):
    return _C._rand(input.shape, requires_grad)


def randn_like(input, requires_grad=False):
    return _C._randn(input.shape, requires_grad)


__all__ = ["Tensor", "full", "zeros", "ones", "empty", "arange", "linspace", "rand", "randn", "randint", "randperm",
           "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like"]
