"""Functional neural-network ops: layer normalisation, activations, dropout.

These are the functions of ``torch.nn.functional`` with the same names, argument
names and defaults; ``hepml.nn.functional`` re-exports them. Each is one C
kernel pair (csrc/kernels/nn.c) and one autograd node.

Differences from torch on purpose:
- ``inplace=True`` is accepted for source compatibility, but hepml always
  returns a new tensor and leaves ``input`` unchanged: write ``x = F.relu(x)``.
- ``dropout`` requires ``0 <= p < 1`` (torch also accepts ``p = 1``, which
  zeroes everything).
"""
from .. import _C
from ._register import tensor_methods


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing dims given by ``normalized_shape`` (an int or
    a tuple equal to ``input.shape[-len(normalized_shape):]``) to zero mean and
    unit (biased) variance, then scale by ``weight`` and shift by ``bias``
    (both of shape ``normalized_shape``, or None). As
    ``torch.nn.functional.layer_norm``; one fused kernel that saves the mean
    and 1/std of each row for the backward pass."""
    return _C.layer_norm(input, normalized_shape, weight, bias, float(eps))


def relu(input, inplace=False):
    """max(x, 0); NaN stays NaN. (``inplace`` is accepted and ignored.)"""
    return _C.relu(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x for x > 0, ``negative_slope * x`` otherwise. (``inplace`` ignored.)"""
    return _C.leaky_relu(input, float(negative_slope))


def elu(input, alpha=1.0, inplace=False):
    """x for x > 0, ``alpha * (exp(x) - 1)`` otherwise (computed with an
    accurate expm1). (``inplace`` ignored.)"""
    return _C.elu(input, float(alpha))


def selu(input, inplace=False):
    """``scale * elu(x, alpha)`` with torch's constants alpha = 1.6732632...,
    scale = 1.0507009... (self-normalising networks). (``inplace`` ignored.)"""
    return _C.selu(input)


def gelu(input, approximate="none"):
    """Gaussian error linear unit: ``x * Phi(x)`` (``approximate='none'``) or
    torch's tanh approximation (``approximate='tanh'``)."""
    return _C.gelu(input, approximate)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, and x itself where
    ``beta * x > threshold`` (as torch, for numerical stability)."""
    return _C.softplus(input, float(beta), float(threshold))


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (swish). (``inplace`` ignored.)"""
    return _C.silu(input)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; the identity (``input`` itself) when ``training`` is False
    or ``p == 0``. The mask comes from hepml's counter-based generator
    (``hepml.manual_seed``), so the same seed gives the same mask whatever the
    thread count; backward multiplies by the same mask. ``0 <= p < 1``.
    (``inplace`` ignored.)"""
    return _C.dropout(input, float(p), bool(training))


tensor_methods(relu=relu)

__all__ = ["layer_norm", "relu", "leaky_relu", "elu", "selu", "gelu", "softplus", "silu", "dropout"]
