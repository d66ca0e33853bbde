"""hepml.viz: pictures for the course (matplotlib is imported only when drawing).

- ``plot_attention(maps, event=0, layer=0, head=0, tokens=None, mask=None)``:
  labelled attention heatmaps from ``hepml.nn.record_attention``;
- ``attention_explorer(maps, ...)``: pick event, layer and head interactively
  (needs ipywidgets).
"""
from .attention import DEFAULT_TOKENS, attention_explorer, plot_attention  # noqa: F401
from .validation import regression_summary, validation_plots  # noqa: F401

__all__ = ["plot_attention", "attention_explorer", "DEFAULT_TOKENS", "validation_plots", "regression_summary"]
