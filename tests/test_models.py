"""hepml.models regression classes against reference PyTorch versions of the course's classes.

The reference classes below are written from the course's description (attribute names, layer
order, buffers, forward). Each torch model's state dict goes through torch.save and
hepml.load_torch_state_dict (strict load) into the hepml model; then outputs must agree within
1e-5 and every parameter's gradient of an MSE loss within 1e-4 (relative to the largest entry of
that gradient, at least 1), in eval() and in train() with dropout 0. torch's eval fast path is
switched off for the comparisons (see hepml.models.regression's docstring).
"""

import numpy as np
import pytest

import hepml
from hepml import models
from helpers import assert_close, no_torch_fastpath

torch = pytest.importorskip("torch")
tnn = torch.nn
hnn = hepml.nn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's nested-tensor / mask-dtype notes

FWD_TOL = 1e-5
GRAD_TOL = 1e-4
SMALL = dict(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32,
             regression_net=[16, 8])
NJETS = (2, 3, 13, 5, 2, 8)  # real jets per event: some events with few jets, one full


# ------------------------------------------------------ reference torch classes


def t_obj_type(max_njets):
    t = torch.zeros(max_njets + 3, 1)
    t[max_njets:max_njets + 2] = 1.0
    t[max_njets + 2] = -1.0
    return t


def t_head(d_model, hidden, output_dim):
    layers = [tnn.Linear(d_model, hidden[0]), tnn.SELU()]
    for a, b in zip(hidden[:-1], hidden[1:]):
        layers += [tnn.Linear(a, b), tnn.SELU()]
    layers.append(tnn.Linear(hidden[-1], output_dim))
    return tnn.Sequential(*layers)


class TMaskedTransformer(tnn.Module):
    def __init__(self, d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward=512):
        super().__init__()
        self.transformer = tnn.Transformer(d_model=d_model, nhead=nhead, num_encoder_layers=num_encoder_layers,
                                           num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward,
                                           batch_first=True)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None):
        return self.transformer(src, tgt, src_key_padding_mask=src_mask, tgt_key_padding_mask=tgt_mask)


class TWWRegressor(tnn.Module):
    def __init__(self, d_model=128, nhead=8, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=512,
                 output_dim=4, regression_net=(64, 64), jet_features=5):
        super().__init__()
        self.embedding_jets = tnn.Sequential(tnn.Linear(jet_features, d_model), tnn.SELU())
        self.transformer = TMaskedTransformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                              dim_feedforward)
        self.regression_net = t_head(d_model, list(regression_net), output_dim)
        self.register_buffer("decoder_null_tokens", torch.zeros(2, d_model))

    def forward(self, jets, jet_mask):
        tgt = self.decoder_null_tokens.unsqueeze(0).expand(jets.shape[0], -1, -1)
        return self.regression_net(self.transformer(self.embedding_jets(jets), tgt, src_mask=jet_mask))


class TWWRegressorComplete(tnn.Module):
    def __init__(self, d_model=128, nhead=8, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=512,
                 output_dim=4, regression_net=(64, 64), jet_features=5, let_features=3, met_features=2,
                 max_njets=13):
        super().__init__()
        self.transformer = TMaskedTransformer(d_model, nhead, num_encoder_layers, num_decoder_layers,
                                              dim_feedforward)
        self.embedding_jets = tnn.Sequential(tnn.Linear(jet_features, d_model - 1), tnn.SELU())
        self.embedding_lep = tnn.Sequential(tnn.Linear(let_features, d_model - 1), tnn.SELU())
        self.embedding_met = tnn.Sequential(tnn.Linear(met_features, d_model - 1), tnn.SELU())
        self.regression_net = t_head(d_model, list(regression_net), output_dim)
        self.register_buffer("obj_type", t_obj_type(max_njets))
        self.register_buffer("decoder_null_tokens", torch.zeros(2, d_model))

    def forward(self, jets, leptons, met, full_mask):
        b = jets.shape[0]
        x = torch.cat([self.embedding_jets(jets), self.embedding_lep(leptons), self.embedding_met(met)], dim=1)
        x = torch.cat([x, self.obj_type.unsqueeze(0).expand(b, -1, -1)], dim=2)
        tgt = self.decoder_null_tokens.unsqueeze(0).expand(b, -1, -1)
        return self.regression_net(self.transformer(x, tgt, src_mask=full_mask))


