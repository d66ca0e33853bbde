"""The course's W-boson regression models (notebook 3, "WW regression").

The course builds one model in stages; each class here is one stage, with the
course's attribute names, so a state dict saved by the course's PyTorch code
(``torch.save(model.state_dict(), path)``) loads with::

    model = WWRegressorComplete()            # same constructor arguments as in torch
    model.load_state_dict(hepml.load_torch_state_dict(path))

and gives the same outputs.

- ``MaskedTransformer`` (step 2): an encoder-decoder transformer with a source
  padding mask. Fed raw jets and two null decoder tokens it gives ``[B, 2, F]``:
  the right shape, meaningless numbers, too little capacity.
- ``WWRegressor`` (step 3): jets embedded to ``d_model`` (Linear + SELU) and a
  regression head ``(Linear + SELU)* -> Linear`` mapping each decoder token to
  the 4 W features (pt, eta, phi, m).
- ``WWRegressorComplete`` (step 4): jets, leptons and MET, each with its own
  embedding to ``d_model - 1`` and a type label column (jet 0, lepton 1,
  MET -1): 16 tokens, one mask.
- ``WWRegressorWOrdered`` (step 5): trained with MSE, the complete model
  predicts the same W twice (its two decoder tokens are equal and the decoder
  has no positions). With eta-ordered targets and a second null token of ones
  the two outputs can differ.

MASKS — read this before calling any of these models.
    The models take PyTorch **key-padding** masks: ``True`` = padding, ignore
    this token. hepml's datasets (``jet_padding_mask``,
    ``jetlepmet_padding_mask``) store the opposite, ``True`` = real object
    (pt > 0). Pass the negation::

        out = model(jets, leptons, met, ~batch["jetlepmet_padding_mask"])

    (The course calls this argument ``src_mask``/``full_mask``; it is *not* an
    attention mask.) Masks must be bool tensors or arrays. Since the first two
    jet slots (the VBS jets), the leptons and the MET are real in every event,
    a mask that marks all of them as padding in the whole batch is almost
    certainly a dataset mask passed without ``~``; the models refuse it with an
    error saying so (set ``model.check_mask = False`` to skip this check).

Differences from the course's PyTorch classes, on purpose:

- An extra keyword ``dropout`` (default 0.1, torch's Transformer default, which
  the course classes use implicitly) is passed to the transformer. It has no
  parameters, so state dicts are unaffected.
- Inputs are checked (shapes, dtypes, d_model / nhead) with errors naming the
  argument, the shape it got and the shape it needs.
- hepml's transformer has no eval "fast path". torch, in ``eval()`` under
  ``torch.no_grad()``, may run the encoder on nested tensors when the padding
  is at the end of each event (the jets-only ``WWRegressor``), which sets the
  encoder output of padded tokens to zero before the final LayerNorm; as the
  course passes no ``memory_key_padding_mask``, the decoder then sees other
  memory values than in training. hepml always computes the training-mode
  function (which is also torch's eval function with gradients enabled), so
  ``train()`` and ``eval()`` agree when dropout is 0.
"""
import numpy as np

from .. import nn
from .. import ops as F
from .._tensor import Tensor
from .._tensor import tensor as _tensor
from ..autograd import no_grad
from ..creation import zeros
from .common import embedding, get_obj_type_tensor

__all__ = ["MaskedTransformer", "WWRegressor", "WWRegressorComplete", "WWRegressorWOrdered"]

_NP_BOOL = np.dtype(np.bool_)
_NP_F32 = np.dtype(np.float32)


# ------------------------------------------------------------ argument checks


def _check_int(op, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{op}(): argument '{name}' must be an int >= {minimum}, got {value!r}")


def _check_dropout(op, p):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}(): argument 'dropout' must be a probability in [0, 1], got {p!r}")


