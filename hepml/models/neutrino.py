"""The neutrino flow of notebook 6: an event encoder that summarises jets, leptons and MET
into a context vector, and a conditional normalizing flow over both neutrinos'
(pt, eta, phi) given that context, trained end to end by maximum likelihood.

    model = NeutrinoFlowModel.maf()                  # WWEncoder + MAF with rotations
    loss = model.nll(batch)                          # batch: a dict from hepml.data.DataLoader
    nu = model.sample(jets, leptons, met, mask)      # [B, 6]: (pt, eta, phi) of nu1, then nu2

Conventions:

- ``mask`` is the dataset's ``jetlepmet_padding_mask`` ``[B, 16]``, **True = real object**
  (13 jet slots, 2 leptons, MET). PyTorch's ``src_key_padding_mask`` means the opposite
  (True = ignore); the encoder passes ``~mask`` to the transformer for you.
- The flow's 6 features are ``nu_data`` ``[B, 2, 3]`` flattened: (pt, eta, phi) of the
  first neutrino, then of the second, in the dataset's scaled units.
"""
import hepml as _hm
from .. import nn
from .._tensor import Tensor
from ..flows import (MAF, NSF, DiagNormal, Flow, MaskedAutoregressiveTransform, RotationTransform,
                     UnconditionalDistribution, UnconditionalTransform)
from .common import embedding, get_obj_type_tensor

__all__ = ["WWEncoder", "NeutrinoFlowModel"]

# Pooling divides by (sum of valid scores + _POOL_EPS): never zero, even if every score
# underflowed (leptons and MET are always valid, so the sum has at least 3 terms).
_POOL_EPS = 1e-6


