"""Basic layers with torch.nn's constructor arguments, defaults, initialisation
and parameter names."""
import math

from .. import ops as F
from ..creation import empty, ones, zeros
from . import init
from .module import Module, Parameter


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b, weight [out_features, in_features]; torch's initialisation
    (Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)))."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"Linear(): {name} must be a non-negative int, got {v!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features))
        self.bias = Parameter(empty(out_features)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self._bias = bias
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape))
            if bias:
                self.bias = Parameter(zeros(*self.normalized_shape))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self._bias}")


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout(): p must be between 0 and 1, got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


def _activation(name, fn_name, doc, params=()):
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(zip([p for p, _ in params], args))
        values.update(kwargs)
        for p, default in params:
            setattr(self, p, values.get(p, default))

    def forward(self, x):
        return getattr(F, fn_name)(x, **{p: getattr(self, p) for p, _ in params if p != "inplace"})

    def extra_repr(self):
        return ", ".join(f"{p}={getattr(self, p)}" for p, _ in params if p != "inplace")

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                  "__doc__": doc})


ReLU = _activation("ReLU", "relu", "max(0, x)", (("inplace", False),))
SELU = _activation("SELU", "selu", "Scaled ELU with the self-normalising constants.", (("inplace", False),))
ELU = _activation("ELU", "elu", "ELU(alpha)", (("alpha", 1.0), ("inplace", False)))
GELU = _activation("GELU", "gelu", "GELU (exact, or approximate='tanh')", (("approximate", "none"),))
Softplus = _activation("Softplus", "softplus", "log(1 + exp(beta x)) / beta", (("beta", 1.0), ("threshold", 20.0)))
LeakyReLU = _activation("LeakyReLU", "leaky_relu", "leaky ReLU", (("negative_slope", 0.01), ("inplace", False)))
SiLU = _activation("SiLU", "silu", "x * sigmoid(x)", (("inplace", False),))
Sigmoid = _activation("Sigmoid", "sigmoid", "1 / (1 + exp(-x))")
Tanh = _activation("Tanh", "tanh", "tanh(x)")
Softmax = _activation("Softmax", "softmax", "softmax over dim", (("dim", None),))
LogSoftmax = _activation("LogSoftmax", "log_softmax", "log-softmax over dim", (("dim", None),))


def _loss(name, fn_name, params=()):
    def __init__(self, *args, reduction="mean", **kwargs):
        Module.__init__(self)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{name}(): reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        values = dict(zip([p for p, _ in params], args))
        values.update(kwargs)
        for p, default in params:
            setattr(self, p, values.get(p, default))

    def forward(self, input, target):
        return getattr(F, fn_name)(input, target, reduction=self.reduction,
                                   **{p: getattr(self, p) for p, _ in params})

    def extra_repr(self):
        return ", ".join([f"reduction={self.reduction!r}"] + [f"{p}={getattr(self, p)}" for p, _ in params])

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr})


MSELoss = _loss("MSELoss", "mse_loss")
L1Loss = _loss("L1Loss", "l1_loss")
HuberLoss = _loss("HuberLoss", "huber_loss", (("delta", 1.0),))
SmoothL1Loss = _loss("SmoothL1Loss", "smooth_l1_loss", (("beta", 1.0),))
