"""Attach functions to hepml.Tensor as methods."""
from .._tensor import Tensor


def tensor_methods(**methods):
    """``tensor_methods(exp=exp, sum=sum_)`` makes ``t.exp()`` call ``exp(t)``.
    Refuses to silently replace a method another module defined."""
    for name, fn in methods.items():
        if name in Tensor.__dict__:
            raise RuntimeError(f"hepml internal error: Tensor.{name} is defined twice")
        setattr(Tensor, name, fn)