class TWWRegressorWOrdered(TWWRegressorComplete):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoder_null_tokens[1] = 1.0


# ------------------------------------------------------------------ utilities


def zero_torch_dropout(model):
    for m in model.modules():
        if isinstance(m, tnn.Dropout):
            m.p = 0.0
        if isinstance(m, tnn.MultiheadAttention):
            m.dropout = 0.0


def zero_hepml_dropout(model):
    for m in model.modules():
        if isinstance(m, hnn.Dropout):
            m.p = 0.0
        if isinstance(m, hnn.MultiheadAttention):
            m.dropout = 0.0


def transfer(tmodel, hmodel, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(tmodel.state_dict(), path)
    sd = hepml.load_torch_state_dict(path)
    hmodel.load_state_dict(sd, strict=True)
    return hmodel


def event_inputs(seed=0, njets=NJETS, max_njets=13):
    """Dataset-like inputs: standardised features, a VBS label column on the jets, padded jets 0,
    and the key-padding masks (True = padding) the models take."""
    rng = np.random.default_rng(seed)
    b = len(njets)
    real = np.arange(max_njets)[None, :] < np.array(njets)[:, None]  # True = real jet (dataset convention)
    jets = rng.standard_normal((b, max_njets, 5)).astype(np.float32)
    jets[:, :, 4] = 0.0
    jets[:, :2, 4] = 1.0
    jets[~real] = 0.0
    leptons = rng.standard_normal((b, 2, 3)).astype(np.float32)
    met = rng.standard_normal((b, 1, 2)).astype(np.float32)
    full_real = np.concatenate([real, np.ones((b, 3), bool)], axis=1)
    return dict(jets=jets, leptons=leptons, met=met, jet_mask=~real, full_mask=~full_real)


# the kinds of models compared: (hepml class, torch class, argument names of forward)
KINDS = {
    "WWRegressor": (models.WWRegressor, TWWRegressor, ("jets", "jet_mask")),
    "WWRegressorComplete": (models.WWRegressorComplete, TWWRegressorComplete,
                            ("jets", "leptons", "met", "full_mask")),
    "WWRegressorWOrdered": (models.WWRegressorWOrdered, TWWRegressorWOrdered,
                            ("jets", "leptons", "met", "full_mask")),
}


def build_pair(kind, tmp_path, seed=0, hepml_dropout=0.0, **overrides):
    hcls, tcls, argnames = KINDS[kind]
    kw = dict(SMALL, **overrides)
    torch.manual_seed(seed)
    tmodel = tcls(**kw)
    zero_torch_dropout(tmodel)
    hmodel = transfer(tmodel, hcls(dropout=hepml_dropout, **kw), tmp_path)
    return tmodel, hmodel, argnames


def compare(tmodel, hmodel, argnames, inputs, mode, seed=1, what=""):
    for m in (tmodel, hmodel):
        m.train(mode == "train")
    tmodel.zero_grad()
    hmodel.zero_grad()
    with no_torch_fastpath():
        tout = tmodel(*[torch.tensor(inputs[a]) for a in argnames])
    hout = hmodel(*[hepml.tensor(inputs[a]) for a in argnames])
    tnp = tout.detach().numpy()
    assert_close(hout, tnp, rtol=FWD_TOL, atol=FWD_TOL, what=f"{what} output ({mode})")
    target = np.random.default_rng(seed).standard_normal(tnp.shape).astype(np.float32)
    tnn.MSELoss()(tout, torch.tensor(target)).backward()
    hnn.MSELoss()(hout, hepml.tensor(target)).backward()
    tparams, hparams = dict(tmodel.named_parameters()), dict(hmodel.named_parameters())
    assert list(tparams) == list(hparams)
    for name, tp in tparams.items():
        hp = hparams[name]
        tg = tp.grad.numpy() if tp.grad is not None else np.zeros(tuple(tp.shape), np.float32)
        hg = hp.grad.numpy() if hp.grad is not None else np.zeros(tuple(hp.shape), np.float32)
        err = np.abs(hg.astype(np.float64) - tg).max()
        assert err <= GRAD_TOL * max(1.0, np.abs(tg).max()), \
            f"{what} ({mode}): gradient of {name} differs by {err:.3g} (max |grad| {np.abs(tg).max():.3g})"
    return hout.numpy()


# ----------------------------------------------------------- structure, keys


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_keys_buffers_and_parameter_counts(kind, tmp_path):
    tmodel, hmodel, _ = build_pair(kind, tmp_path)
    tsd, hsd = tmodel.state_dict(), hmodel.state_dict()
    assert list(hsd) == list(tsd)  # same keys in the same order, buffers included
    assert "decoder_null_tokens" in hsd
    assert ("obj_type" in hsd) == (kind != "WWRegressor")
    for k in tsd:
        assert tuple(hsd[k].shape) == tuple(tsd[k].shape), k
        np.testing.assert_array_equal(hsd[k].numpy(), tsd[k].numpy(), err_msg=k)
    assert hepml.count_parameters(hmodel) == sum(p.numel() for p in tmodel.parameters())
    assert [n for n, _ in hmodel.named_buffers()] == [n for n, _ in tmodel.named_buffers()]


def test_default_architecture_matches_the_course_sizes():
    """The course's defaults (d_model 128, 8 heads, 2 + 2 layers, feed-forward 512, head [64, 64])."""
    h = models.WWRegressorComplete()
    t = TWWRegressorComplete()
    assert list(h.state_dict()) == list(t.state_dict())
    assert hepml.count_parameters(h) == sum(p.numel() for p in t.parameters())
    assert tuple(h.obj_type.shape) == (16, 1)
    np.testing.assert_array_equal(h.obj_type.numpy()[:, 0], [0.0] * 13 + [1.0, 1.0, -1.0])
    assert tuple(h.decoder_null_tokens.shape) == (2, 128)
    h = models.WWRegressor()
    t = TWWRegressor()
    assert list(h.state_dict()) == list(t.state_dict())
    assert hepml.count_parameters(h) == sum(p.numel() for p in t.parameters())


def test_regression_head_layout():
    m = models.WWRegressorComplete(d_model=16, nhead=4, regression_net=[8, 6, 5], output_dim=3)
    layers = list(m.regression_net)
    kinds = [type(x).__name__ for x in layers]
    assert kinds == ["Linear", "SELU", "Linear", "SELU", "Linear", "SELU", "Linear"]
    assert [(x.in_features, x.out_features) for x in layers[::2]] == [(16, 8), (8, 6), (6, 5), (5, 3)]
    assert (m.embedding_jets[0].in_features, m.embedding_jets[0].out_features) == (5, 15)
    assert (m.embedding_lep[0].in_features, m.embedding_met[0].in_features) == (3, 2)


# ------------------------------------------------------------ agreement


@pytest.mark.parametrize("kind", list(KINDS))
def test_outputs_and_gradients_agree_with_torch(kind, tmp_path):
    tmodel, hmodel, argnames = build_pair(kind, tmp_path)
    inputs = event_inputs()
    out_eval = compare(tmodel, hmodel, argnames, inputs, "eval", what=kind)
    out_train = compare(tmodel, hmodel, argnames, inputs, "train", what=kind)
    assert out_eval.shape == (len(NJETS), 2, 4)
    np.testing.assert_allclose(out_train, out_eval, rtol=1e-6, atol=1e-6)  # no eval fast path in hepml


def test_dropout_set_to_zero_after_construction_agrees(tmp_path):
    """The course classes take no dropout argument: a model built with the default (0.1) and its
    Dropout p set to 0 afterwards computes the same as torch in train mode."""
    tmodel, hmodel, argnames = build_pair("WWRegressorComplete", tmp_path, seed=3, hepml_dropout=0.1)
    zero_hepml_dropout(hmodel)
    compare(tmodel, hmodel, argnames, event_inputs(seed=4), "train", what="complete, p zeroed")


def test_masked_transformer_agrees_with_torch(tmp_path):
    torch.manual_seed(5)
    t = TMaskedTransformer(16, 4, 1, 2, dim_feedforward=24)
    zero_torch_dropout(t)
    h = transfer(t, models.MaskedTransformer(16, 4, 1, 2, dim_feedforward=24, dropout=0.0), tmp_path)
    assert list(h.state_dict()) == list(t.state_dict())
    rng = np.random.default_rng(6)
    src = rng.standard_normal((4, 7, 16)).astype(np.float32)
    tgt = rng.standard_normal((4, 3, 16)).astype(np.float32)
    src_mask = np.zeros((4, 7), bool)
    src_mask[1, 4:] = True
    src_mask[3, 2:] = True
    tgt_mask = np.zeros((4, 3), bool)
    tgt_mask[2, 2] = True
    inputs = dict(src=src, tgt=tgt, src_mask=src_mask, tgt_mask=tgt_mask)
    for mode in ("eval", "train"):
        compare(t, h, ("src", "tgt", "src_mask", "tgt_mask"), inputs, mode, what="MaskedTransformer")
    # without masks
    h.eval()
    with no_torch_fastpath():
        ref = t.eval()(torch.tensor(src), torch.tensor(tgt)).detach().numpy()
    assert_close(h(src, tgt), ref, rtol=FWD_TOL, atol=FWD_TOL, what="no masks")


def test_numpy_and_float64_inputs_are_accepted(tmp_path):
    tmodel, hmodel, argnames = build_pair("WWRegressorComplete", tmp_path)
    inputs = event_inputs(seed=2)
    hmodel.eval()
    a = hmodel(*[hepml.tensor(inputs[k]) for k in argnames]).numpy()
    b = hmodel(inputs["jets"].astype(np.float64), inputs["leptons"], inputs["met"], inputs["full_mask"]).numpy()
    np.testing.assert_array_equal(a, b)


def test_hepml_save_load_round_trip(tmp_path):
    _, hmodel, argnames = build_pair("WWRegressorWOrdered", tmp_path)
    inputs = event_inputs(seed=7)
    hmodel.eval()
    before = hmodel(*[inputs[k] for k in argnames]).numpy()
    hepml.save(hmodel.state_dict(), tmp_path / "ww.npz")
    fresh = models.WWRegressorWOrdered(dropout=0.0, **SMALL)
    fresh.load_state_dict(hepml.load(tmp_path / "ww.npz"), strict=True)
    np.testing.assert_array_equal(fresh.decoder_null_tokens.numpy(), hmodel.decoder_null_tokens.numpy())
    np.testing.assert_array_equal(fresh.obj_type.numpy(), hmodel.obj_type.numpy())
    np.testing.assert_array_equal(fresh.eval()(*[inputs[k] for k in argnames]).numpy(), before)


# ------------------------------------------------- the course's point (step 5)


def test_equal_null_tokens_give_two_equal_ws_and_distinct_tokens_do_not(tmp_path):
    inputs = event_inputs(seed=8)
    args = [inputs[k] for k in ("jets", "leptons", "met", "full_mask")]
    hepml.manual_seed(0)
    complete = models.WWRegressorComplete(**SMALL).eval()
    out = complete(*args).numpy()
    np.testing.assert_allclose(out[:, 0], out[:, 1], rtol=1e-6, atol=1e-6)
    ordered = models.WWRegressorWOrdered(**SMALL).eval()
    np.testing.assert_array_equal(ordered.decoder_null_tokens.numpy()[0], 0.0)
    np.testing.assert_array_equal(ordered.decoder_null_tokens.numpy()[1], 1.0)
    out = ordered(*args).numpy()
    assert np.abs(out[:, 0] - out[:, 1]).max(axis=-1).min() > 1e-3  # every event: two different Ws
    # the same weights with equal tokens give equal outputs again: only the token differs
    ordered.decoder_null_tokens[1] = 0.0
    out = ordered(*args).numpy()
    np.testing.assert_allclose(out[:, 0], out[:, 1], rtol=1e-6, atol=1e-6)


def test_complete_and_ordered_share_the_architecture(tmp_path):
    """A state dict of one loads into the other (the ordered model differs only in a buffer value)."""
    a = models.WWRegressorComplete(**SMALL)
    b = models.WWRegressorWOrdered(**SMALL)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.decoder_null_tokens.numpy(), 0.0)