def _check_transformer_args(op, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout):
    _check_int(op, "d_model", d_model)
    _check_int(op, "nhead", nhead)
    _check_int(op, "num_encoder_layers", num_encoder_layers, 0)
    _check_int(op, "num_decoder_layers", num_decoder_layers, 0)
    _check_int(op, "dim_feedforward", dim_feedforward)
    _check_dropout(op, dropout)
    if d_model % nhead != 0:
        raise ValueError(f"{op}(): d_model={d_model} must be divisible by nhead={nhead} "
                         f"(each attention head gets d_model // nhead features)")


def _check_hidden(op, regression_net):
    try:
        sizes = list(regression_net)
    except TypeError:
        raise ValueError(f"{op}(): argument 'regression_net' must be a list of hidden layer sizes such as "
                         f"[64, 64], got {regression_net!r}") from None
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"{op}(): argument 'regression_net' must be a non-empty list of positive ints "
                         f"(hidden layer sizes, e.g. [64, 64]), got {regression_net!r}")
    return sizes


def _regression_net(d_model, hidden, output_dim):
    """Linear(d_model, h0) SELU [Linear(h_i, h_i+1) SELU]... Linear(h_last, output_dim): the course's
    head, applied to each decoder token; no activation at the end (the targets are standardised, any
    sign)."""
    layers = [nn.Linear(d_model, hidden[0]), nn.SELU()]
    for a, b in zip(hidden[:-1], hidden[1:]):
        layers += [nn.Linear(a, b), nn.SELU()]
    layers.append(nn.Linear(hidden[-1], output_dim))
    return nn.Sequential(*layers)


def _as_input(op, name, x):
    if isinstance(x, Tensor):
        return x
    if x is None:
        raise TypeError(f"{op}(): argument '{name}' is required, got None")
    try:
        return _tensor(x)
    except Exception:  # noqa: BLE001  (any conversion failure is the caller's argument)
        raise TypeError(f"{op}(): argument '{name}' must be a tensor or array, got {type(x).__name__}") from None


def _check_features(op, name, x, tokens, features, hint):
    """x must be float [B, tokens, features] (tokens None = any)."""
    shape = tuple(x.shape)
    want = f"(batch, {'tokens' if tokens is None else tokens}, {features})"
    if x.dtype != _NP_F32:
        raise TypeError(f"{op}(): argument '{name}' must be float32 {want}, got dtype {x.dtype}")
    if len(shape) != 3 or (tokens is not None and shape[1] != tokens) or shape[2] != features:
        raise ValueError(f"{op}(): argument '{name}' has shape {shape}, expected {want} ({hint})")


def _check_padding_mask(op, name, mask, batch, tokens, hint):
    """mask must be a bool key-padding mask [batch, tokens] (True = ignore)."""
    shape = tuple(mask.shape)
    if mask.dtype != _NP_BOOL:
        raise TypeError(f"{op}(): argument '{name}' must be a bool key-padding mask (True = padding, ignore), "
                        f"got dtype {mask.dtype}; a hepml dataset mask (True = real object) is passed as ~mask")
    if shape != (batch, tokens):
        raise ValueError(f"{op}(): argument '{name}' has shape {shape}, expected ({batch}, {tokens}) "
                         f"= (batch, {hint})")


def _check_not_inverted(op, name, mask, start, stop, what):
    """Tokens start..stop-1 are real in every event of the course's data; all of them marked as
    padding in the whole batch means a True = real mask was passed without negation."""
    with no_grad():
        cols = F.narrow(mask, 1, start, stop - start)
        inverted = bool(F.all(cols).numpy())
    if inverted:
        raise ValueError(f"{op}(): argument '{name}' marks {what} as padding (True = ignore) in every event. "
                         f"This looks like a dataset mask (True = real object): pass its negation, ~mask. "
                         f"(Set model.check_mask = False to allow such a mask.)")


# ----------------------------------------------------------------- the models


