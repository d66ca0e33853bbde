"""Attention maps as labelled heatmaps.

    with hepml.nn.record_attention(model) as maps:
        model(src, tgt, src_key_padding_mask=mask)
    hepml.viz.plot_attention(maps, event=0, layer="encoder.layers.0.self_attn", head=0)

Rows are queries (the tokens that attend), columns are keys (the tokens
attended to); each row sums to 1 over the valid keys. Padded tokens (True in
the key padding mask, which ``record_attention`` stores with each map) are
drawn as grey, hatched cells and their labels greyed out, so a student sees at
once that the model never looks at them.
"""
import numpy as np

__all__ = ["plot_attention", "attention_explorer", "DEFAULT_TOKENS"]

#: The course's 16 tokens: 13 jet slots (2 VBS + 11 extra, padded), 2 leptons, MET.
DEFAULT_TOKENS = tuple([f"jet{i}" for i in range(1, 14)] + ["lep1", "lep2", "MET"])


def _select(maps, layer):
    """(name, array [B, H, L, S], kind, key padding mask or None) for `layer`."""
    if not isinstance(maps, dict):
        a = np.asarray(maps.numpy() if hasattr(maps, "numpy") else maps)
        while a.ndim < 4:
            a = a[None]
        if a.ndim != 4:
            raise ValueError(f"plot_attention(): 'maps' must be [batch, heads, queries, keys], got shape {a.shape}")
        return "attention", a, "self" if a.shape[-1] == a.shape[-2] else "cross", None
    names = list(maps.keys())
    if not names:
        raise ValueError("plot_attention(): 'maps' is empty (was the model called inside record_attention?)")
    if isinstance(layer, (int, np.integer)):
        if not -len(names) <= layer < len(names):
            raise IndexError(f"plot_attention(): layer={layer} but only {len(names)} maps were recorded: {names}")
        name = names[layer]
    elif layer in maps:
        name = layer
    else:
        hits = [n for n in names if str(layer) in n]
        if len(hits) != 1:
            raise KeyError(f"plot_attention(): layer={layer!r} matches {len(hits)} of the recorded maps {names}; "
                           f"give an index or a full name")
        name = hits[0]
    a = np.asarray(maps[name])
    kinds = getattr(maps, "kinds", {})
    masks = getattr(maps, "key_padding_masks", {})
    kind = kinds.get(name, "self" if a.shape[-1] == a.shape[-2] else "cross")
    return name, a, kind, masks.get(name)


def _labels(tokens, n, default_prefix):
    if tokens is None:
        if default_prefix is None and n <= len(DEFAULT_TOKENS):
            return list(DEFAULT_TOKENS[:n])
        return [f"{default_prefix or 'tok'}{i + 1}" for i in range(n)]
    tokens = list(tokens)
    if len(tokens) < n:
        raise ValueError(f"plot_attention(): {len(tokens)} token names given for {n} tokens")
    return [str(t) for t in tokens[:n]]


def _event_mask(mask, event, n, what):
    if mask is None:
        return np.zeros(n, bool)
    m = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask)
    if m.dtype != np.bool_:
        m = np.isneginf(m)  # a float padding mask: -inf marks padding
    if m.ndim == 2:
        m = m[event]
    if m.shape != (n,):
        raise ValueError(f"plot_attention(): '{what}' has shape {np.shape(mask)}, expected (batch, {n}) or ({n},)")
    return m


def _head_average(a):
    # averaging in hepml (C), as the rest of the package computes
    from .. import tensor

    return tensor(a).mean(dim=0).numpy()


def _draw(ax, img, rows, cols, qpad, kpad, title, cmap, vmax, annotate):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    masked = np.ma.array(img, mask=qpad[:, None] | kpad[None, :])
    cm = plt.get_cmap(cmap).with_extremes(bad="lightgrey")
    im = ax.imshow(masked, cmap=cm, vmin=0.0, vmax=vmax if vmax is not None else max(float(img.max()), 1e-6),
                   aspect="auto", interpolation="nearest")
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            if qpad[i] or kpad[j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="darkgrey",
                                       linewidth=0))
            elif annotate:
                ax.text(j, i, f"{img[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if img[i, j] < 0.6 * (vmax or img.max() or 1) else "black")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    for lab, pad in zip(ax.get_xticklabels(), kpad):
        if pad:
            lab.set_color("grey")
            lab.set_fontstyle("italic")
    for lab, pad in zip(ax.get_yticklabels(), qpad):
        if pad:
            lab.set_color("grey")
            lab.set_fontstyle("italic")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title, fontsize=9)
    return im


