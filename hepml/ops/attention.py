"""Attention: ``scaled_dot_product_attention`` and ``multi_head_attention_forward``,
with ``torch.nn.functional``'s names, arguments and conventions.

Both run on one fused C kernel (csrc/kernels/attention.c, bound as
``hepml._C.attention``): scores, masks, softmax, dropout and the weighted sum
for every (batch, head) pair in one pass, and one autograd node. No
``[B, H, L, S]`` buffer is kept for the backward pass (it recomputes the
scores from the saved log-sum-exp of each row).

Differences from torch on purpose:

- A query whose keys are all masked gets **zero** output (and zero gradient),
  by definition, on every path. torch gives NaN there on its math paths
  (``need_weights=True``, and more paths in older versions); the course had to
  drop NaN events because of it.
- Attention weights returned with ``need_weights=True`` carry no gradient.
- Float masks are constants: a float mask that requires grad is an error.
- ``is_causal=True`` without ``attn_mask`` applies the causal mask (torch's
  ``multi_head_attention_forward`` raises: there it is only a hint). With a
  mask, both are applied, which equals torch whenever the hint is true.
- ``bias_k``/``bias_v``, ``add_zero_attn`` and ``static_k``/``static_v`` are not
  implemented (NotImplementedError).
- Dropout uses hepml's counter-based generator (``hepml.manual_seed``), so the
  dropped entries differ from torch's for the same seed.
"""
import math

from .. import _C

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


def _shape(t):
    return tuple(t.shape)


