"""Recording attention maps: what every attention layer of a model looked at.

    model.eval()
    with hepml.nn.record_attention(model) as maps:
        model(src, tgt, src_key_padding_mask=mask)
    maps.names()                       # ['encoder.layers.0.self_attn', ...]
    maps['encoder.layers.0.self_attn'] # NumPy array [batch, heads, queries, keys]
    hepml.viz.plot_attention(maps, event=0, layer=0, head=0)

Inside the ``with`` block each ``MultiheadAttention`` of ``model`` also
computes its per-head attention probabilities (the same fused kernel call,
asked to return them) and stores a copy, keyed by the module's name in
``model.named_modules()``: for a Transformer, ``encoder.layers.<i>.self_attn``
(encoder self-attention), ``decoder.layers.<i>.self_attn`` (decoder
self-attention) and ``decoder.layers.<i>.multihead_attn`` (cross-attention:
decoder queries, encoder keys). Recording changes no output and no gradient.

What is recorded are the softmax probabilities. In training with attention
dropout > 0 they are the probabilities before dropout unless the caller also
asked for ``need_weights=True`` (then, as torch, after dropout): record in
``eval()`` mode for clean maps. Padded keys have probability 0; a query whose
keys are all masked has an all-zero row.
"""
from contextlib import contextmanager

import numpy as np

__all__ = ["record_attention", "AttentionMaps"]


class AttentionMaps(dict):
    """``{module name: array [batch, heads, queries, keys]}`` in call order, with:

    - ``kinds[name]``: ``'self'`` (query, key and value were the same tensor) or
      ``'cross'``;
    - ``key_padding_masks[name]``: the bool key padding mask ``[batch, keys]``
      used by that call (True = padded), or None;
    - ``names()`` / ``layer(i)``: the names in order, and the i-th map.
    """

    def __init__(self, accumulate=False):
        super().__init__()
        self.kinds = {}
        self.key_padding_masks = {}
        self.accumulate = accumulate

    def names(self):
        return list(self.keys())

    def layer(self, index):
        return self[self.names()[index]]

    def _add(self, name, weights, kind, key_padding_mask):
        # The weights tensor comes from hepml's buffer pool, which reuses the
        # memory once the tensor is freed: keep a copy.
        w = np.array(weights.numpy(), copy=True)
        kpm = None
        if key_padding_mask is not None:
            m = np.asarray(key_padding_mask.numpy() if hasattr(key_padding_mask, "numpy") else key_padding_mask)
            kpm = m.astype(bool, copy=True) if m.dtype == np.bool_ else np.isneginf(m)
            if kpm.ndim == 1:
                kpm = kpm[None, :]
        if self.accumulate and name in self:
            self[name] = np.concatenate([self[name], w], axis=0)
            old = self.key_padding_masks.get(name)
            if old is not None and kpm is not None:
                self.key_padding_masks[name] = np.concatenate([old, kpm], axis=0)
            else:
                self.key_padding_masks[name] = None
        else:
            self[name] = w
            self.key_padding_masks[name] = kpm
        self.kinds[name] = kind

    def __repr__(self):
        rows = [f"  {n}: {self.kinds.get(n, '?')}-attention, shape {tuple(a.shape)}" for n, a in self.items()]
        return "AttentionMaps(\n" + "\n".join(rows) + "\n)" if rows else "AttentionMaps()"


@contextmanager
def record_attention(model, accumulate=False):
    """Record the per-head attention probabilities of every MultiheadAttention
    in ``model`` (which may itself be a MultiheadAttention) while the block
    runs; yields an :class:`AttentionMaps`.

    With ``accumulate=False`` (default) each layer keeps its last call; with
    ``accumulate=True`` successive calls (e.g. several batches) are
    concatenated along the batch axis."""
    from .transformer import MultiheadAttention

    maps = AttentionMaps(accumulate=accumulate)
    hooked = []
    for name, m in model.named_modules():
        if isinstance(m, MultiheadAttention):
            entry = (maps, name or "attention")
            m._recorders.append(entry)
            hooked.append((m, entry))
    if not hooked:
        raise ValueError(f"record_attention(): {type(model).__name__} contains no MultiheadAttention layer")
    try:
        yield maps
    finally:
        for m, entry in hooked:
            m._recorders[:] = [e for e in m._recorders if e is not entry]
