"""Coupling flows (zuko.flows.coupling): ``GeneralCouplingTransform`` and ``NICE``.

Features where ``mask`` is True (x_a) pass unchanged and condition, through an
MLP of [x_a, c], the univariate transform of the others (x_b). Splitting and
merging are two ``index_select`` calls (the merge uses the inverse permutation),
so everything runs on hepml's kernels and is differentiable.
"""
import math

import hepml as _hm
from ..nn import Linear, ReLU, Sequential
from .._tensor import Tensor
from .autoregressive import _KIND, _cat_context
from .distributions import DiagNormal
from .flows import Flow, LazyTransform, UnconditionalDistribution
from .transforms import DependentTransform, MonotonicAffineTransform, MonotonicRQSTransform, Transform

__all__ = ["MLP", "CouplingTransform", "GeneralCouplingTransform", "NICE", "RealNVP"]


class MLP(Sequential):
    """zuko.nn.MLP: Linear, activation, ..., Linear (layers named 0, 1, 2, ...)."""

    def __init__(self, in_features, out_features, hidden_features=(64, 64), activation=None, normalize=False):
        if normalize:
            raise NotImplementedError("MLP(normalize=True) is not implemented in hepml.flows")
        activation = ReLU if activation is None else activation
        sizes = [in_features, *hidden_features, out_features]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(activation())
            layers.append(Linear(a, b))
        super().__init__(*layers)


class CouplingTransform(Transform):
    def __init__(self, meta, idx_a, idx_b, inv_perm):
        self.meta, self.idx_a, self.idx_b, self.inv_perm = meta, idx_a, idx_b, inv_perm

    def _split(self, x):
        return x.index_select(-1, self.idx_a), x.index_select(-1, self.idx_b)

    def _merge(self, a, b):
        return _hm.cat([a, b], -1).index_select(-1, self.inv_perm)

    def _call(self, x):
        a, b = self._split(x)
        return self._merge(a, self.meta(a)(b))

    def _inverse(self, y):
        a, b = self._split(y)
        return self._merge(a, self.meta(a).inv(b))

    def call_and_ladj(self, x):
        a, b = self._split(x)
        yb, ladj = self.meta(a).call_and_ladj(b)
        return self._merge(a, yb), ladj

    def inverse_and_ladj(self, y):
        a, b = self._split(y)
        xb, ladj = self.meta(a).inv.call_and_ladj(b)
        return self._merge(a, xb), ladj


class GeneralCouplingTransform(LazyTransform):
    """zuko's GeneralCouplingTransform(features, context, mask, univariate, ...,
    hidden_features, activation): ``mask`` (bool [features], default odd features)
    selects the conditioning features."""

    def __init__(self, features, context=0, mask=None, univariate="affine", shapes=None, bins=8, bound=None,
                 slope=1e-3, **kwargs):
        super().__init__()
        if univariate is MonotonicAffineTransform:
            univariate = "affine"
        elif univariate is MonotonicRQSTransform:
            univariate = "rqs"
        if univariate not in _KIND:
            raise ValueError(f"GeneralCouplingTransform: univariate must be 'affine', 'rqs' or 'circular', "
                             f"got {univariate!r}")
        if shapes is not None and univariate != "affine":
            bins = int(tuple(shapes[0])[0])
        self.kind, self.bins, self.slope = _KIND[univariate], int(bins), float(slope)
        self.bound = (math.pi if self.kind == 2 else 5.0) if bound is None else float(bound)
        self.total = 2 if self.kind == 0 else 3 * self.bins - 1
        if mask is None:
            mask = [i % 2 == 1 for i in range(features)]
        mask = [bool(v) for v in (mask.tolist() if isinstance(mask, Tensor) else mask)]
        if len(mask) != features:
            raise ValueError(f"GeneralCouplingTransform: 'mask' should have {features} elements, got {len(mask)}")
        a = [i for i, m in enumerate(mask) if m]
        b = [i for i, m in enumerate(mask) if not m]
        if not a or not b:
            raise ValueError("GeneralCouplingTransform: 'mask' must select at least one feature and leave one")
        self.features, self.context = features, int(context)
        self.fa, self.fb = len(a), len(b)
        self.register_buffer("mask", _hm.tensor(mask, dtype=_hm.bool))
        perm = a + b
        self._idx_a = _hm.tensor(a, dtype=_hm.int64)
        self._idx_b = _hm.tensor(b, dtype=_hm.int64)
        self._inv_perm = _hm.tensor([perm.index(i) for i in range(features)], dtype=_hm.int64)
        self.hyper = MLP(self.fa + self.context, self.fb * self.total, **kwargs)

    def meta(self, c, xa):
        if self.context:
            xa = _cat_context(xa, c)
        phi = self.hyper(xa)
        phi = phi.reshape(tuple(phi.shape[:-1]) + (self.fb, self.total))
        if self.kind == 0:
            t = MonotonicAffineTransform._from_packed(phi, self.slope)
        else:
            t = MonotonicRQSTransform._from_packed(phi, self.bins, self.bound, self.slope, self.kind == 2)
        return DependentTransform(t, 1)

    def forward(self, c=None):
        if c is not None and not isinstance(c, Tensor):
            c = _hm.tensor(c)
        if self.context and c is None:
            raise ValueError(f"GeneralCouplingTransform: context of {self.context} features is required")
        return _CheckedCoupling(lambda xa: self.meta(c, xa), self._idx_a, self._idx_b, self._inv_perm, self.features)


class _CheckedCoupling(CouplingTransform):
    def __init__(self, meta, a, b, inv, features):
        super().__init__(meta, a, b, inv)
        self.features = features

    def _split(self, x):
        if len(x.shape) < 1 or x.shape[-1] != self.features:
            raise ValueError(f"GeneralCouplingTransform: input has shape {tuple(x.shape)}, expected "
                             f"(..., {self.features})")
        return super()._split(x)


class NICE(Flow):
    """zuko's NICE: ``transforms`` coupling transforms with alternating masks
    (random ones with randmask=True) and a standard DiagNormal base."""

    def __init__(self, features, context=0, transforms=3, randmask=False, **kwargs):
        ts = []
        for i in range(transforms):
            if randmask:
                mask = [int(v) % 2 == i % 2 for v in _hm.randperm(features).tolist()]
            else:
                mask = [j % 2 == i % 2 for j in range(features)]
            ts.append(GeneralCouplingTransform(features, context, mask=mask, **kwargs))
        base = UnconditionalDistribution(DiagNormal, loc=_hm.zeros(features), scale=_hm.ones(features), buffer=True)
        super().__init__(ts, base)
        self.context = context


RealNVP = NICE