class MaskedTransformer(nn.Module):
    """Course step 2: an encoder-decoder transformer whose source may be padded.

    ``MaskedTransformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
    dim_feedforward=512, dropout=0.1)`` holds ``transformer =
    hepml.nn.Transformer(..., batch_first=True)`` (state-dict keys
    ``transformer.encoder...`` / ``transformer.decoder...`` as in torch).

    ``forward(src, tgt, src_mask=None, tgt_mask=None)``: ``src`` ``[B, S,
    d_model]`` (the objects), ``tgt`` ``[B, T, d_model]`` (the decoder tokens,
    T may differ from S); returns ``[B, T, d_model]``.

    **``src_mask`` and ``tgt_mask`` are KEY-PADDING masks** ``[B, S]`` /
    ``[B, T]``, bool, ``True = padding, ignore this token`` (the course's
    names; they go to ``src_key_padding_mask`` / ``tgt_key_padding_mask``,
    not to the attention-mask arguments of ``nn.Transformer``). hepml datasets
    give ``True = real object``: pass ``~mask``. The decoder's cross-attention
    is not masked (as in the course), so it also reads the encoder outputs of
    padded tokens.
    """

    def __init__(self, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward=512, dropout=0.1):
        super().__init__()
        op = type(self).__name__
        _check_transformer_args(op, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                dropout)
        self.transformer = nn.Transformer(d_model=d_model, nhead=nhead, num_encoder_layers=num_encoder_layers,
                                          num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward,
                                          dropout=dropout, batch_first=True)
        self.d_model = d_model

    def forward(self, src, tgt, src_mask=None, tgt_mask=None):
        op = type(self).__name__ + ".forward"
        src, tgt = _as_input(op, "src", src), _as_input(op, "tgt", tgt)
        for name, x in (("src", src), ("tgt", tgt)):
            if len(x.shape) != 3 or x.shape[2] != self.d_model:
                raise ValueError(f"{op}(): argument '{name}' has shape {tuple(x.shape)}, expected "
                                 f"(batch, tokens, {self.d_model}) (d_model={self.d_model}, batch first)")
        if src.shape[0] != tgt.shape[0]:
            raise ValueError(f"{op}(): 'src' {tuple(src.shape)} and 'tgt' {tuple(tgt.shape)} have different batch "
                             f"sizes")
        if src_mask is not None:
            src_mask = _as_input(op, "src_mask", src_mask)
            _check_padding_mask(op, "src_mask", src_mask, src.shape[0], src.shape[1], "source tokens")
        if tgt_mask is not None:
            tgt_mask = _as_input(op, "tgt_mask", tgt_mask)
            _check_padding_mask(op, "tgt_mask", tgt_mask, tgt.shape[0], tgt.shape[1], "decoder tokens")
        return self.transformer(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)


