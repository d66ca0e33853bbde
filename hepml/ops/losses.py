"""Pointwise regression losses: ``mse_loss``, ``l1_loss``, ``huber_loss``,
``smooth_l1_loss``, as in ``torch.nn.functional``.

Each is one C kernel pair (csrc/kernels/losses.c) and one autograd node, with
gradients for both ``input`` and ``target``. ``reduction`` is ``'mean'``
(default), ``'sum'`` or ``'none'``. Reduced values are summed in double over a
fixed partition of the elements, so they do not depend on the thread count.

Difference from torch on purpose: ``input`` and ``target`` must have the same
shape. torch broadcasts mismatched shapes with only a warning, and a
``[N]`` vs ``[N, 1]`` mismatch then silently computes an ``[N, N]`` loss;
hepml raises a ValueError naming both shapes instead.
"""
from .. import _C


def mse_loss(input, target, reduction="mean"):
    """Mean squared error: ``(input - target)**2``, reduced."""
    return _C.mse_loss(input, target, reduction)


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error: ``|input - target|``, reduced. The gradient at
    ``input == target`` is 0 (torch's sign(0))."""
    return _C.l1_loss(input, target, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """Huber loss: ``d**2 / 2`` for ``|d| < delta``, ``delta * (|d| - delta/2)``
    beyond, with ``d = input - target``; ``delta > 0``."""
    return _C.huber_loss(input, target, reduction, float(delta))


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """Smooth L1 loss: ``d**2 / (2 beta)`` for ``|d| < beta``, ``|d| - beta/2``
    beyond (``huber_loss / beta``); ``beta = 0`` is the L1 loss."""
    return _C.smooth_l1_loss(input, target, reduction, float(beta))


__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"]
