"""Attention and transformer layers with torch.nn's names, arguments, defaults,
parameter names, parameter counts and initialisation:

    MultiheadAttention, TransformerEncoderLayer, TransformerEncoder,
    TransformerDecoderLayer, TransformerDecoder, Transformer,
    generate_square_subsequent_mask

so a state dict saved by the course's PyTorch code (read with
``hepml.load_torch_state_dict``) loads into the same architecture here and
gives the same outputs.

The attention itself is one fused C kernel per call (``hepml._C.attention``):
every (batch, head) pair's scores, masks, softmax, dropout and weighted sum in
one pass, and one autograd node.

Differences from torch on purpose (also in the class docstrings):

- A query whose keys are all masked (e.g. a fully padded event) gets **zero**
  attention output, by definition (torch gives NaN on its need_weights=True
  path, and did on more paths in older versions).
- There is no "fast path": ``train()`` and ``eval()`` compute the same
  function when dropout is 0. (torch's eval fast path turns the encoder output
  at padded source tokens into zeros when ``src_key_padding_mask`` is given,
  so a decoder run without ``memory_key_padding_mask`` sees different memory
  in eval than in training. In hepml padded tokens keep their values in both
  modes; pass ``memory_key_padding_mask`` to hide them from the decoder.)
- ``is_causal=True`` without a mask applies the causal mask (torch raises in
  MultiheadAttention, where the flag is only a hint); with a mask both are
  applied, which equals torch whenever the hint is true.
- ``enable_nested_tensor``, ``mask_check``, ``device`` and ``dtype`` are
  accepted and ignored; ``add_bias_kv`` and ``add_zero_attn`` are not
  implemented (NotImplementedError).
- Attention weights returned with ``need_weights=True`` carry no gradient.
- Dropout draws from hepml's counter-based generator, not torch's.
"""
import copy
import math

from .. import _C
from .. import ops as F
from .._tensor import Tensor
from .._tensor import tensor as _tensor
from ..autograd import no_grad
from ..creation import arange, empty
from ..ops.attention import _mha_batch_first
from . import init
from .attention_maps import AttentionMaps, record_attention  # noqa: F401  (re-exported by hepml.nn)
from .layers import Dropout, LayerNorm, Linear
from .module import Module, ModuleList, Parameter

__all__ = ["MultiheadAttention", "NonDynamicallyQuantizableLinear", "TransformerEncoderLayer", "TransformerEncoder",
           "TransformerDecoderLayer", "TransformerDecoder", "Transformer", "generate_square_subsequent_mask",
           "record_attention", "AttentionMaps"]


def _as_tensor(x):
    return x if x is None or isinstance(x, Tensor) else _tensor(x)


def _shape(t):
    return tuple(t.shape)


def _check_int(op, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{op}(): argument '{name}' must be an int >= {minimum}, got {value!r}")


def _check_dropout(op, p):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}(): argument 'dropout' must be a probability in [0, 1], got {p!r}")


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """The float causal mask ``(sz, sz)``: 0 on and below the diagonal, -inf
    above it (query i may attend to keys 0..i), as
    ``torch.nn.Transformer.generate_square_subsequent_mask``. ``device`` and
    ``dtype`` are accepted for compatibility (the mask is float32)."""
    _check_int("generate_square_subsequent_mask", "sz", sz, 0)
    i = arange(sz)
    future = _C.gt(_C.unsqueeze(i, 0), _C.unsqueeze(i, 1))
    return _C.where(future, float("-inf"), 0.0)


def _detect_is_causal_mask(mask, is_causal=None, size=None):
    """torch's rule: is_causal=True is believed; None means "is ``mask`` exactly
    the square causal mask?"."""
    if is_causal is True:
        return True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.shape[-2]
        if _shape(mask) != (sz, sz):
            return False
        with no_grad():
            return bool(F.all(F.eq(_as_tensor(mask), generate_square_subsequent_mask(sz))).numpy())
    return False


