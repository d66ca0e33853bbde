"""Distributions for flows, with torch.distributions / zuko conventions:
``batch_shape`` + ``event_shape``, ``log_prob(x)`` sums over event dims,
``sample(shape)`` returns ``shape + batch_shape + event_shape`` without
gradient, ``rsample(shape)`` with (reparametrised) gradient.
"""
import math

import hepml as _hm
from .._tensor import Tensor

__all__ = ["Distribution", "Normal", "DiagNormal", "BoxUniform", "NormalizingFlow"]


def _t(x):
    return x if isinstance(x, Tensor) else _hm.tensor(x)


def _shape(s):
    if isinstance(s, int):
        return (s,)
    return tuple(s)


class Distribution:
    batch_shape = ()
    event_shape = ()

    def sample(self, shape=()):
        with _hm.no_grad():
            return self.rsample(shape)

    def rsample(self, shape=()):
        raise NotImplementedError

    def rsample_and_log_prob(self, shape=()):
        x = self.rsample(shape)
        return x, self.log_prob(x)

    def _check_event(self, x, op="log_prob"):
        ev = tuple(self.event_shape)
        if ev and tuple(x.shape[len(x.shape) - len(ev):]) != ev:
            raise ValueError(f"{type(self).__name__}.{op}(): value of shape {tuple(x.shape)} does not end with the "
                             f"event shape {ev}")


class Normal(Distribution):
    """Element-wise Gaussian (event shape ())."""

    def __init__(self, loc, scale):
        self.loc, self.scale = _t(loc), _t(scale)
        self.batch_shape = tuple(_hm.broadcast_to(self.loc, tuple((self.loc + self.scale).shape)).shape)

    def expand(self, batch_shape):
        s = _shape(batch_shape)
        return type(self)(_hm.broadcast_to(self.loc, s), _hm.broadcast_to(self.scale, s))

    def log_prob(self, x):
        z = (x - self.loc) / self.scale
        return -0.5 * z * z - self.scale.log() - 0.5 * math.log(2 * math.pi)

    def rsample(self, shape=()):
        s = _shape(shape) + tuple(self.batch_shape)
        return self.loc + self.scale * _hm.randn(*s)


class DiagNormal(Distribution):
    """Multivariate normal with diagonal covariance: event dim = last dim of loc."""

    def __init__(self, loc, scale, ndims=1):
        self.loc, self.scale = _t(loc), _t(scale)
        full = tuple((self.loc + self.scale).shape)
        self.loc, self.scale = _hm.broadcast_to(self.loc, full), _hm.broadcast_to(self.scale, full)
        self.batch_shape, self.event_shape = full[:len(full) - ndims], full[len(full) - ndims:]
        self._ndims = ndims

    def expand(self, batch_shape):
        s = _shape(batch_shape) + tuple(self.event_shape)
        return DiagNormal(_hm.broadcast_to(self.loc, s), _hm.broadcast_to(self.scale, s), self._ndims)

    def log_prob(self, x):
        self._check_event(x)
        z = (x - self.loc) / self.scale
        lp = -0.5 * z * z - self.scale.log() - 0.5 * math.log(2 * math.pi)
        for _ in range(self._ndims):
            lp = lp.sum(-1)
        return lp

    def rsample(self, shape=()):
        s = _shape(shape) + tuple(self.batch_shape) + tuple(self.event_shape)
        return self.loc + self.scale * _hm.randn(*s)

    def __repr__(self):
        return f"DiagNormal(loc: {tuple(self.loc.shape)}, scale: {tuple(self.scale.shape)})"


class BoxUniform(Distribution):
    """Uniform on the box [lower, upper) (event dim = last dim); log_prob is -inf outside."""

    def __init__(self, lower, upper, ndims=1):
        self.lower, self.upper = _t(lower), _t(upper)
        full = tuple((self.lower + self.upper).shape)
        self.lower, self.upper = _hm.broadcast_to(self.lower, full), _hm.broadcast_to(self.upper, full)
        self.batch_shape, self.event_shape = full[:len(full) - ndims], full[len(full) - ndims:]
        self._ndims = ndims

    def expand(self, batch_shape):
        s = _shape(batch_shape) + tuple(self.event_shape)
        return BoxUniform(_hm.broadcast_to(self.lower, s), _hm.broadcast_to(self.upper, s), self._ndims)

    def log_prob(self, x):
        self._check_event(x)
        inside = (x >= self.lower).logical_and(x < self.upper)
        lp = _hm.where(inside, -(self.upper - self.lower).log(), _hm.full(tuple(inside.shape), -math.inf))
        for _ in range(self._ndims):
            lp = lp.sum(-1)
        return lp

    def rsample(self, shape=()):
        s = _shape(shape) + tuple(self.batch_shape) + tuple(self.event_shape)
        return self.lower + (self.upper - self.lower) * _hm.rand(*s)


class NormalizingFlow(Distribution):
    """p(x) = p_base(f(x)) |det df/dx|, with ``transform`` f mapping data to latent
    (zuko's convention). Sampling inverts f."""

    def __init__(self, transform, base):
        self.transform, self.base = transform, base
        self.batch_shape, self.event_shape = tuple(base.batch_shape), tuple(base.event_shape)

    def _check(self, x):
        ev = self.event_shape
        if tuple(x.shape[len(x.shape) - len(ev):]) != ev:
            raise ValueError(f"NormalizingFlow.log_prob(): input of shape {tuple(x.shape)} must end with the event "
                             f"shape {ev} (the flow's number of features)")

    def log_prob(self, x):
        x = _t(x)
        self._check(x)
        z, ladj = self.transform.call_and_ladj(x)
        lp = self.base.log_prob(z)
        while ladj.ndim > lp.ndim:  # element-wise transforms: sum over the event dims
            ladj = ladj.sum(-1)
        return lp + ladj

    def rsample(self, shape=()):
        z = self.base.rsample(shape)
        return self.transform.inv(z)

    def sample(self, shape=()):
        with _hm.no_grad():
            return self.rsample(shape)

    def rsample_and_log_prob(self, shape=()):
        """Samples and their log-density in one inversion (log p = log p_base(z) - ladj_inverse)."""
        z = self.base.rsample(shape)
        lp = self.base.log_prob(z)
        x, ladj = self.transform.inv.call_and_ladj(z)
        while ladj.ndim > lp.ndim:
            ladj = ladj.sum(-1)
        return x, lp - ladj
