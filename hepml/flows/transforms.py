"""Bijective transforms with zuko's conventions (``zuko.transforms``).

A transform maps x -> y; ``t(x)``, ``t.inv(y)``, ``t.log_abs_det_jacobian(x, y)``
(log |det dy/dx|, summed over the event dims of the transform) and
``t.call_and_ladj(x)`` (both at once, the one flows use). ``t.inv`` is the
inverse transform with the same interface.

The monotonic affine, spline and circular-shift transforms run on the C kernels
of csrc/kernels/flows.c (one autograd node per call, gradients w.r.t. the input
and every parameter, in both directions). Their log-dets are per element (like
zuko's); ``DependentTransform`` sums them over event dims.
"""
import math

from .. import _C
from .. import ops as _ops  # noqa: F401  (registers Tensor methods)
from .._tensor import Tensor
import hepml as _hm

__all__ = ["Transform", "ComposedTransform", "DependentTransform", "IdentityTransform", "AffineTransform",
           "ExpTransform", "SigmoidTransform", "MonotonicAffineTransform", "MonotonicRQSTransform",
           "CircularShiftTransform", "PermutationTransform", "RotationTransform", "AutoregressiveTransform"]


def _t(x):
    return x if isinstance(x, Tensor) else _hm.tensor(x)


class Transform:
    """Base class: subclasses define ``_call`` and ``_inverse`` and either
    ``log_abs_det_jacobian`` or ``call_and_ladj``."""

    def __call__(self, x):
        return self._call(x)

    def _call(self, x):
        raise NotImplementedError

    def _inverse(self, y):
        raise NotImplementedError

    def log_abs_det_jacobian(self, x, y):
        return self.call_and_ladj(x)[1]

    def call_and_ladj(self, x):
        y = self._call(x)
        return y, self.log_abs_det_jacobian(x, y)

    def inverse_and_ladj(self, y):
        """x = f^{-1}(y) and log |det dx/dy| (used by sampling with log_prob)."""
        x = self._inverse(y)
        return x, -self.log_abs_det_jacobian(x, y)

    @property
    def inv(self):
        return _InverseTransform(self)

    def __repr__(self):
        return f"{type(self).__name__}()"


class _InverseTransform(Transform):
    def __init__(self, base):
        self._base = base

    def _call(self, x):
        return self._base._inverse(x)

    def _inverse(self, y):
        return self._base._call(y)

    def call_and_ladj(self, x):
        return self._base.inverse_and_ladj(x)

    def inverse_and_ladj(self, y):
        return self._base.call_and_ladj(y)

    def log_abs_det_jacobian(self, x, y):
        return -self._base.log_abs_det_jacobian(y, x)

    @property
    def inv(self):
        return self._base

    def __repr__(self):
        return f"Inverse({self._base!r})"


