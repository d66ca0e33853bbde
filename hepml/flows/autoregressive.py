"""Masked autoregressive flows (zuko.flows.autoregressive / spline): MADE
networks, ``MaskedAutoregressiveTransform``, ``MAF``, ``NSF`` and ``NCSF``.

Module and parameter names follow zuko 1.6 so that a zuko state dict loads
(``flow.load_state_dict(hepml.load_torch_state_dict(zuko_flow.state_dict()))``).

Density evaluation (data -> latent) runs the MADE (masked linear layers, one C
kernel each) and one fused transform kernel, differentiable w.r.t. inputs,
parameters and context. Sampling without gradient runs every inversion pass in
C (``hm_maf_inverse``). ``rsample`` with gradients enabled falls back to zuko's
fixed-point passes (one network evaluation per pass, differentiable through the
inverse kernels), since the all-in-C inversion has no backward.
"""
import math

import hepml as _hm
from .. import _C
from ..nn import Module, Parameter, Sequential, ReLU, ELU, SiLU, Tanh
from ..nn import init as _init
from .._tensor import Tensor
from .distributions import DiagNormal, BoxUniform
from .flows import Flow, LazyTransform, UnconditionalDistribution
from .transforms import (AutoregressiveTransform, DependentTransform, MonotonicAffineTransform,
                         MonotonicRQSTransform)

__all__ = ["MaskedLinear", "MaskedMLP", "MaskedAutoregressiveTransform", "MAF", "NSF", "NCSF"]

_ACT_IDS = {ReLU: 1, ELU: 2, SiLU: 3, Tanh: 4}
_KIND = {"affine": 0, "rqs": 1, "circular": 2}


