"""hepml.nn.functional: the functional forms of the layers (as torch.nn.functional)."""
from .. import ops as _ops

_NAMES = ["linear", "layer_norm", "dropout", "relu", "selu", "elu", "gelu", "softplus", "leaky_relu", "silu",
          "sigmoid", "tanh", "softmax", "log_softmax", "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss",
          "multi_head_attention_forward", "scaled_dot_product_attention", "logsigmoid", "pad", "one_hot"]

__all__ = []
for _n in _NAMES:
    if hasattr(_ops, _n):
        globals()[_n] = getattr(_ops, _n)
        __all__.append(_n)