def test_padded_jets_are_ignored_by_the_encoder_attention(tmp_path):
    """With the mask, a padded jet's values do not reach the real tokens' encoder outputs."""
    m = models.WWRegressorComplete(dropout=0.0, **SMALL).eval()
    inputs = event_inputs(seed=9)
    src = m.embed(hepml.tensor(inputs["jets"]), hepml.tensor(inputs["leptons"]), hepml.tensor(inputs["met"]))
    enc = m.transformer.transformer.encoder
    a = enc(src, src_key_padding_mask=hepml.tensor(inputs["full_mask"])).numpy()
    jets2 = inputs["jets"].copy()
    jets2[inputs["jet_mask"]] = 5.0
    src2 = m.embed(hepml.tensor(jets2), hepml.tensor(inputs["leptons"]), hepml.tensor(inputs["met"]))
    b = enc(src2, src_key_padding_mask=hepml.tensor(inputs["full_mask"])).numpy()
    real = ~inputs["full_mask"]
    np.testing.assert_allclose(a[real], b[real], rtol=1e-5, atol=1e-5)
    assert np.abs(a[~real] - b[~real]).max() > 1e-3


# ----------------------------------------------------------------- bad input


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"d_model=1 is too small.*d_model - 1"):
        models.WWRegressorComplete(d_model=1, nhead=1)
    with pytest.raises(ValueError, match=r"WWRegressorComplete\(\): d_model=18 must be divisible by nhead=4"):
        models.WWRegressorComplete(d_model=18, nhead=4)
    with pytest.raises(ValueError, match=r"WWRegressor\(\): d_model=10 must be divisible by nhead=4"):
        models.WWRegressor(d_model=10, nhead=4)
    with pytest.raises(ValueError, match=r"MaskedTransformer\(\): d_model=6 must be divisible"):
        models.MaskedTransformer(6, 4, 1, 1)
    with pytest.raises(ValueError, match=r"'regression_net' must be a non-empty list"):
        models.WWRegressorComplete(d_model=16, nhead=4, regression_net=[])
    with pytest.raises(ValueError, match=r"'regression_net' must be a non-empty list"):
        models.WWRegressor(d_model=16, nhead=4, regression_net=[16, 0])
    with pytest.raises(ValueError, match=r"'regression_net' must be a list"):
        models.WWRegressor(d_model=16, nhead=4, regression_net=16)
    with pytest.raises(ValueError, match=r"'output_dim' must be an int >= 1, got 0"):
        models.WWRegressorComplete(d_model=16, nhead=4, output_dim=0)
    with pytest.raises(ValueError, match=r"'max_njets' must be an int >= 1"):
        models.WWRegressorComplete(d_model=16, nhead=4, max_njets=0)
    with pytest.raises(ValueError, match=r"'dropout' must be a probability"):
        models.WWRegressorWOrdered(d_model=16, nhead=4, dropout=1.5)
    with pytest.raises(ValueError, match=r"'num_encoder_layers' must be an int >= 0"):
        models.MaskedTransformer(16, 4, -1, 1)