def _check_int(op, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{op}: argument '{name}' must be an int >= {minimum}, got {value!r}")


def _as_tensor(op, name, x):
    if isinstance(x, Tensor):
        return x
    try:
        return _hm.tensor(x)
    except Exception as e:  # noqa: BLE001  (re-raised with the argument's name)
        raise TypeError(f"{op}: argument '{name}' must be a hepml tensor or an array, got {type(x).__name__}") from e


class WWEncoder(nn.Module):
    """Event encoder of the course's neutrino flow: jets, leptons and MET -> a context
    vector ``[B, context_features]``.

    1. Each object type has its own embedding ``Linear(f, d_model - 1) + SELU``
       (``embedding_jets``, ``embedding_lep``, ``embedding_met``); the object-type label
       (jets 0, leptons 1, MET -1; buffer ``obj_type`` ``[max_njets + 3, 1]``) is appended as
       the last feature, so every token has ``d_model`` features, as in the course's W
       regressor.
    2. ``encoder``: a ``TransformerEncoder`` (batch first) over the ``max_njets + 3`` tokens,
       padded jets hidden with the key padding mask.
    3. ``score_net``: ``Linear(d_model, score_hidden) + SELU + Linear(score_hidden, 1) +
       Sigmoid`` gives each token a score in (0, 1).
    4. Pooling: the score-weighted **mean** over valid tokens,
       ``sum_t s_t m_t h_t / (sum_t s_t m_t + 1e-6)`` with ``m_t`` the mask (1 = real). Padded
       tokens get weight exactly 0, so whatever their features, the context does not change.
       Dividing by the sum of the weights keeps the pooled vector on the scale of one token
       whatever the number of jets (a plain sum would grow with the jet multiplicity).
    5. ``projection``: ``Linear(d_model, context_features)``.

    ``forward(jets, leptons, met, mask)``: jets ``[B, max_njets, jet_features]``, leptons
    ``[B, 2, lep_features]``, met ``[B, 1, met_features]``, mask ``[B, max_njets + 3]`` bool with
    **True = real object** (the dataset's ``jetlepmet_padding_mask``; not torch's
    True = ignore). Returns the context ``[B, context_features]``.
    """

    def __init__(self, d_model=32, nhead=4, num_encoder_layers=2, dim_feedforward=128, context_features=16,
                 score_hidden=16, jet_features=5, lep_features=3, met_features=2, max_njets=13, dropout=0.0):
        super().__init__()
        op = "WWEncoder()"
        for name, v in (("d_model", d_model), ("nhead", nhead), ("dim_feedforward", dim_feedforward),
                        ("context_features", context_features), ("score_hidden", score_hidden),
                        ("jet_features", jet_features), ("lep_features", lep_features),
                        ("met_features", met_features), ("max_njets", max_njets)):
            _check_int(op, name, v, 2 if name == "d_model" else 1)
        _check_int(op, "num_encoder_layers", num_encoder_layers, 0)
        if d_model % nhead:
            raise ValueError(f"{op}: d_model={d_model} must be divisible by nhead={nhead}")
        self.d_model, self.context_features = d_model, context_features
        self.jet_features, self.lep_features, self.met_features = jet_features, lep_features, met_features
        self.max_njets = max_njets
        self.n_tokens = max_njets + 3
        self.embedding_jets = embedding(jet_features, d_model - 1)
        self.embedding_lep = embedding(lep_features, d_model - 1)
        self.embedding_met = embedding(met_features, d_model - 1)
        self.register_buffer("obj_type", get_obj_type_tensor(max_njets))
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_encoder_layers)
        self.score_net = nn.Sequential(nn.Linear(d_model, score_hidden), nn.SELU(), nn.Linear(score_hidden, 1),
                                       nn.Sigmoid())
        self.projection = nn.Linear(d_model, context_features)

    def _check_inputs(self, op, jets, leptons, met, mask):
        jets = _as_tensor(op, "jets", jets)
        leptons = _as_tensor(op, "leptons", leptons)
        met = _as_tensor(op, "met", met)
        mask = _as_tensor(op, "mask", mask)
        for name, t in (("jets", jets), ("leptons", leptons), ("met", met)):
            if str(t.dtype) != "float32":
                raise TypeError(f"{op}: argument '{name}' must be a float32 tensor, got dtype {t.dtype}")
        if str(mask.dtype) != "bool":
            raise TypeError(f"{op}: argument 'mask' must be a bool tensor [B, {self.n_tokens}] with True = real "
                            f"object (the dataset's jetlepmet_padding_mask), got dtype {mask.dtype}")
        if jets.ndim != 3 or tuple(jets.shape[1:]) != (self.max_njets, self.jet_features):
            raise ValueError(f"{op}: argument 'jets' has shape {tuple(jets.shape)}, expected "
                             f"(B, {self.max_njets}, {self.jet_features})")
        b = jets.shape[0]
        for name, t, shape in (("leptons", leptons, (b, 2, self.lep_features)),
                               ("met", met, (b, 1, self.met_features)),
                               ("mask", mask, (b, self.n_tokens))):
            if tuple(t.shape) != shape:
                want = ", ".join(str(s) for s in shape)
                raise ValueError(f"{op}: argument '{name}' has shape {tuple(t.shape)}, expected ({want}) "
                                 f"(B = {b} from 'jets')")
        return jets, leptons, met, mask

    def forward_tokens(self, jets, leptons, met, mask):
        """The encoder's per-token output ``[B, T, d_model]`` and the tokens' scores
        ``[B, T]`` (sigmoid outputs, set to 0 at padded tokens), ``T = max_njets + 3``.
        Padded tokens' outputs are finite but meaningless; use ``mask`` to ignore them."""
        jets, leptons, met, mask = self._check_inputs("WWEncoder.forward_tokens()", jets, leptons, met, mask)
        b = jets.shape[0]
        x = _hm.cat([self.embedding_jets(jets), self.embedding_lep(leptons), self.embedding_met(met)], 1)
        labels = self.obj_type.unsqueeze(0).expand(b, self.n_tokens, 1)
        x = _hm.cat([x, labels], -1)
        tokens = self.encoder(x, src_key_padding_mask=mask.logical_not())
        scores = self.score_net(tokens).squeeze(-1) * mask.float()
        return tokens, scores

    def pool(self, tokens, scores):
        """Score-weighted mean of the tokens: ``[B, T, d]``, ``[B, T]`` (already 0 at padding)
        -> ``[B, d]``."""
        weights = scores / (scores.sum(-1, keepdim=True) + _POOL_EPS)
        return (tokens * weights.unsqueeze(-1)).sum(1)

    def forward(self, jets, leptons, met, mask):
        tokens, scores = self.forward_tokens(jets, leptons, met, mask)
        return self.projection(self.pool(tokens, scores))


