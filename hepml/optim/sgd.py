from .. import _C
from .optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent with torch.optim.SGD's momentum, dampening,
    Nesterov and (L2) weight-decay semantics. The update runs in C."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD(): momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD(): Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            grads = [p.grad for p in ps]
            if g["momentum"] != 0:
                fresh = [p for p in ps if p not in self.state]
                for p in ps:
                    self._state_for(p, ["momentum_buffer"])
                # parameters seen for the first time start their buffer from the gradient
                for first, group in ((True, fresh), (False, [p for p in ps if p not in fresh])):
                    if group:
                        _C._sgd_step(group, [p.grad for p in group], [self.state[p]["momentum_buffer"] for p in group],
                                     g["lr"], g["momentum"], g["dampening"], g["weight_decay"], g["nesterov"], first)
            else:
                _C._sgd_step(ps, grads, None, g["lr"], 0.0, 0.0, g["weight_decay"], False, False)
        return loss