def test_forward_errors_complete():
    m = models.WWRegressorComplete(**SMALL)
    x = event_inputs(seed=10)
    j, lep, met, fm = x["jets"], x["leptons"], x["met"], x["full_mask"]
    b = j.shape[0]
    with pytest.raises(ValueError, match=rf"'jets' has shape \({b}, 13, 4\), expected \(batch, 13, 5\)"):
        m(j[:, :, :4], lep, met, fm)
    with pytest.raises(ValueError, match=rf"'jets' has shape \({b}, 12, 5\), expected \(batch, 13, 5\).*max_njets=13"):
        m(j[:, :12], lep, met, fm)
    with pytest.raises(ValueError, match=r"'jets' has shape \(13, 5\), expected \(batch, 13, 5\)"):
        m(j[0], lep, met, fm)
    with pytest.raises(ValueError, match=rf"'leptons' has shape \({b}, 2, 4\), expected \(batch, 2, 3\)"):
        m(j, np.zeros((b, 2, 4), np.float32), met, fm)
    with pytest.raises(ValueError, match=rf"'met' has shape \({b}, 2, 2\), expected \(batch, 1, 2\)"):
        m(j, lep, np.zeros((b, 2, 2), np.float32), fm)
    with pytest.raises(ValueError, match=rf"'leptons' has batch size {b - 1}.*'jets' has {b}"):
        m(j, lep[1:], met, fm)
    with pytest.raises(ValueError, match=rf"'full_mask' has shape \({b}, 13\), expected \({b}, 16\)"):
        m(j, lep, met, x["jet_mask"])
    with pytest.raises(ValueError, match=rf"'full_mask' has shape \({b - 1}, 16\), expected \({b}, 16\)"):
        m(j, lep, met, fm[1:])
    with pytest.raises(TypeError, match=r"'full_mask' must be a bool key-padding mask.*got dtype float32.*~mask"):
        m(j, lep, met, fm.astype(np.float32))
    with pytest.raises(TypeError, match=r"'full_mask' must be a bool key-padding mask.*got dtype int64"):
        m(j, lep, met, hepml.tensor(fm.astype(np.int64), dtype=hepml.int64))
    with pytest.raises(TypeError, match=r"'jets' must be float32.*got dtype bool"):
        m(j > 0, lep, met, fm)
    with pytest.raises(TypeError, match=r"'met' must be a tensor or array, got str"):
        m(j, lep, "met", fm)
    with pytest.raises(TypeError, match=r"'full_mask' is required, got None"):
        m(j, lep, met, None)


