"""Lazy (context-conditioned) modules, as zuko.lazy: a ``LazyTransform`` /
``LazyDistribution`` is a module whose ``forward(c)`` builds a transform /
distribution for context ``c``; ``Flow(transform=[...], base=...)`` composes them
into a ``NormalizingFlow``."""
import hepml as _hm
from ..nn import Module, ModuleList, Parameter
from .._tensor import Tensor
from .distributions import NormalizingFlow
from .transforms import ComposedTransform

__all__ = ["LazyTransform", "LazyDistribution", "LazyComposedTransform", "LazyInverse", "Flow",
           "UnconditionalDistribution", "UnconditionalTransform"]


class LazyDistribution(Module):
    def forward(self, c=None):
        raise NotImplementedError


class LazyTransform(Module):
    def forward(self, c=None):
        raise NotImplementedError

    @property
    def inv(self):
        return LazyInverse(self)


class LazyInverse(LazyTransform):
    def __init__(self, transform):
        super().__init__()
        self.transform = transform

    def forward(self, c=None):
        return self.transform(c).inv

    @property
    def inv(self):
        return self.transform


class LazyComposedTransform(LazyTransform):
    def __init__(self, *transforms):
        super().__init__()
        self.transforms = ModuleList(list(transforms))

    def forward(self, c=None):
        return ComposedTransform(*(t(c) for t in self.transforms))


class _Partial(Module):
    """Registers tensor arguments of a constructor as buffers or parameters
    (positional ones as ``_0``, ``_1``, ...; keyword ones by name, as zuko)."""

    def __init__(self, f, *args, buffer=False, **kwargs):
        super().__init__()
        self.f = f
        self._names = []
        self._kw = {}
        for i, a in enumerate(args):
            self._add(f"_{i}", a, buffer, positional=True)
        for k, a in kwargs.items():
            self._add(k, a, buffer, positional=False)

    def _add(self, name, a, buffer, positional):
        if isinstance(a, Tensor):
            if buffer:
                self.register_buffer(name, a)
            else:
                self.register_parameter(name, Parameter(a))
            self._names.append((name, positional))
        elif positional:
            self._names.append((name, True))
            object.__setattr__(self, name + "_const", a)
        else:
            self._kw[name] = a

    def _value(self, name):
        if name in self._parameters:
            return self._parameters[name]
        if name in self._buffers:
            return self._buffers[name]
        return getattr(self, name + "_const")

    def forward(self, c=None):
        args = [self._value(n) for n, pos in self._names if pos]
        kwargs = {n: self._value(n) for n, pos in self._names if not pos}
        kwargs.update(self._kw)
        return self.f(*args, **kwargs)


class UnconditionalDistribution(_Partial, LazyDistribution):
    """``UnconditionalDistribution(DiagNormal, loc=zeros(3), scale=ones(3), buffer=True)``:
    ignores the context."""


class UnconditionalTransform(_Partial, LazyTransform):
    """``UnconditionalTransform(ExpTransform)``: ignores the context."""


class Flow(LazyDistribution):
    """``Flow(transform, base)``: ``flow(c)`` is the ``NormalizingFlow`` p(x | c).
    ``transform`` (one lazy transform or a list, data -> latent order) and ``base``
    (a lazy distribution)."""

    def __init__(self, transform, base):
        super().__init__()
        if isinstance(transform, LazyTransform):
            self.transform = transform
        else:
            self.transform = LazyComposedTransform(*transform)
        self.base = base
        self.context = None

    def forward(self, c=None):
        if c is not None and not isinstance(c, Tensor):
            c = _hm.tensor(c)
        ctx = self.context
        if ctx is not None:
            if ctx > 0 and c is None:
                raise ValueError(f"{type(self).__name__}: this flow is conditional on {ctx} context features; "
                                 f"call flow(c) with c of shape (..., {ctx})")
            if c is not None and (len(c.shape) < 1 or c.shape[-1] != ctx):
                raise ValueError(f"{type(self).__name__}: context has shape {tuple(c.shape)}, expected (..., {ctx})")
        transform = self.transform(c)
        base = self.base(c)
        if c is not None:
            base = base.expand(tuple(c.shape[:-1]))
        return NormalizingFlow(transform, base)
