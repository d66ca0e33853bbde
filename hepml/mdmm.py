"""The Modified Differential Method of Multipliers (Platt & Barr, 1988), as the
``mdmm`` package that the course uses, on hepml.

A constraint g(theta) = 0 (or <= / >= with a slack variable) is added to the
loss as the damped Lagrangian term

    scale * (lambda * g + damping * g**2 / 2)

where the multiplier lambda is trained by gradient *ascent*: the optimiser from
``MDMM.make_optimizer`` puts the multipliers in a parameter group with a
negative learning rate. Instead of hand-tuning a fixed weight for, say, an MMD
term, one states "MMD <= 1e-3" and the multiplier finds the weight.

Semantics follow mdmm 0.1.3, with two deliberate additions: constraint
functions may take arguments (``mdmm_module(loss, *args)`` passes ``args`` to
every constraint's ``fn``), and ``make_optimizer`` defaults to AdamW (the
course's choice; mdmm's default is Adamax, available as hepml.optim.Adamax).
As in mdmm, the multipliers sit in an AdamW group with a negative learning
rate, so AdamW's decoupled weight decay multiplies them by (1 + lr * wd) each
step; pass ``weight_decay=0`` through ``optimizer_kwargs`` to avoid that.
"""
import math
from dataclasses import dataclass
from typing import List

from . import ops
from ._tensor import Tensor, tensor
from .autograd import no_grad
from .nn.module import Module, ModuleList, Parameter
from .optim import AdamW


@dataclass
class ConstraintReturn:
    value: Tensor      # scale * (lambda * g + damping * g^2 / 2)
    fn_value: Tensor   # the constrained quantity
    inf: Tensor        # the infeasibility g


@dataclass
class MDMMReturn:
    value: Tensor            # loss + sum of the constraint terms: call .backward() on this
    fn_values: List[Tensor]
    infs: List[Tensor]


class Constraint(Module):
    """Base class: subclasses define ``infeasibility(fn_value)``."""

    def __init__(self, fn, scale, damping):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"{type(self).__name__}(): fn must be callable, got {type(fn).__name__}")
        if damping < 0:
            raise ValueError(f"{type(self).__name__}(): damping must be >= 0, got {damping}")
        self.fn = fn
        self.register_buffer("scale", tensor(float(scale)))
        self.register_buffer("damping", tensor(float(damping)))
        self.lmbda = Parameter(tensor(0.0))

    def extra_repr(self):
        return f"scale={self.scale.item():g}, damping={self.damping.item():g}"

    def infeasibility(self, fn_value):
        raise NotImplementedError

    def forward(self, *args):
        fn_value = self.fn(*args)
        if not isinstance(fn_value, Tensor):
            raise TypeError(f"{type(self).__name__}: the constraint function must return a hepml.Tensor, "
                            f"got {type(fn_value).__name__}")
        inf = self.infeasibility(fn_value)
        value = self.scale * (self.lmbda * inf + self.damping * (inf * inf) / 2)
        return ConstraintReturn(value, fn_value, inf)


class EqConstraint(Constraint):
    """fn(...) == value."""

    def __init__(self, fn, value, scale=1.0, damping=1.0):
        super().__init__(fn, scale, damping)
        self.register_buffer("value", tensor(float(value)))

    def extra_repr(self):
        return f"value={self.value.item():g}, " + super().extra_repr()

    def infeasibility(self, fn_value):
        return self.value - fn_value


class _SlackConstraint(Constraint):
    """Inequalities become equalities with a slack variable s: g = bound - fn - s^2.
    The slack starts NaN and is set on first use so that g starts at zero
    where the constraint already holds (as in mdmm)."""

    def __init__(self, fn, bound, scale, damping):
        super().__init__(fn, scale, damping)
        self.slack = Parameter(tensor(float("nan")))
        self._bound = float(bound)

    def _margin(self, fn_value):
        raise NotImplementedError

    def infeasibility(self, fn_value):
        if math.isnan(self.slack.item()):
            with no_grad():
                self.slack.copy_(ops.sqrt(ops.relu(self._margin(fn_value).detach())))
        return self._margin(fn_value) - self.slack * self.slack


class MaxConstraint(_SlackConstraint):
    """fn(...) <= max, with a slack variable."""

    def __init__(self, fn, max, scale=1.0, damping=1.0):
        super().__init__(fn, max, scale, damping)
        self.register_buffer("max", tensor(float(max)))

    def extra_repr(self):
        return f"max={self.max.item():g}, " + super().extra_repr()

    def _margin(self, fn_value):
        return self.max - fn_value


class MinConstraint(_SlackConstraint):
    """fn(...) >= min, with a slack variable."""

    def __init__(self, fn, min, scale=1.0, damping=1.0):
        super().__init__(fn, min, scale, damping)
        self.register_buffer("min", tensor(float(min)))

    def extra_repr(self):
        return f"min={self.min.item():g}, " + super().extra_repr()

    def _margin(self, fn_value):
        return fn_value - self.min


class MaxConstraintHard(Constraint):
    """fn(...) <= max without slack: g = min(fn, max) - fn."""

    def __init__(self, fn, max, scale=1.0, damping=1.0):
        super().__init__(fn, scale, damping)
        self.register_buffer("max", tensor(float(max)))

    def extra_repr(self):
        return f"max={self.max.item():g}, " + super().extra_repr()

    def infeasibility(self, fn_value):
        return ops.clamp(fn_value, max=self.max.item()) - fn_value


class MinConstraintHard(Constraint):
    """fn(...) >= min without slack: g = max(fn, min) - fn."""

    def __init__(self, fn, min, scale=1.0, damping=1.0):
        super().__init__(fn, scale, damping)
        self.register_buffer("min", tensor(float(min)))

    def extra_repr(self):
        return f"min={self.min.item():g}, " + super().extra_repr()

    def infeasibility(self, fn_value):
        return ops.clamp(fn_value, min=self.min.item()) - fn_value


class BoundConstraintHard(Constraint):
    """min <= fn(...) <= max without slack."""

    def __init__(self, fn, min, max, scale=1.0, damping=1.0):
        super().__init__(fn, scale, damping)
        if min > max:
            raise ValueError(f"BoundConstraintHard(): min {min} > max {max}")
        self.register_buffer("min", tensor(float(min)))
        self.register_buffer("max", tensor(float(max)))

    def extra_repr(self):
        return f"min={self.min.item():g}, max={self.max.item():g}, " + super().extra_repr()

    def infeasibility(self, fn_value):
        return ops.clamp(fn_value, min=self.min.item(), max=self.max.item()) - fn_value


class MDMM(ModuleList):
    """Combines constraints: ``mdmm_return = mdmm_module(loss)``; train on ``mdmm_return.value``."""

    def make_optimizer(self, params, *, optimizer=AdamW, lr=2e-3, **optimizer_kwargs):
        """One optimiser for the model (lr), the multipliers (-lr: ascent) and the slacks (lr)."""
        lambdas = [c.lmbda for c in self]
        slacks = [c.slack for c in self if hasattr(c, "slack")]
        groups = [{"params": list(params), "lr": lr}, {"params": lambdas, "lr": -lr}]
        if slacks:
            groups.append({"params": slacks, "lr": lr})
        return optimizer(groups, lr=lr, **optimizer_kwargs)

    def forward(self, loss, *args):
        value = loss.clone() if loss.requires_grad else loss + 0.0
        fn_values, infs = [], []
        for c in self:
            r = c(*args)
            value = value + r.value
            fn_values.append(r.fn_value)
            infs.append(r.inf)
        return MDMMReturn(value, fn_values, infs)