class ComposedTransform(Transform):
    """f = f_n o ... o f_1 (applied left to right, as zuko)."""

    def __init__(self, *transforms):
        self.transforms = list(transforms)

    def _call(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def _inverse(self, y):
        for t in reversed(self.transforms):
            y = t.inv(y)
        return y

    def call_and_ladj(self, x):
        total = None
        for t in self.transforms:
            x, ladj = t.call_and_ladj(x)
            total = _add_ladj(total, ladj)
        return x, (total if total is not None else _hm.zeros(tuple(x.shape)))

    def inverse_and_ladj(self, y):
        total = None
        for t in reversed(self.transforms):
            y, ladj = t.inverse_and_ladj(y)
            total = _add_ladj(total, ladj)
        return y, (total if total is not None else _hm.zeros(tuple(y.shape)))

    def __repr__(self):
        return "ComposedTransform(" + ", ".join(map(repr, self.transforms)) + ")"


def _add_ladj(a, b):
    """Sum of log-dets of transforms with different event dims (torch's rule: the
    per-element one is summed over the trailing dims the other treats as event)."""
    if a is None:
        return b
    while a.ndim > b.ndim:
        a = a.sum(-1)
    while b.ndim > a.ndim:
        b = b.sum(-1)
    return a + b


def _sum_last(t, n):
    for _ in range(n):
        t = t.sum(-1)
    return t


class DependentTransform(Transform):
    """Treats the last ``reinterpreted`` dims as event dims: log-dets are summed over them."""

    def __init__(self, base, reinterpreted):
        self.base, self.reinterpreted = base, reinterpreted

    def _call(self, x):
        return self.base(x)

    def _inverse(self, y):
        return self.base.inv(y)

    def call_and_ladj(self, x):
        y, ladj = self.base.call_and_ladj(x)
        return y, _sum_last(ladj, self.reinterpreted)

    def inverse_and_ladj(self, y):
        x, ladj = self.base.inverse_and_ladj(y)
        return x, _sum_last(ladj, self.reinterpreted)

    def __repr__(self):
        return f"DependentTransform({self.base!r}, {self.reinterpreted})"


class IdentityTransform(Transform):
    def _call(self, x):
        return x

    def _inverse(self, y):
        return y

    def log_abs_det_jacobian(self, x, y):
        return _hm.zeros(tuple(x.shape))


class AffineTransform(Transform):
    """y = loc + scale * x (element-wise, broadcasting)."""

    def __init__(self, loc, scale):
        self.loc, self.scale = _t(loc), _t(scale)

    def _call(self, x):
        return self.loc + self.scale * x

    def _inverse(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        return _hm.broadcast_to(self.scale.abs().log(), tuple(x.shape))


class ExpTransform(Transform):
    """y = exp(x)."""

    def _call(self, x):
        return x.exp()

    def _inverse(self, y):
        return y.log()

    def log_abs_det_jacobian(self, x, y):
        return x


class SigmoidTransform(Transform):
    """y = sigmoid(x); log dy/dx = -softplus(-x) - softplus(x)."""

    def _call(self, x):
        return x.sigmoid()

    def _inverse(self, y):
        return y.logit()

    def log_abs_det_jacobian(self, x, y):
        return -_hm.nn.functional.softplus(-x) - _hm.nn.functional.softplus(x)


class _Packed(Transform):
    """Element-wise transform whose raw parameters are packed [..., P] per value."""

    def _run(self, x, inverse):
        raise NotImplementedError

    def _call(self, x):
        return self._run(x, False)[0]

    def _inverse(self, y):
        return self._run(y, True)[0]

    def call_and_ladj(self, x):
        out = self._run(x, False)
        return out[0], out[1]

    def inverse_and_ladj(self, y):
        out = self._run(y, True)
        return out[0], out[1]

    def _check(self, x, op):
        x = _t(x)
        want = tuple(self.params.shape[:-1])
        if tuple(x.shape) != want:
            try:
                shape = _broadcast_shape(tuple(x.shape), want)
            except ValueError:
                raise ValueError(f"{op}: input of shape {tuple(x.shape)} does not broadcast with the parameters' "
                                 f"shape {want}") from None
            if shape != tuple(x.shape):
                x = _hm.broadcast_to(x, shape).contiguous()
            if shape != want:
                self.params = _hm.broadcast_to(self.params, shape + (self.params.shape[-1],)).contiguous()
        return x


def _broadcast_shape(a, b):
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for p, q in zip(a, b):
        if p != q and p != 1 and q != 1:
            raise ValueError(f"shapes {a} and {b} do not broadcast")
        out.append(max(p, q) if p != 0 and q != 0 else 0)
    return tuple(out)


class MonotonicAffineTransform(_Packed):
    """y = x exp(a) + shift with a = scale / (1 + |scale / log(slope)|) (zuko's
    soft-clipped log-scale). ``shift`` and ``scale`` broadcast to the input."""

    def __init__(self, shift, scale, slope=1e-3):
        shift, scale = _t(shift), _t(scale)
        shape = _broadcast_shape(tuple(shift.shape), tuple(scale.shape))
        self.params = _hm.stack([_hm.broadcast_to(shift, shape), _hm.broadcast_to(scale, shape)], -1)
        self.slope = slope

    @classmethod
    def _from_packed(cls, params, slope=1e-3):
        self = cls.__new__(cls)
        self.params, self.slope = params, slope
        return self

    def _run(self, x, inverse):
        x = self._check(x, "MonotonicAffineTransform")
        return _C.flow_affine(x, self.params, self.slope, inverse)


class MonotonicRQSTransform(_Packed):
    """Monotonic rational-quadratic spline on [-bound, bound] (identity outside),
    zuko's parametrisation: ``widths [..., K]``, ``heights [..., K]``,
    ``derivatives [..., K-1]`` raw (unconstrained) values."""

    def __init__(self, widths, heights, derivatives, bound=5.0, slope=1e-3):
        self.params = _hm.cat([_t(widths), _t(heights), _t(derivatives)], -1)
        self.bins = int(widths.shape[-1])
        self.bound, self.slope, self.circular = bound, slope, False

    @classmethod
    def _from_packed(cls, params, bins, bound=5.0, slope=1e-3, circular=False):
        self = cls.__new__(cls)
        self.params, self.bins, self.bound, self.slope, self.circular = params, bins, bound, slope, circular
        return self

    def _run(self, x, inverse):
        x = self._check(x, "MonotonicRQSTransform")
        return _C.flow_rqs(x, self.params, self.bins, self.bound, self.slope, self.circular, inverse)

    def __repr__(self):
        return f"MonotonicRQSTransform(bins={self.bins})"


def CircularRQSTransform(widths, heights, derivatives, slope=1e-3):
    """zuko's circular spline: ``CircularShiftTransform(pi)`` then the spline on [-pi, pi]
    (one fused kernel call here)."""
    t = MonotonicRQSTransform(widths, heights, derivatives, bound=math.pi, slope=slope)
    t.circular = True
    return t


class CircularShiftTransform(Transform):
    """y = remainder(x + bound, 2 bound) - bound on [-bound, bound); log-det 0."""

    def __init__(self, bound=1.0):
        self.bound = bound

    def _call(self, x):
        return _C.flow_circular_shift(x, self.bound, False)

    def _inverse(self, y):
        return _C.flow_circular_shift(y, self.bound, True)

    def log_abs_det_jacobian(self, x, y):
        return _hm.zeros(tuple(x.shape))


class PermutationTransform(Transform):
    """y = x[..., order]; log-det 0 (already per event, as zuko)."""

    def __init__(self, order):
        self.order = _hm.tensor(order, dtype=_hm.int64) if not isinstance(order, Tensor) else order
        import numpy as np
        self._inverse_order = _hm.tensor(np.argsort(self.order.numpy()), dtype=_hm.int64)

    def _call(self, x):
        return x.index_select(-1, self.order)

    def _inverse(self, y):
        return y.index_select(-1, self._inverse_order)

    def log_abs_det_jacobian(self, x, y):
        return _hm.zeros(tuple(x.shape[:-1]))


class RotationTransform(Transform):
    """y = R x with R = exp(A - A^T) (zuko's RotationTransform). ``A`` is any square
    matrix ``(*, D, D)`` (a batch of them broadcasts with the inputs' batch dims);
    A - A^T is skew-symmetric, so R is a rotation: orthogonal with det 1, log-det 0.
    R is computed once, at construction, by ``hepml.matrix_exp`` and is
    differentiable w.r.t. ``A``: in a flow, ``UnconditionalTransform(RotationTransform,
    hepml.randn(D, D))`` learns the rotation."""

    def __init__(self, A):
        A = _t(A)
        if len(A.shape) < 2 or A.shape[-1] != A.shape[-2]:
            raise ValueError(f"RotationTransform: argument 'A' has shape {tuple(A.shape)}, expected square "
                             f"matrices (*, D, D)")
        self.R = (A - A.mT).matrix_exp()

    def _check(self, x):
        D = self.R.shape[-1]
        if len(x.shape) < 1 or x.shape[-1] != D:
            raise ValueError(f"RotationTransform: input has shape {tuple(x.shape)}, expected (..., {D})")

    def _call(self, x):
        self._check(x)
        if self.R.ndim == 2:
            return x.matmul(self.R.mT)  # one GEMM over all batch dims: (x R^T)_i = sum_j R_ij x_j
        return self.R.matmul(x.unsqueeze(-1)).squeeze(-1)

    def _inverse(self, y):
        self._check(y)
        if self.R.ndim == 2:
            return y.matmul(self.R)  # R^-1 = R^T
        return self.R.mT.matmul(y.unsqueeze(-1)).squeeze(-1)

    def log_abs_det_jacobian(self, x, y):
        return _hm.zeros(tuple(x.shape[:-1]))

    def __repr__(self):
        return f"RotationTransform(D={self.R.shape[-1]})"


class AutoregressiveTransform(Transform):
    """y = f(x | phi(x)) with an autoregressive ``meta(x) -> transform``; inverted
    in ``passes`` fixed-point passes (zuko). ``fast_inverse(y)`` (optional) is the
    all-in-C inversion used when no gradient is needed."""

    def __init__(self, meta, passes, fast_inverse=None):
        self.meta, self.passes, self.fast_inverse = meta, passes, fast_inverse

    def _call(self, x):
        return self.meta(x)(x)

    def call_and_ladj(self, x):
        return self.meta(x).call_and_ladj(x)

    def _slow_inverse(self, y):
        x = _hm.zeros(tuple(y.shape))
        for _ in range(self.passes):
            x = self.meta(x).inv(y)
        return x

    def _inverse(self, y):
        if self.fast_inverse is not None:
            r = self.fast_inverse(y, False)
            if r is not None:
                return r[0]
        return self._slow_inverse(y)

    def inverse_and_ladj(self, y):
        if self.fast_inverse is not None:
            r = self.fast_inverse(y, True)
            if r is not None:
                return r
        x = self._slow_inverse(y)
        return x, -self.meta(x).call_and_ladj(x)[1]