def _is_bool(m):
    return m is not None and str(getattr(m, "dtype", "")) == "bool"


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(query @ key^T * scale + mask) @ value, as ``torch.nn.functional.scaled_dot_product_attention``.

    query ``(..., L, E)``, key ``(..., S, E)``, value ``(..., S, E)`` with the same
    leading dims (e.g. ``(N, H, L, E)``); returns ``(..., L, E)``.
    ``attn_mask``: bool (True = **take part** in attention, torch's SDPA
    convention, the opposite of ``nn.MultiheadAttention``'s) or float (added to
    the scores), of shape ``(L, S)`` or broadcastable to ``(..., L, S)``.
    ``is_causal``: key j > query i is masked (top-left aligned); not together
    with ``attn_mask`` (as torch). ``scale`` defaults to ``1/sqrt(E)``.
    Dropout is applied whenever ``dropout_p > 0`` (as torch: pass 0 in eval).

    Differences: fully masked rows give zeros (torch's math path: NaN); value's last dim
    must equal query's (the fused kernel's layout)."""
    op = "scaled_dot_product_attention"
    if enable_gqa:
        raise NotImplementedError(f"{op}(): enable_gqa=True is not implemented in hepml")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not hasattr(t, "shape") or len(t.shape) < 2:
            raise ValueError(f"{op}(): argument '{name}' must have at least 2 dims (..., length, features), "
                             f"got {getattr(t, 'shape', type(t).__name__)}")
    qs, ks, vs = _shape(query), _shape(key), _shape(value)
    lead, L, E = qs[:-2], qs[-2], qs[-1]
    if ks[:-2] != lead or ks[-1] != E:
        raise ValueError(f"{op}(): argument 'key' has shape {ks}, expected {lead + ('S', E)} "
                         f"(leading dims and feature dim of 'query' {qs})")
    S = ks[-2]
    if vs[:-1] != ks[:-1]:
        raise ValueError(f"{op}(): argument 'value' has shape {vs}, expected {ks[:-1] + ('Ev',)} "
                         f"(leading dims and length of 'key' {ks})")
    if vs[-1] != E:
        raise NotImplementedError(f"{op}(): value's feature dim {vs[-1]} differs from query's {E}; hepml's fused "
                                  f"kernel needs them equal")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}(): pass either attn_mask or is_causal=True, not both (as torch)")
    N = 1
    for d in lead:
        N *= d
    q3 = _C.reshape(query, (N, L, E))
    k3 = _C.reshape(key, (N, S, E))
    v3 = _C.reshape(value, (N, S, E))
    mask = None
    if attn_mask is not None:
        if not hasattr(attn_mask, "shape"):
            raise TypeError(f"{op}(): argument 'attn_mask' must be a tensor, got {type(attn_mask).__name__}")
        ms = _shape(attn_mask)
        if str(getattr(attn_mask, "dtype", "")) not in ("bool", "float32", "float64", "float16"):
            raise TypeError(f"{op}(): argument 'attn_mask' must be a bool or float mask, got dtype {attn_mask.dtype}")
        mask = attn_mask
        if _is_bool(mask):
            # SDPA's bool masks say where attention is allowed; the kernel's where it is not.
            mask = _C.logical_not(mask)
        if len(ms) < 2 or ms[-2:] != (L, S) and not _broadcastable(ms, lead + (L, S)):
            raise ValueError(f"{op}(): argument 'attn_mask' has shape {ms}, expected (L, S) = {(L, S)} or a shape "
                             f"broadcastable to {lead + (L, S)}")
        if ms[-2:] == (L, S) and all(d == 1 for d in ms[:-2]):
            mask = _C.reshape(mask, (L, S))
        else:
            if not _broadcastable(ms, lead + (L, S)):
                raise ValueError(f"{op}(): argument 'attn_mask' has shape {ms}, which does not broadcast to "
                                 f"{lead + (L, S)}")
            mask = _C.reshape(_C.expand(mask, lead + (L, S)), (N, L, S))
    if scale is None:
        scale = 1.0 / math.sqrt(E) if E > 0 else 1.0
    out, _ = _C.attention(q3, k3, v3, 1, None, mask, bool(is_causal), float(dropout_p), False, float(scale),
                          op=op, names=("query", "key", "value", "key_padding_mask", "attn_mask"))
    return _C.reshape(out, lead + (L, E))


def _broadcastable(src, dst):
    if len(src) > len(dst):
        return False
    for a, b in zip(reversed(src), reversed(dst)):
        if a != b and a != 1:
            return False
    return True


def _slice_rows(w, start, stop):
    return None if w is None else _C.narrow(w, 0, start, stop - start)


def _mha_batch_first(query, key, value, num_heads, in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias,
                     q_proj_weight=None, k_proj_weight=None, v_proj_weight=None, key_padding_mask=None,
                     attn_mask=None, is_causal=False, dropout_p=0.0, training=True, need_weights=False,
                     average_attn_weights=True, weights_after_dropout=True, op="multi_head_attention_forward",
                     names=None):
    """The batch-first core shared by the functional form and nn.MultiheadAttention.

    query [B, L, E], key [B, S, kdim], value [B, S, vdim]. Returns
    (output [B, L, E], weights [B, H, L, S] or None): the per-head weights are
    returned whenever need_weights is true; the caller averages them."""
    E = query.shape[-1]
    p = float(dropout_p) if training else 0.0
    names = names or ("query", "key", "value", "key_padding_mask", "attn_mask")
    kw = dict(key_padding_mask=key_padding_mask, attn_mask=attn_mask, is_causal=bool(is_causal), dropout_p=p,
              need_weights=bool(need_weights), weights_after_dropout=bool(weights_after_dropout), op=op, names=names)
    if in_proj_weight is not None and key is query and value is query:
        # Self-attention: ONE GEMM with the whole [3E, E] weight gives q, k and
        # v side by side in [B, L, 3E]; the kernel reads them in place through
        # row strides and its backward writes the packed gradient, so the
        # in-projection's backward is one GEMM per operand too (and the
        # gradient of the input is a single product, not three summed).
        qkv = _C.linear(query, in_proj_weight, in_proj_bias)
        out, weights = _C.attention_packed(qkv, None, int(num_heads), **kw)
    elif in_proj_weight is not None and value is key:
        # Cross-attention on one memory: q from the first E rows of the weight,
        # k and v packed [B, S, 2E] from the other 2E rows (one GEMM).
        b_q = _slice_rows(in_proj_bias, 0, E)
        b_kv = _slice_rows(in_proj_bias, E, 3 * E)
        q = _C.linear(query, _slice_rows(in_proj_weight, 0, E), b_q)
        kv = _C.linear(key, _slice_rows(in_proj_weight, E, 3 * E), b_kv)
        out, weights = _C.attention_packed(q, kv, int(num_heads), **kw)
    else:
        if in_proj_weight is not None:
            w_q, w_k, w_v = (_slice_rows(in_proj_weight, i * E, (i + 1) * E) for i in range(3))
        else:
            w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
        if in_proj_bias is not None:
            b_q, b_k, b_v = (_slice_rows(in_proj_bias, i * E, (i + 1) * E) for i in range(3))
        else:
            b_q = b_k = b_v = None
        q = _C.linear(query, w_q, b_q)
        k = _C.linear(key, w_k, b_k)
        v = _C.linear(value, w_v, b_v)
        out, weights = _C.attention(q, k, v, int(num_heads), **kw)
    out = _C.linear(out, out_proj_weight, out_proj_bias)
    return out, weights


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """Multi-head attention with ``torch.nn.functional.multi_head_attention_forward``'s
    arguments and its **sequence-first** layout: query ``(L, N, E)``, key
    ``(S, N, kdim)``, value ``(S, N, vdim)``, or unbatched ``(L, E)``/``(S, kdim)``.

    Returns ``(output (L, N, E), weights)`` with weights ``(N, L, S)`` averaged over
    heads (``average_attn_weights``) or ``(N, H, L, S)``, or None when
    ``need_weights`` is False. In training with ``dropout_p > 0`` the weights
    are the ones after dropout (as torch). See the module docstring for the
    differences from torch (fully masked rows give zeros, not NaN)."""
    op = "multi_head_attention_forward"
    if bias_k is not None or bias_v is not None:
        raise NotImplementedError(f"{op}(): bias_k/bias_v (add_bias_kv=True) are not implemented in hepml")
    if add_zero_attn:
        raise NotImplementedError(f"{op}(): add_zero_attn=True is not implemented in hepml")
    if static_k is not None or static_v is not None:
        raise NotImplementedError(f"{op}(): static_k/static_v are not implemented in hepml")
    batched = len(query.shape) == 3
    if len(query.shape) not in (2, 3):
        raise ValueError(f"{op}(): argument 'query' must be (L, N, E) or unbatched (L, E), got shape "
                         f"{_shape(query)}")
    for name, t in (("key", key), ("value", value)):
        if len(t.shape) != len(query.shape):
            raise ValueError(f"{op}(): argument '{name}' has shape {_shape(t)}, but 'query' has shape "
                             f"{_shape(query)}: both must be batched (3-D) or unbatched (2-D)")
    if query.shape[-1] != embed_dim_to_check:
        raise ValueError(f"{op}(): was expecting embedding dimension of {embed_dim_to_check} (last dim of 'query'), "
                         f"but got {query.shape[-1]}")
    if use_separate_proj_weight:
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{op}(): key's sequence and batch dims {_shape(key)[:-1]} do not match value's "
                             f"{_shape(value)[:-1]}")
        in_w = None
    else:
        if _shape(key) != _shape(value):
            raise ValueError(f"{op}(): key shape {_shape(key)} does not match value shape {_shape(value)}")
        in_w = in_proj_weight
    if batched:
        if key.shape[1] != query.shape[1]:
            raise ValueError(f"{op}(): 'key' has batch size {key.shape[1]} (dim 1), 'query' {query.shape[1]}")
        q = _C.transpose(query, 0, 1)
        k = q if key is query else _C.transpose(key, 0, 1)
        v = k if value is key else _C.transpose(value, 0, 1)
    else:
        q = _C.unsqueeze(query, 0)
        k = q if key is query else _C.unsqueeze(key, 0)
        v = k if value is key else _C.unsqueeze(value, 0)
        if key_padding_mask is not None and len(key_padding_mask.shape) == 1:
            key_padding_mask = _C.unsqueeze(key_padding_mask, 0)
    out, w = _mha_batch_first(q, k, v, num_heads, in_w, in_proj_bias, out_proj_weight, out_proj_bias,
                              q_proj_weight, k_proj_weight, v_proj_weight, key_padding_mask, attn_mask, is_causal,
                              dropout_p, training, need_weights, average_attn_weights, op=op)
    out = _C.transpose(out, 0, 1) if batched else _C.squeeze(out, 0)
    if w is not None:
        if average_attn_weights:
            w = _C.mean(w, 1, False)
        if not batched:
            w = _C.squeeze(w, 0)
    return out, w
