"""hepml.nn: layers and models with torch.nn's names, defaults and parameter counts."""
from . import functional, init
from .module import Module, ModuleDict, ModuleList, Parameter, Sequential, count_parameters
from .layers import (ELU, GELU, Dropout, HuberLoss, Identity, L1Loss, LayerNorm, LeakyReLU, Linear, LogSoftmax,
                     MSELoss, ReLU, SELU, SiLU, Sigmoid, SmoothL1Loss, Softmax, Softplus, Tanh)
from .transformer import (MultiheadAttention, NonDynamicallyQuantizableLinear, Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer, generate_square_subsequent_mask, record_attention, AttentionMaps)  # noqa: E402,E501
