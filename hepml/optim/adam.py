from .. import _C
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam with torch.optim.Adam's semantics (L2 weight decay added to the
    gradient, bias correction, optional AMSGrad). The update runs in C."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=None, amsgrad=False):
        if weight_decay is None:
            weight_decay = 1e-2 if self._decoupled else 0.0
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{type(self).__name__}(): betas must be in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}(): eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        # lr may be negative in a parameter group: MDMM ascends on its multipliers that way
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if g["amsgrad"] else [])
            states = [self._state_for(p, names) for p in ps]
            for st in states:
                st["step"] += 1
            b1, b2 = g["betas"]
            _C._adam_step(ps, [p.grad for p in ps], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                          [s["max_exp_avg_sq"] for s in states] if g["amsgrad"] else None,
                          [s["step"] for s in states], g["lr"], b1, b2, g["eps"], g["weight_decay"], self._decoupled)
        return loss


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (p <- p (1 - lr wd)), default
    weight_decay 1e-2, as torch.optim.AdamW."""

    _decoupled = True


class Adamax(Optimizer):
    """Adamax (Adam with an infinity-norm second moment), as torch.optim.Adamax;
    mdmm's default optimiser."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adamax(): betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            states = [self._state_for(p, ["exp_avg", "exp_inf"]) for p in ps]
            for st in states:
                st["step"] += 1
            b1, b2 = g["betas"]
            _C._adamax_step(ps, [p.grad for p in ps], [s["exp_avg"] for s in states], [s["exp_inf"] for s in states],
                            [s["step"] for s in states], g["lr"], b1, b2, g["eps"], g["weight_decay"])
        return loss