# ----------------------------------------------------------------------- MHA


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear under the class name torch uses for ``MultiheadAttention.out_proj``
    (same parameters: ``weight``, ``bias``)."""


class MultiheadAttention(Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention``.

    ``MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True,
    add_bias_kv=False, add_zero_attn=False, kdim=None, vdim=None, batch_first=False)``

    Parameters as torch: ``in_proj_weight [3E, E]`` (rows: q; k; v) when
    kdim == vdim == embed_dim, otherwise ``q_proj_weight [E, E]``,
    ``k_proj_weight [E, kdim]``, ``v_proj_weight [E, vdim]``; ``in_proj_bias
    [3E]``; ``out_proj`` (weight ``[E, E]``, bias ``[E]``). Initialisation as
    torch: Xavier-uniform input projections, zero biases, ``out_proj.weight`` as
    a Linear.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(output, weights)``. Inputs are ``(L, N, E)`` (or ``(N, L, E)`` with
    batch_first=True) or unbatched ``(L, E)``. ``key_padding_mask (N, S)``:
    bool True = ignore that key, or float added. ``attn_mask (L, S)`` or
    ``(N*num_heads, L, S)``: bool True = not allowed, or float added. Weights:
    ``(N, L, S)`` averaged over heads, or ``(N, num_heads, L, S)`` with
    ``average_attn_weights=False``; after dropout in training (as torch); no
    gradient flows through them.

    Differences from torch: a query row with every key masked gives a zero
    output (torch with need_weights=True: NaN); ``is_causal=True`` without ``attn_mask`` applies the
    causal mask (torch raises); ``add_bias_kv``/``add_zero_attn`` raise
    NotImplementedError.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        op = "MultiheadAttention"
        _check_int(op, "embed_dim", embed_dim)
        _check_int(op, "num_heads", num_heads)
        if embed_dim % num_heads != 0:
            raise ValueError(f"{op}(): embed_dim={embed_dim} must be divisible by num_heads={num_heads} "
                             f"(each head gets embed_dim // num_heads features)")
        _check_dropout(op, dropout)
        if add_bias_kv:
            raise NotImplementedError(f"{op}(): add_bias_kv=True is not implemented in hepml")
        if add_zero_attn:
            raise NotImplementedError(f"{op}(): add_zero_attn=True is not implemented in hepml")
        kdim = embed_dim if kdim is None else kdim
        vdim = embed_dim if vdim is None else vdim
        _check_int(op, "kdim", kdim)
        _check_int(op, "vdim", vdim)
        self.embed_dim, self.kdim, self.vdim = embed_dim, kdim, vdim
        self._qkv_same_embed_dim = kdim == embed_dim and vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.head_dim = embed_dim // num_heads
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim))
            self.k_proj_weight = Parameter(empty(embed_dim, kdim))
            self.v_proj_weight = Parameter(empty(embed_dim, vdim))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias)
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        self._recorders = []  # (AttentionMaps, name) pairs set by hepml.nn.record_attention
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def extra_repr(self):
        return ""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        return self._attend(query, key, value, key_padding_mask, attn_mask, is_causal, need_weights,
                            average_attn_weights)

    def _attend(self, query, key, value, key_padding_mask=None, attn_mask=None, is_causal=False,
                need_weights=False, average_attn_weights=True, op="MultiheadAttention.forward", names=None):
        """forward with the argument names of the caller in error messages
        (names = (query, key, value, key_padding_mask, attn_mask))."""
        names = names or ("query", "key", "value", "key_padding_mask", "attn_mask")
        kind = "self" if (key is query and value is query) else "cross"
        same_kv = value is key
        query = _as_tensor(query)
        key = query if kind == "self" else _as_tensor(key)
        value = key if same_kv else _as_tensor(value)
        nd = query.ndim
        layout = "(batch, seq, embed_dim)" if self.batch_first else "(seq, batch, embed_dim)"
        if nd not in (2, 3):
            raise ValueError(f"{op}(): argument '{names[0]}' must be 3-D {layout} or 2-D unbatched (seq, embed_dim), "
                             f"got shape {_shape(query)}")
        for n, t in ((names[1], key), (names[2], value)):
            if t.ndim != nd:
                raise ValueError(f"{op}(): argument '{n}' has shape {_shape(t)} but '{names[0]}' has shape "
                                 f"{_shape(query)}: both must be {'3-D ' + layout if nd == 3 else '2-D (unbatched)'}")
        for n, t, want, what in ((names[0], query, self.embed_dim, "embed_dim"), (names[1], key, self.kdim, "kdim"),
                                 (names[2], value, self.vdim, "vdim")):
            if t.shape[-1] != want:
                raise ValueError(f"{op}(): argument '{n}' has shape {_shape(t)}, its last dim must be "
                                 f"{what}={want}")
        if nd == 3:
            if self.batch_first:
                q, k, v = query, key, value
            else:
                q = _C.transpose(query, 0, 1)
                k = q if key is query else _C.transpose(key, 0, 1)
                v = k if value is key else _C.transpose(value, 0, 1)
        else:
            q = _C.unsqueeze(query, 0)
            k = q if key is query else _C.unsqueeze(key, 0)
            v = k if value is key else _C.unsqueeze(value, 0)
            if key_padding_mask is not None and len(key_padding_mask.shape) == 1:
                key_padding_mask = _C.unsqueeze(_as_tensor(key_padding_mask), 0)
        if k.shape[0] != q.shape[0]:
            raise ValueError(f"{op}(): '{names[1]}' has batch size {k.shape[0]} but '{names[0]}' has {q.shape[0]} "
                             f"(shapes {_shape(key)} and {_shape(query)}, batch_first={self.batch_first})")
        if _shape(k)[:2] != _shape(v)[:2]:
            raise ValueError(f"{op}(): '{names[1]}' {_shape(key)} and '{names[2]}' {_shape(value)} must have the same "
                             f"batch size and sequence length")
        recording = bool(self._recorders)
        out, w = _mha_batch_first(q, k, v, self.num_heads, self.in_proj_weight, self.in_proj_bias,
                                  self.out_proj.weight, self.out_proj.bias, self.q_proj_weight, self.k_proj_weight,
                                  self.v_proj_weight, key_padding_mask, attn_mask, is_causal, self.dropout,
                                  self.training, need_weights or recording, average_attn_weights,
                                  weights_after_dropout=bool(need_weights), op=op, names=names)
        if recording:
            for maps, name in self._recorders:
                maps._add(name, w, kind, key_padding_mask)
        if nd == 3:
            if not self.batch_first:
                out = _C.transpose(out, 0, 1)
        else:
            out = _C.squeeze(out, 0)
        if not need_weights:
            return out, None
        if average_attn_weights:
            w = _C.mean(w, 1, False)
        if nd == 2:
            w = _C.squeeze(w, 0)
        return out, w


# ------------------------------------------------------------------- layers


def _get_activation(op, activation):
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise ValueError(f"{op}(): argument 'activation' must be 'relu', 'gelu' or a callable, got {activation!r}")
    if not callable(activation):
        raise ValueError(f"{op}(): argument 'activation' must be 'relu', 'gelu' or a callable, "
                         f"got {type(activation).__name__}")
    return activation


def _check_layer_args(op, d_model, nhead, dim_feedforward, dropout):
    _check_int(op, "d_model", d_model)
    _check_int(op, "nhead", nhead)
    _check_int(op, "dim_feedforward", dim_feedforward)
    if d_model % nhead != 0:
        raise ValueError(f"{op}(): d_model={d_model} must be divisible by nhead={nhead} "
                         f"(each head gets d_model // nhead features)")
    _check_dropout(op, dropout)


def _check_input(op, name, x, d_model, batch_first):
    layout = "(batch, seq, d_model)" if batch_first else "(seq, batch, d_model)"
    if not hasattr(x, "shape"):
        raise TypeError(f"{op}(): argument '{name}' must be a tensor, got {type(x).__name__}")
    if len(x.shape) not in (2, 3) or x.shape[-1] != d_model:
        raise ValueError(f"{op}(): argument '{name}' has shape {_shape(x)}, expected 3-D {layout} with "
                         f"d_model={d_model} (batch_first={batch_first}), or 2-D unbatched (seq, {d_model})")


def _seq_len(x, batch_first):
    if len(x.shape) == 2:
        return x.shape[0]
    return x.shape[1 if batch_first else 0]


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block, as ``torch.nn.TransformerEncoderLayer``.

    ``TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation='relu', layer_norm_eps=1e-5, batch_first=False, norm_first=False,
    bias=True)``; ``activation`` is 'relu', 'gelu' or a callable. Sub-modules
    (and so parameter names and counts) as torch: ``self_attn``, ``linear1``,
    ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``.
    Post-norm (default): ``x = norm1(x + SA(x)); x = norm2(x + FF(x))``;
    ``norm_first=True``: ``x = x + SA(norm1(x)); x = x + FF(norm2(x))``.
    No eval fast path: train() and eval() agree when dropout is 0, and a fully
    masked query gives zero attention output (never NaN).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        op = type(self).__name__
        _check_layer_args(op, d_model, nhead, dim_feedforward, dropout)
        act = _get_activation(op, activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = act
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        op = type(self).__name__ + ".forward"
        src = _as_tensor(src)
        _check_input(op, "src", src, self.d_model, self.batch_first)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal, op)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal, op))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, op):
        x = self.self_attn._attend(x, x, x, key_padding_mask, attn_mask, bool(is_causal), False, op=op,
                                   names=("src", "src", "src", "src_key_padding_mask", "src_mask"))[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerDecoderLayer(Module):
    """Self-attention + cross-attention + feed-forward block, as
    ``torch.nn.TransformerDecoderLayer`` (same arguments as the encoder layer).

    Sub-modules: ``self_attn``, ``multihead_attn`` (cross-attention to the
    memory), ``linear1``, ``dropout``, ``linear2``, ``norm1..3``, ``dropout1..3``.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None,
    tgt_is_causal=False, memory_is_causal=False)``; ``memory_mask`` is
    ``(T, S)`` (or ``(N*nhead, T, S)``), ``memory_key_padding_mask`` ``(N, S)``.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        op = type(self).__name__
        _check_layer_args(op, d_model, nhead, dim_feedforward, dropout)
        act = _get_activation(op, activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = act
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        op = type(self).__name__ + ".forward"
        tgt, memory = _as_tensor(tgt), _as_tensor(memory)
        _check_input(op, "tgt", tgt, self.d_model, self.batch_first)
        _check_input(op, "memory", memory, self.d_model, self.batch_first)
        if len(tgt.shape) != len(memory.shape):
            raise ValueError(f"{op}(): 'tgt' {_shape(tgt)} and 'memory' {_shape(memory)} must both be batched "
                             f"(3-D) or both unbatched (2-D)")
        if len(tgt.shape) == 3:
            bd = 0 if self.batch_first else 1
            if tgt.shape[bd] != memory.shape[bd]:
                raise ValueError(f"{op}(): 'tgt' {_shape(tgt)} and 'memory' {_shape(memory)} have different batch "
                                 f"sizes (dim {bd}, batch_first={self.batch_first})")
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal, op)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal, op)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal, op))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal,
                                               op))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, op):
        x = self.self_attn._attend(x, x, x, key_padding_mask, attn_mask, bool(is_causal), False, op=op,
                                   names=("tgt", "tgt", "tgt", "tgt_key_padding_mask", "tgt_mask"))[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal, op):
        x = self.multihead_attn._attend(x, mem, mem, key_padding_mask, attn_mask, bool(is_causal), False, op=op,
                                        names=("tgt", "memory", "memory", "memory_key_padding_mask",
                                               "memory_mask"))[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)