def _rotation(features):
    """zuko's learnable rotation layer: R = exp(A - A^T), A a parameter initialised randn."""
    return UnconditionalTransform(RotationTransform, _hm.randn(features, features))


def _standard_normal(features):
    return UnconditionalDistribution(DiagNormal, loc=_hm.zeros(features), scale=_hm.ones(features), buffer=True)


def _rotated_flow(features, context, transforms, **transform_kwargs):
    """``transforms`` MADE transforms with alternating orders (as zuko's MAF) and a
    learnable rotation between consecutive ones, over a standard normal base;
    ``transform_kwargs`` go to each MaskedAutoregressiveTransform."""
    layers = []
    order = list(range(features))
    for i in range(transforms):
        if i > 0:
            layers.append(_rotation(features))
        layers.append(MaskedAutoregressiveTransform(features, context, order=order if i % 2 == 0 else order[::-1],
                                                    **transform_kwargs))
    flow = Flow(layers, _standard_normal(features))
    flow.context = context
    return flow


def _batch_args(batch, target):
    names = (target, "jet_data", "lepton_data", "met_data", "jetlepmet_padding_mask")
    missing = [n for n in names if n not in batch]
    if missing:
        raise KeyError(f"NeutrinoFlowModel: the batch has no {missing}; it needs {list(names)} "
                       "(a batch dict from hepml.data.DataLoader over the prepared dataset)")
    return [batch[n] for n in names]