class WWRegressor(nn.Module):
    """Course step 3: the two Ws regressed from the jets alone.

    ``WWRegressor(d_model=128, nhead=8, num_encoder_layers=2,
    num_decoder_layers=2, dim_feedforward=512, output_dim=4,
    regression_net=[64, 64], jet_features=5, dropout=0.1)``

    Sub-modules and buffers (state-dict keys as the course's torch class):
    ``embedding_jets`` = Sequential(Linear(jet_features, d_model), SELU()),
    ``transformer`` (``MaskedTransformer``), ``regression_net`` =
    Sequential(Linear(d_model, h0), SELU(), ..., Linear(h_last, output_dim)),
    buffer ``decoder_null_tokens`` = zeros(2, d_model): the two decoder
    queries, one per W.

    ``forward(jets, jet_mask)``: ``jets`` ``[B, n_jets, jet_features]``,
    ``jet_mask`` ``[B, n_jets]`` bool **key-padding mask, True = padding**
    (pass ``~batch["jet_padding_mask"]``). Returns ``[B, 2, output_dim]``.

    What the stage teaches: embedding the inputs into the transformer's width
    gives the attention something to work with, and a small per-token head
    turns each decoder output into (pt, eta, phi, m) of one W.
    """

    def __init__(self, d_model=128, nhead=8, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=512,
                 output_dim=4, regression_net=(64, 64), jet_features=5, dropout=0.1):
        super().__init__()
        op = type(self).__name__
        _check_transformer_args(op, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                dropout)
        _check_int(op, "output_dim", output_dim)
        _check_int(op, "jet_features", jet_features)
        hidden = _check_hidden(op, regression_net)
        self.embedding_jets = embedding(jet_features, d_model)
        self.transformer = MaskedTransformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                             dim_feedforward, dropout)
        self.regression_net = _regression_net(d_model, hidden, output_dim)
        self.register_buffer("decoder_null_tokens", zeros(2, d_model))
        self.d_model, self.jet_features, self.output_dim = d_model, jet_features, output_dim
        self.check_mask = True

    def forward(self, jets, jet_mask):
        op = type(self).__name__ + ".forward"
        jets = _as_input(op, "jets", jets)
        jet_mask = _as_input(op, "jet_mask", jet_mask)
        _check_features(op, "jets", jets, None, self.jet_features, f"jet_features={self.jet_features}")
        batch, njets = jets.shape[0], jets.shape[1]
        _check_padding_mask(op, "jet_mask", jet_mask, batch, njets, "jets")
        if self.check_mask and njets >= 2:
            _check_not_inverted(op, "jet_mask", jet_mask, 0, 2, "the two VBS jet slots")
        src = self.embedding_jets(jets)
        tgt = self.decoder_null_tokens.unsqueeze(0).expand(batch, -1, -1)
        return self.regression_net(self.transformer(src, tgt, src_mask=jet_mask))