class MaskedLinear(Module):
    """y = x (W * mask)^T + b (zuko's MaskedLinear; ``mask`` is a bool buffer [out, in])."""

    def __init__(self, adjacency, bias=True):
        super().__init__()
        adjacency = _as_bool(adjacency)
        out_f, in_f = (int(s) for s in adjacency.shape)
        self.in_features, self.out_features = in_f, out_f
        self.weight = Parameter(_hm.empty(out_f, in_f))
        if bias:
            self.bias = Parameter(_hm.empty(out_f))
        else:
            self.register_parameter("bias", None)
        self.register_buffer("mask", adjacency)
        _init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            b = 1 / math.sqrt(in_f) if in_f > 0 else 0
            _init.uniform_(self.bias, -b, b)

    def forward(self, x):
        return _C.masked_linear(x, self.weight, self.mask, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _as_bool(a):
    if isinstance(a, Tensor):
        return a if str(a.dtype) == "bool" else (a != 0)
    return _hm.tensor(a, dtype=_hm.bool)


class MaskedMLP(Sequential):
    """MADE network whose Jacobian dy_i/dx_j is zero where ``adjacency[i, j]`` is 0
    (zuko's MaskedMLP: same mask construction, layers named 0, 1, 2, ...).

    adjacency [out, in] bool; hidden_features sequence; activation a module class
    (default ReLU)."""

    def __init__(self, adjacency, hidden_features=(64, 64), activation=None, residual=False):
        if residual:
            raise NotImplementedError("MaskedMLP(residual=True) is not implemented in hepml")
        activation = ReLU if activation is None else activation
        adjacency = _as_bool(adjacency)
        if len(adjacency.shape) != 2:
            raise ValueError(f"MaskedMLP: adjacency must be a matrix, got shape {tuple(adjacency.shape)}")
        masks = _C.made_masks(adjacency, [int(h) for h in hidden_features])
        layers = []
        for i, m in enumerate(masks):
            if i > 0:
                layers.append(activation())
            layers.append(MaskedLinear(m))
        super().__init__(*layers)
        self.activation = activation

    def _c_layers(self):
        """(weights, masks, biases, activation id) for the C inversion, or None when
        the activation has no C counterpart."""
        act = _ACT_IDS.get(self.activation)
        if act is None:
            return None
        lin = [m for m in self if isinstance(m, MaskedLinear)]
        return [m.weight for m in lin], [m.mask for m in lin], [m.bias for m in lin], act


def _broadcast_shapes(a, b):
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for p, q in zip(a, b):
        if p != q and p != 1 and q != 1:
            raise ValueError(f"input batch shape {a} and context batch shape {b} do not broadcast")
        out.append(q if p == 1 else p)
    return tuple(out)


def _cat_context(x, c):
    """cat([x, c], -1) with the batch dims of x and c broadcast (zuko's broadcast(ignore=1))."""
    lead = _broadcast_shapes(tuple(x.shape[:-1]), tuple(c.shape[:-1]))
    if tuple(x.shape[:-1]) != lead:
        x = _hm.broadcast_to(x, lead + (x.shape[-1],))
    if tuple(c.shape[:-1]) != lead:
        c = _hm.broadcast_to(c, lead + (c.shape[-1],))
    return _hm.cat([x, c], -1)


class MaskedAutoregressiveTransform(LazyTransform):
    """Lazy masked autoregressive transform (zuko): ``t(c)`` is an autoregressive
    transform whose univariate parameters come from a MADE of [x, c].

    features, context, passes (None = features: fully autoregressive; 2 = coupling),
    order (feature ordering, default range(features)), adjacency (bool matrix
    (features, features) or (features, features + context): ``adjacency[i, j]``
    says feature i depends on feature (or context column) j; the diagonal must be
    True and the graph acyclic; when given, ``order`` is ignored and ``passes`` is the
    number of generations of the graph, as zuko), univariate "affine" | "rqs" |
    "circular" (or zuko's MonotonicAffineTransform / MonotonicRQSTransform classes),
    bins/bound/slope for splines, shapes (accepted for zuko compatibility; derived
    from univariate/bins), and MaskedMLP keyword arguments (hidden_features, activation).
    """

    def __init__(self, features, context=0, passes=None, order=None, adjacency=None, univariate="affine",
                 shapes=None, bins=8, bound=None, slope=1e-3, **kwargs):
        super().__init__()
        if not isinstance(features, int) or features < 1:
            raise ValueError(f"MaskedAutoregressiveTransform: features must be a positive int, got {features!r}")
        if features == 1 and context == 0:
            raise NotImplementedError("MaskedAutoregressiveTransform: features=1 without context (zuko's "
                                      "ElementWiseTransform) is not implemented in hepml")
        if univariate is MonotonicAffineTransform:
            univariate = "affine"
        elif univariate is MonotonicRQSTransform:
            univariate = "rqs"
        if univariate not in _KIND:
            raise ValueError(f"MaskedAutoregressiveTransform: univariate must be 'affine', 'rqs' or 'circular', "
                             f"got {univariate!r}")
        if shapes is not None and univariate != "affine":
            bins = int(tuple(shapes[0])[0])
        self.kind = _KIND[univariate]
        self.bins = int(bins)
        self.bound = (math.pi if self.kind == 2 else 5.0) if bound is None else float(bound)
        self.slope = float(slope)
        self.features, self.context = features, int(context)
        self.total = 2 if self.kind == 0 else 3 * self.bins - 1
        if adjacency is not None:
            # zuko: no order buffer; the inverse needs as many passes as the graph has
            # generations. _pass_of[i] is feature i's generation: the C inversion fills in
            # the features of generation p in pass p, which only read earlier ones.
            rows, generation = _check_adjacency(adjacency, features, self.context)
            self.register_buffer("order", None)
            self.passes = max(generation) + 1
            self._pass_of = _hm.tensor(generation, dtype=_hm.int64)
            full = [r for r in rows for _ in range(self.total)]  # each feature's row once per parameter
            self.hyper = MaskedMLP(_hm.tensor(full, dtype=_hm.bool), **kwargs)
            return
        passes = features if passes is None else passes
        if order is None:
            order = list(range(features))
        else:
            order = [int(v) for v in (order.tolist() if isinstance(order, Tensor) else order)]
        if len(order) != features:
            raise ValueError(f"MaskedAutoregressiveTransform: 'order' should have {features} elements, "
                             f"got {len(order)}")
        self.passes = min(max(int(passes), 1), features)
        k = math.ceil(features / self.passes)
        self.register_buffer("order", _hm.tensor([v // k for v in order], dtype=_hm.int64))
        self._pass_of = None  # the order buffer (which load_state_dict may replace)
        adjacency = _C.maf_adjacency(self.order, self.context, self.total)
        self.hyper = MaskedMLP(adjacency, **kwargs)

    def _params(self, c, x):
        if self.context:
            if c is None:
                raise ValueError(f"MaskedAutoregressiveTransform: context of {self.context} features is required")
            x = _cat_context(x, c)
        phi = self.hyper(x)
        return phi.reshape(tuple(phi.shape[:-1]) + (self.features, self.total))

    def meta(self, c, x):
        if len(x.shape) < 1 or x.shape[-1] != self.features:
            raise ValueError(f"MaskedAutoregressiveTransform: input has shape {tuple(x.shape)}, expected "
                             f"(..., {self.features})")
        phi = self._params(c, x)
        if self.kind == 0:
            t = MonotonicAffineTransform._from_packed(phi, self.slope)
        else:
            t = MonotonicRQSTransform._from_packed(phi, self.bins, self.bound, self.slope, self.kind == 2)
        return DependentTransform(t, 1)

    def _fast_inverse(self, c, y, want_ladj):
        if _hm.is_grad_enabled() and (y.requires_grad or (c is not None and c.requires_grad)
                                      or any(p.requires_grad for p in self.parameters())):
            return None  # gradients needed: the pass loop is differentiable, the C inversion is not
        spec = self.hyper._c_layers()
        if spec is None:
            return None
        if len(y.shape) < 1 or y.shape[-1] != self.features:
            raise ValueError(f"MaskedAutoregressiveTransform: input has shape {tuple(y.shape)}, expected "
                             f"(..., {self.features})")
        if self.context:
            if c is None:
                raise ValueError(f"MaskedAutoregressiveTransform: context of {self.context} features is required")
            lead = _broadcast_shapes(tuple(y.shape[:-1]), tuple(c.shape[:-1]))
            c2 = _hm.broadcast_to(c, lead + (self.context,)).reshape(-1, self.context)
        else:
            lead, c2 = tuple(y.shape[:-1]), None
        y2 = _hm.broadcast_to(y, lead + (self.features,)).reshape(-1, self.features)
        w, m, b, act = spec
        pass_of = self.order if self._pass_of is None else self._pass_of
        x, ladj = _C.maf_inverse(y2, c2, w, m, b, act, pass_of, self.passes, self.kind, self.bins,
                                 self.bound, self.slope)
        return x.reshape(lead + (self.features,)), ladj.reshape(lead)

    def forward(self, c=None):
        if c is not None and not isinstance(c, Tensor):
            c = _hm.tensor(c)
        if self.context and c is None:
            raise ValueError(f"MaskedAutoregressiveTransform: context of {self.context} features is required")
        if c is not None and (not self.context or c.shape[-1] != self.context):
            raise ValueError(f"MaskedAutoregressiveTransform: context has shape {tuple(c.shape)}, expected "
                             f"(..., {self.context})")
        return AutoregressiveTransform(lambda x: self.meta(c, x), self.passes,
                                       lambda y, want: self._fast_inverse(c, y, want))

    def extra_repr(self):
        kind = ['affine', 'rqs', 'circular'][self.kind]
        if self.order is None:
            return f"(univariate): {kind}\n(passes): {self.passes}"
        return f"(univariate): {kind}\n(order): {self.order.tolist()}"


def _check_adjacency(adjacency, features, context):
    """Rows of the MADE adjacency ``[features, features + context]`` (the diagonal
    removed; context columns all True unless given) and each feature's generation
    in the dependency graph (0 for features that depend on no other feature)."""
    a = _as_bool(adjacency)
    shape = tuple(a.shape)
    if len(shape) != 2 or shape[0] != features or shape[1] not in (features, features + context):
        want = f"({features}, {features})" + (f" or ({features}, {features + context})" if context else "")
        raise ValueError(f"MaskedAutoregressiveTransform: argument 'adjacency' has shape {shape}, expected {want}")
    a = a.tolist()
    if not all(a[i][i] for i in range(features)):
        raise ValueError("MaskedAutoregressiveTransform: argument 'adjacency' must have ones on the diagonal")
    parents = [[j for j in range(features) if j != i and a[i][j]] for i in range(features)]
    # topological generations (Kahn): a feature's generation is one more than its
    # latest parent's; what is left unvisited lies on a cycle
    generation = [None] * features
    remaining = [len(p) for p in parents]
    current, g = [i for i in range(features) if remaining[i] == 0], 0
    while current:
        nxt = []
        for j in current:
            generation[j] = g
            for i in range(features):
                if j in parents[i]:
                    remaining[i] -= 1
                    if remaining[i] == 0:
                        nxt.append(i)
        current, g = nxt, g + 1
    if any(v is None for v in generation):
        cyc = [i for i in range(features) if generation[i] is None]
        raise ValueError(f"MaskedAutoregressiveTransform: argument 'adjacency' has a cycle (through features {cyc}); "
                         f"it must describe a directed acyclic graph")
    rows = []
    for i in range(features):
        r = [bool(a[i][j]) and j != i for j in range(features)]
        r += [bool(v) for v in a[i][features:]] if shape[1] > features else [True] * context
        rows.append(r)
    return rows, generation


class MAF(Flow):
    """Masked autoregressive flow: ``transforms`` MaskedAutoregressiveTransforms with
    ascending/descending orders (or random ones with randperm=True) and a standard
    DiagNormal base."""

    def __init__(self, features, context=0, transforms=3, randperm=False, **kwargs):
        orders = [list(range(features)), list(range(features))[::-1]]
        ts = [MaskedAutoregressiveTransform(features=features, context=context,
                                            order=(_hm.randperm(features).tolist() if randperm else orders[i % 2]),
                                            **kwargs)
              for i in range(transforms)]
        base = UnconditionalDistribution(DiagNormal, loc=_hm.zeros(features), scale=_hm.ones(features), buffer=True)
        super().__init__(ts, base)
        self.context = context


class NSF(MAF):
    """Neural spline flow: MAF with monotonic rational-quadratic splines (bins, on [-5, 5])."""

    def __init__(self, features, context=0, bins=8, slope=1e-3, **kwargs):
        super().__init__(features, context, univariate="rqs", bins=bins, slope=slope, **kwargs)


class NCSF(MAF):
    """Neural circular spline flow on [-pi, pi): circular shift + spline per transform,
    BoxUniform base (zuko's NCSF)."""

    def __init__(self, features, context=0, bins=8, slope=1e-3, **kwargs):
        super().__init__(features, context, univariate="circular", bins=bins, slope=slope, **kwargs)
        self.base = UnconditionalDistribution(BoxUniform, lower=_hm.full((features,), -math.pi - 1e-5),
                                              upper=_hm.full((features,), math.pi + 1e-5), buffer=True)