def _clones(layer, n):
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


class TransformerEncoder(Module):
    """A stack of ``num_layers`` deep copies of ``encoder_layer`` and an optional
    final ``norm``, as ``torch.nn.TransformerEncoder`` (parameter names
    ``layers.<i>.…`` and ``norm.…``).

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``;
    with ``is_causal=None`` a mask equal to ``generate_square_subsequent_mask``
    is recognised as causal (as torch). ``enable_nested_tensor`` and
    ``mask_check`` are accepted and ignored: hepml has no nested-tensor fast
    path, so padded tokens keep their (finite) values in eval as in training.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        op = "TransformerEncoder"
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"{op}(): argument 'encoder_layer' must be a Module (e.g. TransformerEncoderLayer), "
                            f"got {type(encoder_layer).__name__}")
        _check_int(op, "num_layers", num_layers, 0)
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.add_module("norm", norm)
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        src = _as_tensor(src)
        batch_first = getattr(self.layers[0], "batch_first", False) if len(self.layers) else False
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first) if hasattr(src, "shape")
                                           else None)
        out = src
        for mod in self.layers:
            out = mod(out, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            out = self.norm(out)
        return out


class TransformerDecoder(Module):
    """A stack of ``num_layers`` deep copies of ``decoder_layer`` and an optional
    final ``norm``, as ``torch.nn.TransformerDecoder``.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None,
    tgt_is_causal=None, memory_is_causal=False)``.
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        op = "TransformerDecoder"
        if not isinstance(decoder_layer, Module):
            raise TypeError(f"{op}(): argument 'decoder_layer' must be a Module (e.g. TransformerDecoderLayer), "
                            f"got {type(decoder_layer).__name__}")
        _check_int(op, "num_layers", num_layers, 0)
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.add_module("norm", norm)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        tgt = _as_tensor(tgt)
        batch_first = getattr(self.layers[0], "batch_first", False) if len(self.layers) else False
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal,
                                               _seq_len(tgt, batch_first) if hasattr(tgt, "shape") else None)
        out = tgt
        for mod in self.layers:
            out = mod(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """The encoder-decoder transformer, as ``torch.nn.Transformer``.

    ``Transformer(d_model=512, nhead=8, num_encoder_layers=6,
    num_decoder_layers=6, dim_feedforward=2048, dropout=0.1, activation='relu',
    custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
    batch_first=False, norm_first=False, bias=True)``: ``encoder``
    (TransformerEncoder with a final LayerNorm ``encoder.norm``) and ``decoder``
    (TransformerDecoder with ``decoder.norm``); every parameter with more than
    one dim is re-initialised Xavier-uniform (torch's ``_reset_parameters``).

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
    src_key_padding_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
    memory_is_causal=False)``. The decoder may have a different number of
    tokens than the encoder.
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        op = "Transformer"
        _check_layer_args(op, d_model, nhead, dim_feedforward, dropout)
        _check_int(op, "num_encoder_layers", num_encoder_layers, 0)
        _check_int(op, "num_decoder_layers", num_decoder_layers, 0)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, LayerNorm(d_model, eps=layer_norm_eps,
                                                                                   bias=bias))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, LayerNorm(d_model, eps=layer_norm_eps,
                                                                                   bias=bias))
        self._reset_parameters()
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        op = "Transformer.forward"
        src, tgt = _as_tensor(src), _as_tensor(tgt)
        _check_input(op, "src", src, self.d_model, self.batch_first)
        _check_input(op, "tgt", tgt, self.d_model, self.batch_first)
        if len(src.shape) == 3 and len(tgt.shape) == 3:
            bd = 0 if self.batch_first else 1
            if src.shape[bd] != tgt.shape[bd]:
                raise ValueError(f"{op}(): the batch number of 'src' {_shape(src)} and 'tgt' {_shape(tgt)} must be "
                                 f"equal (dim {bd}, batch_first={self.batch_first})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)