class NeutrinoFlowModel(nn.Module):
    """p(neutrinos | event) = flow(encoder(event)): the ``encoder`` (a ``WWEncoder``) maps the
    event to a context vector that conditions the ``flow`` (a ``hepml.flows.Flow``), trained
    end to end (gradients of the likelihood flow through the context into the encoder).

    ``model(jets, leptons, met, mask)`` is the conditional distribution (a
    ``NormalizingFlow`` with batch shape ``[B]``); ``log_prob(nu, ...)`` its log-density at
    ``nu`` (``[B, 2, 3]`` or ``[B, 6]``); ``sample(..., n=None)`` draws one sample per event
    ``[B, 6]`` (or ``[n, B, 6]``) without gradient; ``nll(batch)`` the mean negative
    log-likelihood of a DataLoader batch. ``mask`` is True = real object (see WWEncoder).

    Build the course's models with ``NeutrinoFlowModel.maf(...)`` / ``.nsf(...)``.
    """

    def __init__(self, encoder, flow, features=6):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"NeutrinoFlowModel(): argument 'encoder' must be a Module, got {type(encoder).__name__}")
        if not isinstance(flow, nn.Module):
            raise TypeError(f"NeutrinoFlowModel(): argument 'flow' must be a Module (a lazy flow such as "
                            f"hepml.flows.MAF), got {type(flow).__name__}")
        self.encoder = encoder
        self.flow = flow
        self.features = features
        self.config = {}

    # ------------------------------------------------------------------ builders
    @classmethod
    def maf(cls, transforms=4, hidden_features=(128, 128), rotations=True, features=6, context_features=16,
            **encoder_kwargs):
        """WWEncoder + masked autoregressive flow (affine) over ``features`` with ``transforms``
        MADE transforms (alternating orders, as zuko's MAF), a learnable rotation
        ``UnconditionalTransform(RotationTransform, randn(f, f))`` between consecutive
        transforms when ``rotations`` (zuko's recipe), and a standard normal base.
        ``encoder_kwargs`` go to WWEncoder (d_model, nhead, ...)."""
        _check_int("NeutrinoFlowModel.maf()", "transforms", transforms)
        encoder = WWEncoder(context_features=context_features, **encoder_kwargs)
        hidden = tuple(int(h) for h in hidden_features)
        if rotations:
            flow = _rotated_flow(features, context_features, transforms, hidden_features=hidden)
        else:
            flow = MAF(features, context_features, transforms=transforms, hidden_features=hidden)
        model = cls(encoder, flow, features)
        model.config = dict(kind="maf", transforms=transforms, hidden_features=hidden, rotations=bool(rotations),
                            features=features, context_features=context_features, **encoder_kwargs)
        return model

    @classmethod
    def nsf(cls, transforms=4, bins=10, hidden_features=(128, 128), rotations=False, features=6,
            context_features=16, **encoder_kwargs):
        """WWEncoder + neural spline flow (monotonic rational-quadratic splines on [-5, 5],
        ``bins`` bins; the course's 4 transforms, 10 bins, hidden (128, 128)). ``rotations``
        adds rotations between the transforms as in ``maf``."""
        _check_int("NeutrinoFlowModel.nsf()", "transforms", transforms)
        encoder = WWEncoder(context_features=context_features, **encoder_kwargs)
        hidden = tuple(int(h) for h in hidden_features)
        if rotations:
            flow = _rotated_flow(features, context_features, transforms, univariate="rqs", bins=bins,
                                 hidden_features=hidden)
        else:
            flow = NSF(features, context_features, transforms=transforms, bins=bins, hidden_features=hidden)
        model = cls(encoder, flow, features)
        model.config = dict(kind="nsf", transforms=transforms, bins=bins, hidden_features=hidden,
                            rotations=bool(rotations), features=features, context_features=context_features,
                            **encoder_kwargs)
        return model

    @classmethod
    def from_config(cls, config):
        """Rebuild an (untrained) model from ``model.config`` (e.g. before ``load_state_dict``)."""
        config = dict(config)
        kind = config.pop("kind", None)
        if kind not in ("maf", "nsf"):
            raise ValueError(f"NeutrinoFlowModel.from_config(): config['kind'] must be 'maf' or 'nsf', got {kind!r}")
        if "hidden_features" in config:
            config["hidden_features"] = tuple(config["hidden_features"])
        return getattr(cls, kind)(**config)

    # ------------------------------------------------------------------ use
    def _target(self, nu):
        nu = _as_tensor("NeutrinoFlowModel.log_prob()", "nu", nu)
        if nu.ndim == 3 and nu.shape[1] * nu.shape[2] == self.features:
            nu = nu.reshape(nu.shape[0], self.features)
        if nu.ndim != 2 or nu.shape[1] != self.features:
            raise ValueError(f"NeutrinoFlowModel.log_prob(): argument 'nu' has shape {tuple(nu.shape)}, expected "
                             f"(B, {self.features}) or (B, 2, {self.features // 2})")
        return nu

    def context(self, jets, leptons, met, mask):
        """The encoder's context vectors ``[B, context_features]``."""
        return self.encoder(jets, leptons, met, mask)

    def forward(self, jets, leptons, met, mask):
        return self.flow(self.encoder(jets, leptons, met, mask))

    def log_prob(self, nu, jets, leptons, met, mask):
        """log p(nu | event) per event ``[B]`` (differentiable w.r.t. flow and encoder)."""
        nu = self._target(nu)
        c = self.encoder(jets, leptons, met, mask)
        if nu.shape[0] != c.shape[0]:
            raise ValueError(f"NeutrinoFlowModel.log_prob(): argument 'nu' has {nu.shape[0]} events, the other "
                             f"inputs {c.shape[0]}")
        return self.flow(c).log_prob(nu)

    def sample(self, jets, leptons, met, mask, n=None):
        """Samples of both neutrinos' (pt, eta, phi), scaled: ``[B, 6]`` for ``n=None`` (one per
        event), else ``[n, B, 6]``. No gradient (use ``model(...).rsample`` for that)."""
        if n is not None:
            _check_int("NeutrinoFlowModel.sample()", "n", n)
        with _hm.no_grad():
            dist = self.flow(self.encoder(jets, leptons, met, mask))
            return dist.sample(() if n is None else (n,))

    def nll(self, batch, target="nu_data"):
        """Mean negative log-likelihood of a DataLoader batch (keys ``target``, jet_data,
        lepton_data, met_data, jetlepmet_padding_mask)."""
        nu, jets, leptons, met, mask = _batch_args(batch, target)
        return -self.log_prob(nu, jets, leptons, met, mask).mean()

    def sample_batch(self, batch, n=None):
        """``sample`` with the inputs of a DataLoader batch."""
        _, jets, leptons, met, mask = _batch_args(batch, "jet_data")
        return self.sample(jets, leptons, met, mask, n)