def test_dataset_mask_without_negation_is_refused_unless_disabled():
    m = models.WWRegressorComplete(**SMALL).eval()
    x = event_inputs(seed=11)
    real = ~x["full_mask"]  # what the dataset stores: True = real object
    with pytest.raises(ValueError, match=r"'full_mask' marks both leptons and the MET as padding.*~mask"):
        m(x["jets"], x["leptons"], x["met"], real)
    r = models.WWRegressor(**SMALL)
    with pytest.raises(ValueError, match=r"'jet_mask' marks the two VBS jet slots as padding.*~mask"):
        r(x["jets"], ~x["jet_mask"])
    m.check_mask = False
    assert tuple(m(x["jets"], x["leptons"], x["met"], real).shape) == (len(NJETS), 2, 4)


def test_forward_errors_jets_only_and_masked_transformer():
    r = models.WWRegressor(**SMALL)
    x = event_inputs(seed=12)
    b = x["jets"].shape[0]
    with pytest.raises(ValueError, match=rf"'jets' has shape \({b}, 13, 3\), expected \(batch, tokens, 5\)"):
        r(x["jets"][:, :, :3], x["jet_mask"])
    with pytest.raises(ValueError, match=rf"'jet_mask' has shape \({b}, 16\), expected \({b}, 13\)"):
        r(x["jets"], x["full_mask"])
    # any number of jet slots works for the jets-only model, if the mask matches
    assert tuple(r(x["jets"][:, :9], x["jet_mask"][:, :9]).shape) == (b, 2, 4)
    t = models.MaskedTransformer(16, 4, 1, 1, dim_feedforward=8)
    src, tgt = np.zeros((3, 5, 16), np.float32), np.zeros((3, 2, 16), np.float32)
    with pytest.raises(ValueError, match=r"'src' has shape \(3, 5, 8\), expected \(batch, tokens, 16\)"):
        t(src[..., :8], tgt)
    with pytest.raises(ValueError, match=r"'src' \(3, 5, 16\) and 'tgt' \(2, 2, 16\) have different batch sizes"):
        t(src, tgt[:2])
    with pytest.raises(ValueError, match=r"'src_mask' has shape \(3, 4\), expected \(3, 5\)"):
        t(src, tgt, src_mask=np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match=r"'tgt_mask' has shape \(3, 5\), expected \(3, 2\)"):
        t(src, tgt, tgt_mask=np.zeros((3, 5), bool))


def test_torch_eval_fast_path_differs_for_trailing_padding(tmp_path):
    """Documents the docstring's note: torch's eval under no_grad (nested-tensor fast path) may
    change the jets-only model's outputs; hepml computes torch's training-mode function."""
    tmodel, hmodel, argnames = build_pair("WWRegressor", tmp_path, seed=13)
    x = event_inputs(seed=14)
    tmodel.eval()
    hmodel.eval()
    args = [torch.tensor(x[a]) for a in argnames]
    with torch.no_grad():
        fast = tmodel(*args).numpy()
    with no_torch_fastpath(), torch.no_grad():
        slow = tmodel(*args).numpy()
    out = hmodel(*[x[a] for a in argnames]).numpy()
    assert_close(out, slow, rtol=FWD_TOL, atol=FWD_TOL, what="hepml vs torch without fast path")
    if np.abs(fast - slow).max() < 1e-6:
        pytest.skip("this torch version takes no eval fast path here (hepml agreement checked above)")