def plot_attention(maps, event=0, layer=0, head=0, tokens=None, query_tokens=None, mask=None, query_mask=None,
                   ax=None, cmap="viridis", annotate=None, vmax=None, colorbar=True):
    """Draw one attention map as a labelled heatmap; returns the Axes (or, with
    ``head='all'``, the Figure with one panel per head).

    maps:    what ``hepml.nn.record_attention`` yields, a dict of such arrays, or
             one array ``[batch, heads, queries, keys]`` (``[heads, q, k]`` and
             ``[q, k]`` also work).
    event:   which event of the batch.
    layer:   index into the recorded maps (call order) or a module name (or a
             unique part of one, e.g. ``'decoder.layers.0.multihead'``).
    head:    head index, ``'mean'`` (average over heads, as torch's default
             ``average_attn_weights``) or ``'all'``.
    tokens:  key token names; default the course's ``jet1..jet13, lep1, lep2, MET``
             (first S of them; ``out1..`` for a decoder's self-attention).
             ``query_tokens`` names the queries; default: the same as the keys
             for self-attention, ``out1..`` for cross-attention.
    mask:    key padding mask (True = padded), ``[batch, S]`` or ``[S]``; by default
             the one recorded with the map. For self-attention it masks the query
             rows too; ``query_mask`` masks rows of cross-attention maps.
    """
    import matplotlib.pyplot as plt

    name, a, kind, rec_mask = _select(maps, layer)
    B, H, L, S = a.shape
    if not 0 <= event < B:
        raise IndexError(f"plot_attention(): event={event} but the map holds {B} events")
    kpad = _event_mask(mask if mask is not None else rec_mask, event, S, "mask")
    if query_mask is not None:
        qpad = _event_mask(query_mask, event, L, "query_mask")
    elif kind == "self" and L == S:
        qpad = kpad
    else:
        qpad = np.zeros(L, bool)
    decoder_self = kind == "self" and "decoder" in name
    cols = _labels(tokens, S, "out" if decoder_self and tokens is None else None)
    if query_tokens is not None:
        rows = _labels(query_tokens, L, None)
    elif kind == "self" and L == S:
        rows = cols
    else:
        rows = _labels(None, L, "out")
    if annotate is None:
        annotate = L * S <= 64 and head != "all"
    kind_name = {"self": "self-attention", "cross": "cross-attention"}.get(kind, kind)
    if head == "all":
        ncol = min(H, 4)
        nrow = (H + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * (0.22 * S + 1.8), nrow * (0.22 * L + 1.8)),
                                 squeeze=False)
        vmax_all = vmax if vmax is not None else float(a[event].max())
        for h in range(nrow * ncol):
            axh = axes[h // ncol][h % ncol]
            if h >= H:
                axh.axis("off")
                continue
            im = _draw(axh, a[event, h], rows, cols, qpad, kpad, f"head {h}", cmap, vmax_all, annotate)
            if h % ncol:
                axh.set_ylabel("")
        fig.suptitle(f"{name} ({kind_name}), event {event}", fontsize=10, y=1.06)
        if colorbar:
            fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="attention probability")
        return fig
    if head == "mean":
        img, htxt = _head_average(a[event]), "mean over heads"
    else:
        if not isinstance(head, (int, np.integer)) or not -H <= head < H:
            raise IndexError(f"plot_attention(): head={head!r}; the map has {H} heads (or use 'mean' / 'all')")
        img, htxt = a[event, head], f"head {head}"
    if ax is None:
        _, ax = plt.subplots(figsize=(0.32 * S + 2.4, 0.3 * L + 1.8))
    im = _draw(ax, img, rows, cols, qpad, kpad, f"{name} ({kind_name})\nevent {event}, {htxt}", cmap, vmax,
               annotate)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="attention probability")
    return ax


def attention_explorer(maps, tokens=None, query_tokens=None, mask=None):
    """An interactive view of recorded attention maps: sliders/menus for event,
    layer and head (``'mean'``, ``'all'`` or one head). Needs ipywidgets (an
    optional dependency, in ``pip install hepml[course]``); without it, raises
    ImportError saying so (``plot_attention`` draws the same pictures)."""
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        raise ImportError("attention_explorer() needs the optional package ipywidgets (pip install ipywidgets, or "
                          "hepml[course]); without it, call hepml.viz.plot_attention(maps, event=..., layer=..., "
                          "head=...) for each picture") from None
    import matplotlib.pyplot as plt

    if isinstance(maps, dict):
        names = list(maps.keys())
        first = np.asarray(maps[names[0]])
    else:
        names = ["attention"]
        first = np.asarray(maps)
    B, H = first.shape[0], first.shape[1]

    def show(event, layer, head):
        plot_attention(maps, event=event, layer=layer if isinstance(maps, dict) else 0, head=head,
                       tokens=tokens, query_tokens=query_tokens, mask=mask)
        plt.show()

    ui = widgets.interactive(show,
                             event=widgets.IntSlider(value=0, min=0, max=B - 1, description="event"),
                             layer=widgets.Dropdown(options=names, description="layer"),
                             head=widgets.Dropdown(options=["mean", "all"] + list(range(H)), value=0,
                                                   description="head"))
    display(ui)
    return ui