class WWRegressorComplete(nn.Module):
    """Course step 4: jets, leptons and MET in one transformer.

    ``WWRegressorComplete(d_model=128, nhead=8, num_encoder_layers=2,
    num_decoder_layers=2, dim_feedforward=512, output_dim=4,
    regression_net=[64, 64], jet_features=5, let_features=3, met_features=2,
    max_njets=13, dropout=0.1)`` (``let_features`` is the lepton feature count;
    the name is the course's).

    Sub-modules and buffers (state-dict keys as the course's torch class):
    ``transformer`` (``MaskedTransformer``), ``embedding_jets``,
    ``embedding_lep``, ``embedding_met`` (each Sequential(Linear(features,
    d_model - 1), SELU())), ``regression_net`` (as in ``WWRegressor``), buffers
    ``obj_type`` = ``get_obj_type_tensor(max_njets)`` ``[max_njets + 3, 1]``
    and ``decoder_null_tokens`` = zeros(2, d_model).

    ``forward(jets, leptons, met, full_mask)``: ``jets`` ``[B, max_njets,
    jet_features]``, ``leptons`` ``[B, 2, let_features]``, ``met`` ``[B, 1,
    met_features]``, ``full_mask`` ``[B, max_njets + 3]`` bool **key-padding
    mask, True = padding** over jets, then leptons, then MET (pass
    ``~batch["jetlepmet_padding_mask"]``). Each object type is embedded to
    ``d_model - 1`` features, the tokens are concatenated (jets, leptons, MET)
    and the type label (0 jet, 1 lepton, -1 MET) is appended as the last
    feature, giving ``[B, max_njets + 3, d_model]``. Returns ``[B, 2,
    output_dim]``. The mask keeps padded jets out of the encoder's attention,
    but the decoder reads every encoder output (as in the course), so padded
    jet slots should hold zeros, as hepml's datasets store them.

    What the stage teaches: objects of different kinds get their own
    embeddings, and an explicit label lets attention tell them apart. Trained
    with MSE it still predicts the same W twice: the two null decoder tokens
    are equal and nothing else distinguishes them (see ``WWRegressorWOrdered``).
    """

    def __init__(self, d_model=128, nhead=8, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=512,
                 output_dim=4, regression_net=(64, 64), jet_features=5, let_features=3, met_features=2,
                 max_njets=13, dropout=0.1):
        super().__init__()
        op = type(self).__name__
        _check_transformer_args(op, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                dropout)
        if d_model < 2:
            raise ValueError(f"{op}(): d_model={d_model} is too small: the embeddings have d_model - 1 features "
                             f"(the last one is the object-type label), so d_model must be >= 2")
        _check_int(op, "output_dim", output_dim)
        _check_int(op, "jet_features", jet_features)
        _check_int(op, "let_features", let_features)
        _check_int(op, "met_features", met_features)
        _check_int(op, "max_njets", max_njets)
        hidden = _check_hidden(op, regression_net)
        self.transformer = MaskedTransformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                             dim_feedforward, dropout)
        self.embedding_jets = embedding(jet_features, d_model - 1)
        self.embedding_lep = embedding(let_features, d_model - 1)
        self.embedding_met = embedding(met_features, d_model - 1)
        self.regression_net = _regression_net(d_model, hidden, output_dim)
        self.register_buffer("obj_type", get_obj_type_tensor(max_njets))
        self.register_buffer("decoder_null_tokens", zeros(2, d_model))
        self.d_model, self.output_dim, self.max_njets = d_model, output_dim, max_njets
        self.jet_features, self.let_features, self.met_features = jet_features, let_features, met_features
        self.check_mask = True

    def _check_inputs(self, op, jets, leptons, met, full_mask):
        jets = _as_input(op, "jets", jets)
        leptons = _as_input(op, "leptons", leptons)
        met = _as_input(op, "met", met)
        full_mask = _as_input(op, "full_mask", full_mask)
        _check_features(op, "jets", jets, self.max_njets, self.jet_features,
                        f"max_njets={self.max_njets}, jet_features={self.jet_features}")
        _check_features(op, "leptons", leptons, 2, self.let_features, f"let_features={self.let_features}")
        _check_features(op, "met", met, 1, self.met_features, f"met_features={self.met_features}")
        batch = jets.shape[0]
        for name, x in (("leptons", leptons), ("met", met)):
            if x.shape[0] != batch:
                raise ValueError(f"{op}(): argument '{name}' has batch size {x.shape[0]} (shape "
                                 f"{tuple(x.shape)}) but 'jets' has {batch} (shape {tuple(jets.shape)})")
        ntok = self.max_njets + 3
        _check_padding_mask(op, "full_mask", full_mask, batch, ntok, f"{self.max_njets} jets + 2 leptons + MET")
        if self.check_mask:
            _check_not_inverted(op, "full_mask", full_mask, self.max_njets, ntok, "both leptons and the MET")
        return jets, leptons, met, full_mask

    def embed(self, jets, leptons, met):
        """The encoder input ``[B, max_njets + 3, d_model]``: embedded jets, leptons and MET along the
        tokens, with the object-type label as the last feature (inputs are not checked here)."""
        batch = jets.shape[0]
        x = F.cat([self.embedding_jets(jets), self.embedding_lep(leptons), self.embedding_met(met)], 1)
        labels = self.obj_type.unsqueeze(0).expand(batch, -1, -1)
        return F.cat([x, labels], 2)

    def forward(self, jets, leptons, met, full_mask):
        op = type(self).__name__ + ".forward"
        jets, leptons, met, full_mask = self._check_inputs(op, jets, leptons, met, full_mask)
        src = self.embed(jets, leptons, met)
        tgt = self.decoder_null_tokens.unsqueeze(0).expand(jets.shape[0], -1, -1)
        return self.regression_net(self.transformer(src, tgt, src_mask=full_mask))


class WWRegressorWOrdered(WWRegressorComplete):
    """Course step 5: ``WWRegressorComplete`` with distinct decoder tokens.

    Same arguments, sub-modules and forward; only ``decoder_null_tokens[1]`` is
    set to ones (the first token stays zeros). With identical tokens and no
    positional information the decoder must give both Ws the same output; with
    distinct tokens it can regress two different Ws, and training against
    eta-ordered targets (``W_ordered_data``) tells it which is which.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with no_grad():
            self.decoder_null_tokens[1] = 1.0
