"""Optimizer base class: parameter groups and per-parameter state, as torch.optim."""
from .. import _C
from ..creation import zeros_like


class Optimizer:
    """Holds ``param_groups`` (lists of parameters with their own options, e.g.
    a negative learning rate for MDMM's multipliers) and per-parameter state."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a param group must be a dict with a 'params' entry")
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if hasattr(ps, "requires_grad") else list(ps)
        for p in group["params"]:
            if not hasattr(p, "requires_grad") or p.dtype != "float32":
                raise TypeError(f"optimizer can only optimize float32 tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf tensor (use .detach().requires_grad_() to make a leaf)")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    _C.fill_(p.grad, 0.0)

    def _state_for(self, p, names):
        st = self.state.get(p)
        if st is None:
            st = {"step": 0}
            for n in names:
                st[n] = zeros_like(p)
            self.state[p] = st
        return st

    def state_dict(self):
        """Options and state by parameter index (as torch), values as hepml tensors."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.detach() if hasattr(v, "detach") else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, groups):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError("loaded state dict has a group of a different size")
            for k, v in saved.items():
                if k != "params":
                    g[k] = v
        from .._tensor import tensor
        self.state = {}
        for idx, st in state_dict["state"].items():
            p = params[int(idx)]
            self.state[p] = {k: (tensor(v) if hasattr(v, "shape") and not isinstance(v, int) else v)
                             for k, v in st.items()}

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"
