"""hepml.nn attention and transformer layers against torch.nn.

Each torch model's state dict is written with torch.save to a temporary file,
read back with hepml.load_torch_state_dict (no torch involved) and loaded into
the hepml model. Then, on the same inputs and masks, the outputs must agree
within 1e-5 and every parameter's gradient within 1e-4 (relative to the
largest entry of that gradient, at least 1), in train mode (dropout 0) and
eval mode. torch's eval "fast path" is switched off for the comparisons
(it changes padded encoder outputs to zeros, see test_train_equals_eval...).
"""

import numpy as np
import pytest

import hepml
from helpers import assert_close, no_torch_fastpath

torch = pytest.importorskip("torch")
hnn = hepml.nn

# torch warns about mixed mask dtypes and nested tensors; those are its business here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
tnn = torch.nn

FWD_TOL = 1e-5
GRAD_TOL = 1e-4


def transfer(tmodel, hmodel, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(tmodel.state_dict(), path)
    sd = hepml.load_torch_state_dict(path)
    assert list(sd) == list(tmodel.state_dict())
    hmodel.load_state_dict(sd)
    return hmodel


def _t(a):
    return torch.tensor(a) if isinstance(a, np.ndarray) else a


def _h(a):
    return hepml.tensor(a) if isinstance(a, np.ndarray) else a


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def check_agreement(tmodel, hmodel, args, kwargs, seed=0, what="", modes=("train", "eval")):
    """Run both models on the same inputs (NumPy arrays in args/kwargs), compare
    output and every parameter's gradient of sum(out * W)."""
    rng = np.random.default_rng(seed)
    for mode in modes:
        for m in (tmodel, hmodel):
            m.train(mode == "train")
        tmodel.zero_grad()
        hmodel.zero_grad()
        with no_torch_fastpath():
            tout = _first(tmodel(*[_t(a) for a in args], **{k: _t(v) for k, v in kwargs.items()}))
        hout = _first(hmodel(*[_h(a) for a in args], **{k: _h(v) for k, v in kwargs.items()}))
        tnp = tout.detach().numpy()
        assert_close(hout, tnp, rtol=FWD_TOL, atol=FWD_TOL, what=f"{what} output ({mode})")
        w = rng.standard_normal(tnp.shape).astype(np.float32)
        (tout * torch.tensor(w)).sum().backward()
        (hout * hepml.tensor(w)).sum().backward()
        tparams = dict(tmodel.named_parameters())
        hparams = dict(hmodel.named_parameters())
        assert list(tparams) == list(hparams)
        for name, tp in tparams.items():
            hp = hparams[name]
            tg = tp.grad.numpy() if tp.grad is not None else np.zeros(tuple(tp.shape), np.float32)
            hg = hp.grad.numpy() if hp.grad is not None else np.zeros(tuple(hp.shape), np.float32)
            err = np.abs(hg.astype(np.float64) - tg).max()
            assert err <= GRAD_TOL * max(1.0, np.abs(tg).max()), \
                f"{what} ({mode}): gradient of {name} differs by {err:.3g} (max |grad| {np.abs(tg).max():.3g})"


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def padding_mask(B, S, kind="bool"):
    m = np.zeros((B, S), bool)
    for b in range(B):
        m[b, S - 1 - (b % max(1, S - 1)):] = True  # event b has b % (S-1) + 1 padded tokens
    m[0] = False
    if kind == "float":
        return np.where(m, -np.inf, 0.0).astype(np.float32)
    return m


def seq(x, batch_first):
    return x if batch_first else np.ascontiguousarray(np.swapaxes(x, 0, 1))


# ------------------------------------------------------ structure and counts


def test_encoder_layer_parameter_count_and_names():
    h = hnn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=1024, dropout=0.1, batch_first=True)
    t = tnn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=1024, dropout=0.1, batch_first=True)
    assert hepml.count_parameters(h) == 34960 == sum(p.numel() for p in t.parameters())
    assert [(n, tuple(p.shape)) for n, p in h.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert list(h.state_dict()) == list(t.state_dict())
    assert type(h.self_attn.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert isinstance(h.self_attn.out_proj, hnn.Linear)


@pytest.mark.parametrize("kwargs", [dict(), dict(bias=False), dict(norm_first=True, activation="gelu")])
def test_all_modules_same_parameters_as_torch(kwargs):
    for hcls, tcls in ((hnn.TransformerEncoderLayer, tnn.TransformerEncoderLayer),
                       (hnn.TransformerDecoderLayer, tnn.TransformerDecoderLayer)):
        h, t = hcls(32, 4, 64, **kwargs), tcls(32, 4, 64, **kwargs)
        assert [(n, tuple(p.shape)) for n, p in h.named_parameters()] == \
            [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    h = hnn.Transformer(32, 4, 3, 2, 64, **kwargs)
    t = tnn.Transformer(32, 4, 3, 2, 64, **kwargs)
    assert [(n, tuple(p.shape)) for n, p in h.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert hepml.count_parameters(h) == sum(p.numel() for p in t.parameters())


@pytest.mark.parametrize("kwargs", [dict(), dict(kdim=6, vdim=10), dict(bias=False), dict(kdim=6, bias=False)])
def test_mha_parameters_as_torch(kwargs):
    h, t = hnn.MultiheadAttention(16, 4, **kwargs), tnn.MultiheadAttention(16, 4, **kwargs)
    assert [(n, tuple(p.shape)) for n, p in h.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t.named_parameters()]


def test_initialisation_as_torch():
    m = hnn.MultiheadAttention(64, 4)
    w = m.in_proj_weight.numpy()
    bound = np.sqrt(6.0 / (64 + 192))  # xavier_uniform_ on [3E, E]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert (m.in_proj_bias.numpy() == 0).all() and (m.out_proj.bias.numpy() == 0).all()
    assert np.abs(m.out_proj.weight.numpy()).max() <= 1 / 8  # Linear's own init, U(-1/sqrt(64), 1/sqrt(64))
    m2 = hnn.MultiheadAttention(16, 2, kdim=4, vdim=8)
    assert np.abs(m2.k_proj_weight.numpy()).max() <= np.sqrt(6.0 / (16 + 4))
    tr = hnn.Transformer(32, 4, 2, 2, 128)
    for name, p in tr.named_parameters():
        a = p.numpy()
        if a.ndim > 1:
            b = np.sqrt(6.0 / (a.shape[0] + a.shape[1]))
            assert np.abs(a).max() <= b * (1 + 1e-6) and np.abs(a).max() > 0.8 * b, name
        elif "norm" in name and name.endswith("weight"):
            assert (a == 1).all(), name
        elif "norm" in name or "in_proj_bias" in name or "out_proj.bias" in name:
            assert (a == 0).all(), name


def test_generate_square_subsequent_mask():
    m = hnn.generate_square_subsequent_mask(5).numpy()
    np.testing.assert_array_equal(m, tnn.Transformer.generate_square_subsequent_mask(5).numpy())
    assert hnn.Transformer.generate_square_subsequent_mask(3).shape == (3, 3)


# ------------------------------------------------------- MultiheadAttention


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("masks", ["none", "kpm_bool", "kpm_float", "mask2d_bool", "mask2d_float", "mask3d_bool",
                                   "mask3d_float", "all", "causal"])
def test_mha_matches_torch(tmp_path, batch_first, masks):
    rng = np.random.default_rng(1)
    E, H, B, L, S = 16, 4, 5, 6, 7
    t = tnn.MultiheadAttention(E, H, batch_first=batch_first)
    h = transfer(t, hnn.MultiheadAttention(E, H, batch_first=batch_first), tmp_path)
    q, kv = rand(rng, B, L, E), rand(rng, B, S, E)
    kw = {}
    if masks.startswith("kpm") or masks == "all":
        kw["key_padding_mask"] = padding_mask(B, S, "float" if masks == "kpm_float" else "bool")
    if masks.startswith("mask2d") or masks == "all":
        kw["attn_mask"] = (rng.random((L, S)) < 0.3) if masks != "mask2d_float" else rand(rng, L, S)
    if masks.startswith("mask3d"):
        kw["attn_mask"] = (rng.random((B * H, L, S)) < 0.3) if masks == "mask3d_bool" else rand(rng, B * H, L, S)
    if "attn_mask" in kw and kw["attn_mask"].dtype == np.bool_:
        kw["attn_mask"][..., 0] = False  # keep every query row alive (torch gives NaN otherwise)
    if masks == "causal":
        q = rand(rng, B, S, E)
        kw["attn_mask"] = tnn.Transformer.generate_square_subsequent_mask(S).numpy()
        kw["is_causal"] = True
    check_agreement(t, h, (seq(q, batch_first), seq(kv, batch_first), seq(kv, batch_first)), kw, what="MHA")


@pytest.mark.parametrize("average", [True, False])
def test_mha_attention_weights_match_torch(tmp_path, average):
    rng = np.random.default_rng(2)
    t = tnn.MultiheadAttention(12, 3, batch_first=True)
    h = transfer(t, hnn.MultiheadAttention(12, 3, batch_first=True), tmp_path)
    x = rand(rng, 4, 5, 12)
    kpm = padding_mask(4, 5)
    for m in (t, h):
        m.eval()
    to, tw = t(_t(x), _t(x), _t(x), key_padding_mask=_t(kpm), average_attn_weights=average)
    ho, hw = h(_h(x), _h(x), _h(x), key_padding_mask=_h(kpm), average_attn_weights=average)
    assert_close(ho, to.detach().numpy(), rtol=FWD_TOL, atol=FWD_TOL)
    assert_close(hw, tw.detach().numpy(), rtol=FWD_TOL, atol=1e-6)
    assert h(_h(x), _h(x), _h(x), need_weights=False)[1] is None


def test_mha_kdim_vdim_and_unbatched(tmp_path):
    rng = np.random.default_rng(3)
    t = tnn.MultiheadAttention(8, 2, kdim=5, vdim=3, bias=False)
    h = transfer(t, hnn.MultiheadAttention(8, 2, kdim=5, vdim=3, bias=False), tmp_path)
    q, k, v = rand(rng, 4, 2, 8), rand(rng, 6, 2, 5), rand(rng, 6, 2, 3)
    kpm = padding_mask(2, 6)
    check_agreement(t, h, (q, k, v), {"key_padding_mask": kpm}, what="MHA kdim/vdim")
    # unbatched (L, E) inputs, (S,) padding mask and (H, L, S) mask
    check_agreement(t, h, (q[:, 0], k[:, 0], v[:, 0]), {"key_padding_mask": kpm[1],
                                                        "attn_mask": rand(rng, 2, 4, 6)}, what="MHA unbatched")


# ------------------------------------------------------------------ layers


ENC_VARIANTS = [dict(), dict(norm_first=True), dict(activation="gelu"), dict(bias=False),
                dict(batch_first=False), dict(norm_first=True, batch_first=False, layer_norm_eps=1e-3)]


def _layer_kwargs(kw):
    kw = dict(kw)
    kw.setdefault("batch_first", True)
    return kw


@pytest.mark.parametrize("variant", range(len(ENC_VARIANTS)))
@pytest.mark.parametrize("masks", ["none", "padding", "causal_float", "bool_mask", "float_padding"])
def test_encoder_layer_matches_torch(tmp_path, variant, masks):
    rng = np.random.default_rng(4)
    kw = _layer_kwargs(ENC_VARIANTS[variant])
    t = tnn.TransformerEncoderLayer(16, 4, 64, dropout=0.0, **kw)
    h = transfer(t, hnn.TransformerEncoderLayer(16, 4, 64, dropout=0.0, **kw), tmp_path)
    B, T = 6, 9
    x = seq(rand(rng, B, T, 16), kw["batch_first"])
    args = {}
    if masks in ("padding", "float_padding"):
        args["src_key_padding_mask"] = padding_mask(B, T, "float" if masks == "float_padding" else "bool")
    if masks == "causal_float":
        args["src_mask"] = tnn.Transformer.generate_square_subsequent_mask(T).numpy()
        args["src_key_padding_mask"] = padding_mask(B, T)
    if masks == "bool_mask":
        m = rng.random((T, T)) < 0.4
        np.fill_diagonal(m, False)
        args["src_mask"] = m
    check_agreement(t, h, (x,), args, what=f"encoder layer {kw} {masks}")


def test_encoder_layer_callable_activation(tmp_path):
    rng = np.random.default_rng(5)
    t = tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=torch.nn.functional.silu, batch_first=True)
    h = transfer(t, hnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=hepml.silu, batch_first=True),
                 tmp_path)
    check_agreement(t, h, (rand(rng, 3, 4, 8),), {}, what="callable activation")
    t2 = tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=tnn.GELU(), batch_first=True)
    h2 = transfer(t2, hnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=hnn.GELU(), batch_first=True),
                  tmp_path)
    check_agreement(t2, h2, (rand(rng, 3, 4, 8),), {}, what="module activation")


DEC_VARIANTS = [dict(), dict(norm_first=True), dict(activation="gelu", bias=False), dict(batch_first=False)]


@pytest.mark.parametrize("variant", range(len(DEC_VARIANTS)))
@pytest.mark.parametrize("masks", ["none", "tgt_causal", "all_bool", "all_float"])
def test_decoder_layer_matches_torch(tmp_path, variant, masks):
    rng = np.random.default_rng(6)
    kw = _layer_kwargs(DEC_VARIANTS[variant])
    t = tnn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, **kw)
    h = transfer(t, hnn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, **kw), tmp_path)
    B, T, S = 5, 4, 8
    tgt, mem = seq(rand(rng, B, T, 16), kw["batch_first"]), seq(rand(rng, B, S, 16), kw["batch_first"])
    args = {}
    if masks == "tgt_causal":
        args = {"tgt_mask": tnn.Transformer.generate_square_subsequent_mask(T).numpy(), "tgt_is_causal": True}
    elif masks.startswith("all"):
        kind = masks.split("_")[1]
        mm = rng.random((T, S)) < 0.3
        mm[:, 0] = False
        args = {"tgt_mask": tnn.Transformer.generate_square_subsequent_mask(T).numpy(),
                "tgt_key_padding_mask": padding_mask(B, T, kind),
                "memory_key_padding_mask": padding_mask(B, S, kind),
                "memory_mask": mm if kind == "bool" else np.where(mm, -np.inf, 0.5).astype(np.float32)}
    check_agreement(t, h, (tgt, mem), args, what=f"decoder layer {kw} {masks}")


# ----------------------------------------------------------------- stacks


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_matches_torch(tmp_path, norm_first):
    rng = np.random.default_rng(7)
    tl = tnn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    t = tnn.TransformerEncoder(tl, 3, norm=tnn.LayerNorm(16), enable_nested_tensor=False)
    hl = hnn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    h = transfer(t, hnn.TransformerEncoder(hl, 3, norm=hnn.LayerNorm(16)), tmp_path)
    B, T = 4, 8
    x = rand(rng, B, T, 16)
    check_agreement(t, h, (x,), {"src_key_padding_mask": padding_mask(B, T)}, what="encoder stack")
    check_agreement(t, h, (x,), {"mask": tnn.Transformer.generate_square_subsequent_mask(T).numpy()},
                    what="encoder stack causal")
    t2 = tnn.TransformerEncoder(tl, 2, enable_nested_tensor=False)
    h2 = transfer(t2, hnn.TransformerEncoder(hl, 2), tmp_path)
    check_agreement(t2, h2, (x,), {}, what="encoder stack without norm")


def test_decoder_stack_matches_torch(tmp_path):
    rng = np.random.default_rng(8)
    t = tnn.TransformerDecoder(tnn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2,
                               norm=tnn.LayerNorm(16))
    h = transfer(t, hnn.TransformerDecoder(hnn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2,
                                           norm=hnn.LayerNorm(16)), tmp_path)
    B, T, S = 3, 5, 6
    check_agreement(t, h, (rand(rng, B, T, 16), rand(rng, B, S, 16)),
                    {"tgt_mask": tnn.Transformer.generate_square_subsequent_mask(T).numpy(),
                     "memory_key_padding_mask": padding_mask(B, S)}, what="decoder stack")


def test_stack_layers_are_independent_copies():
    layer = hnn.TransformerEncoderLayer(8, 2, 16)
    enc = hnn.TransformerEncoder(layer, 3)
    ids = {id(m.self_attn.in_proj_weight) for m in enc.layers}
    assert len(ids) == 3 and id(layer.self_attn.in_proj_weight) not in ids


# ------------------------------------------------------------ Transformer


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_every_mask_matches_torch(tmp_path, batch_first, norm_first):
    rng = np.random.default_rng(9)
    kw = dict(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32, dropout=0.0,
              batch_first=batch_first, norm_first=norm_first)
    t = tnn.Transformer(**kw)
    h = transfer(t, hnn.Transformer(**kw), tmp_path)
    B, S, T = 5, 10, 4
    src, tgt = seq(rand(rng, B, S, 16), batch_first), seq(rand(rng, B, T, 16), batch_first)
    src_mask = rng.random((S, S)) < 0.2
    np.fill_diagonal(src_mask, False)
    memory_mask = np.where(rng.random((T, S)) < 0.2, -np.inf, 0.0).astype(np.float32)
    memory_mask[:, 0] = 0.0
    masks = {"src_mask": src_mask,
             "tgt_mask": tnn.Transformer.generate_square_subsequent_mask(T).numpy(),
             "memory_mask": memory_mask,
             "src_key_padding_mask": padding_mask(B, S),
             "tgt_key_padding_mask": padding_mask(B, T, "float"),
             "memory_key_padding_mask": padding_mask(B, S)}
    check_agreement(t, h, (src, tgt), masks, what="Transformer all masks")
    check_agreement(t, h, (src, tgt), {"src_key_padding_mask": padding_mask(B, S),
                                       "memory_key_padding_mask": padding_mask(B, S),
                                       "tgt_mask": masks["tgt_mask"], "tgt_is_causal": True},
                    what="Transformer padding + causal")
    check_agreement(t, h, (src, tgt), {}, what="Transformer no masks")


def test_transformer_unbatched(tmp_path):
    rng = np.random.default_rng(10)
    t = tnn.Transformer(8, 2, 1, 1, 16, dropout=0.0)
    h = transfer(t, hnn.Transformer(8, 2, 1, 1, 16, dropout=0.0), tmp_path)
    check_agreement(t, h, (rand(rng, 6, 8), rand(rng, 3, 8)), {"tgt_mask": np.triu(np.full((3, 3), -np.inf,
                                                                                              np.float32), 1)},
                    what="unbatched transformer")


# ----------------------------------------- hepml's deliberate differences


def test_train_equals_eval_with_source_padding_and_no_memory_mask(tmp_path):
    """The course's issue: torch's eval fast path (nested tensors) sets the
    encoder output at padded source tokens to 0, so the decoder, given no
    memory_key_padding_mask, computes something else in eval than in training.
    hepml has no fast path: with dropout 0, train() and eval() agree."""
    rng = np.random.default_rng(11)
    kw = dict(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32, dropout=0.0,
              batch_first=True)
    h = hnn.Transformer(**kw)
    B, S, T = 6, 8, 2
    src, tgt, kpm = _h(rand(rng, B, S, 16)), _h(rand(rng, B, T, 16)), _h(padding_mask(B, S))
    out_train = h.train()(src, tgt, src_key_padding_mask=kpm).numpy().copy()
    out_eval = h.eval()(src, tgt, src_key_padding_mask=kpm).numpy()
    np.testing.assert_array_equal(out_train, out_eval)
    # and the same for an encoder stack: padded positions keep finite values
    enc = hnn.TransformerEncoder(hnn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True), 2)
    a = enc.train()(src, src_key_padding_mask=kpm).numpy().copy()
    b = enc.eval()(src, src_key_padding_mask=kpm).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(b).all()
    # torch (with its fast path) differs between the two modes here
    t = tnn.Transformer(**kw)
    ts, tt, tk = _t(src.numpy()), _t(tgt.numpy()), _t(kpm.numpy())
    with torch.no_grad():
        t_train = t.train()(ts, tt, src_key_padding_mask=tk).numpy()
        t_eval = t.eval()(ts, tt, src_key_padding_mask=tk).numpy()
    if np.abs(t_train - t_eval).max() < 1e-6:
        pytest.skip("this torch version has no eval fast path difference here")  # the hepml checks above ran


def test_fully_padded_event_gives_finite_output(tmp_path):
    """A fully masked query row gives zero attention output in hepml. torch
    gives NaN on its need_weights=True path (and did on more paths in the
    versions the course used); its SDPA path now gives 0 as well, which the
    layer comparison below relies on."""
    rng = np.random.default_rng(12)
    tl = tnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    layer = transfer(tl, hnn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), tmp_path)
    x = hepml.tensor(rand(rng, 3, 5, 8), requires_grad=True)
    kpm = np.zeros((3, 5), bool)
    kpm[1] = True  # event 1 is all padding
    out = layer(x, src_key_padding_mask=kpm)
    assert np.isfinite(out.numpy()).all()
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    with no_torch_fastpath():
        t_out = tl(torch.tensor(x.numpy()), src_key_padding_mask=torch.tensor(kpm))
    assert_close(out, t_out.detach().numpy(), rtol=FWD_TOL, atol=FWD_TOL, what="fully padded event vs torch SDPA")
    mha = hnn.MultiheadAttention(8, 2, batch_first=True)
    o, w = mha(x, x, x, key_padding_mask=kpm)
    assert (o.numpy()[1] == mha.out_proj.bias.numpy()).all()  # zero attention, then the output projection
    assert (w.numpy()[1] == 0).all()
    tmha = tnn.MultiheadAttention(8, 2, batch_first=True)
    xt = torch.tensor(x.numpy())
    assert torch.isnan(tmha(xt, xt, xt, key_padding_mask=torch.tensor(kpm), need_weights=True)[0][1]).all()


def test_dropout_in_training_is_random_and_reproducible():
    rng = np.random.default_rng(13)
    layer = hnn.TransformerEncoderLayer(16, 4, 32, dropout=0.3, batch_first=True)
    x = hepml.tensor(rand(rng, 4, 6, 16))
    hepml.manual_seed(1)
    a = layer(x).numpy().copy()
    b = layer(x).numpy().copy()
    hepml.manual_seed(1)
    c = layer(x).numpy().copy()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


def test_mha_need_weights_after_dropout_in_training():
    mha = hnn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = hepml.randn(64, 6, 8)
    _, w = mha(x, x, x, average_attn_weights=False)
    wn = w.numpy()
    assert (wn == 0).mean() > 0.3  # dropped entries (torch returns post-dropout weights too)
    mha.eval()
    _, w = mha(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-5)


# ---------------------------------------------------------- attention maps


def test_record_attention_transformer(tmp_path):
    rng = np.random.default_rng(14)
    t = tnn.Transformer(16, 4, 2, 1, 32, dropout=0.0, batch_first=True)
    h = transfer(t, hnn.Transformer(16, 4, 2, 1, 32, dropout=0.0, batch_first=True), tmp_path).eval()
    B, S, T = 3, 7, 2
    src, tgt, kpm = rand(rng, B, S, 16), rand(rng, B, T, 16), padding_mask(B, S)
    plain = h(_h(src), _h(tgt), src_key_padding_mask=_h(kpm), memory_key_padding_mask=_h(kpm)).numpy().copy()
    with hnn.record_attention(h) as maps:
        out = h(_h(src), _h(tgt), src_key_padding_mask=_h(kpm), memory_key_padding_mask=_h(kpm))
    np.testing.assert_array_equal(out.numpy(), plain)  # recording changes nothing
    assert maps.names() == ["encoder.layers.0.self_attn", "encoder.layers.1.self_attn",
                            "decoder.layers.0.self_attn", "decoder.layers.0.multihead_attn"]
    assert maps.kinds["encoder.layers.0.self_attn"] == "self"
    assert maps.kinds["decoder.layers.0.multihead_attn"] == "cross"
    assert maps["encoder.layers.1.self_attn"].shape == (B, 4, S, S)
    assert maps["decoder.layers.0.self_attn"].shape == (B, 4, T, T)
    assert maps["decoder.layers.0.multihead_attn"].shape == (B, 4, T, S)
    enc0 = maps["encoder.layers.0.self_attn"]
    np.testing.assert_allclose(enc0.sum(-1), 1.0, rtol=1e-5)
    assert (enc0[np.broadcast_to(kpm[:, None, None, :], enc0.shape)] == 0).all()
    np.testing.assert_array_equal(maps.key_padding_masks["encoder.layers.0.self_attn"], kpm)
    # the first encoder layer's per-head maps equal torch's
    tmha = t.encoder.layers[0].self_attn
    t.eval()
    with torch.no_grad():
        _, tw = tmha(_t(src), _t(src), _t(src), key_padding_mask=_t(kpm), average_attn_weights=False)
    np.testing.assert_allclose(enc0, tw.numpy(), rtol=1e-5, atol=1e-6)
    # hooks removed afterwards
    assert all(not m._recorders for m in h.modules() if isinstance(m, hnn.MultiheadAttention))
    assert "AttentionMaps" in repr(maps)


def test_record_attention_accumulate_and_errors():
    mha = hnn.MultiheadAttention(8, 2, batch_first=True)
    x = hepml.randn(2, 3, 8)
    with hnn.record_attention(mha, accumulate=True) as maps:
        mha(x, x, x, need_weights=False)
        mha(x, x, x, need_weights=False)
    assert maps["attention"].shape == (4, 2, 3, 3)
    with pytest.raises(ValueError, match="no MultiheadAttention"):
        with hnn.record_attention(hnn.Linear(2, 2)):
            pass


# --------------------------------------------------------------- bad input


def test_constructor_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"d_model=10 must be divisible by nhead=4"):
        hnn.TransformerEncoderLayer(10, 4)
    with pytest.raises(ValueError, match=r"d_model=10 must be divisible by nhead=4"):
        hnn.TransformerDecoderLayer(10, 4)
    with pytest.raises(ValueError, match=r"d_model=10 must be divisible by nhead=4"):
        hnn.Transformer(10, 4)
    with pytest.raises(ValueError, match=r"embed_dim=10 must be divisible by num_heads=4"):
        hnn.MultiheadAttention(10, 4)
    with pytest.raises(ValueError, match=r"'nhead' must be an int >= 1"):
        hnn.TransformerEncoderLayer(16, 0)
    with pytest.raises(ValueError, match=r"'activation' must be 'relu', 'gelu' or a callable, got 'tanh'"):
        hnn.TransformerEncoderLayer(16, 4, activation="tanh")
    with pytest.raises(ValueError, match=r"'dropout' must be a probability"):
        hnn.TransformerEncoderLayer(16, 4, dropout=1.5)
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        hnn.MultiheadAttention(16, 4, add_bias_kv=True)
    with pytest.raises(NotImplementedError, match="add_zero_attn"):
        hnn.MultiheadAttention(16, 4, add_zero_attn=True)
    with pytest.raises(TypeError, match="'encoder_layer' must be a Module"):
        hnn.TransformerEncoder("layer", 2)


def test_forward_errors_name_the_argument():
    enc = hnn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    x = hepml.randn(3, 5, 16)
    with pytest.raises(ValueError, match=r"argument 'src' has shape \(3, 5, 12\).*d_model=16"):
        enc(hepml.randn(3, 5, 12))
    with pytest.raises(ValueError, match=r"'src_key_padding_mask' has shape \(3, 4\), expected .* \(3, 5\)"):
        enc(x, src_key_padding_mask=np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match=r"'src_key_padding_mask' has shape \(5, 3\)"):
        enc(x, src_key_padding_mask=np.zeros((5, 3), bool))  # a (seq, batch) mask: wrong orientation
    with pytest.raises(ValueError, match=r"'src_mask' has shape \(4, 4\)"):
        enc(x, src_mask=np.zeros((4, 4), bool))
    with pytest.raises(TypeError, match=r"'src_mask' must be a bool or float mask.*int"):
        enc(x, src_mask=np.zeros((5, 5), np.int32))
    with pytest.raises(TypeError, match=r"'src_key_padding_mask' must be a bool or float mask.*int64"):
        enc(x, src_key_padding_mask=hepml.zeros(3, 5, dtype=hepml.int64))
    dec = hnn.TransformerDecoderLayer(16, 4, 32, batch_first=True)
    mem = hepml.randn(3, 7, 16)
    with pytest.raises(ValueError, match=r"'memory_mask' has shape \(2, 7\)"):
        dec(x, mem, memory_mask=np.zeros((2, 7), bool))
    with pytest.raises(ValueError, match=r"'memory_key_padding_mask' has shape \(3, 5\)"):
        dec(x, mem, memory_key_padding_mask=np.zeros((3, 5), bool))
    with pytest.raises(ValueError, match=r"'tgt_mask' has shape \(7, 7\)"):
        dec(x, mem, tgt_mask=np.zeros((7, 7), np.float32))
    with pytest.raises(ValueError, match=r"different batch sizes"):
        dec(x, hepml.randn(2, 7, 16))
    tr = hnn.Transformer(16, 4, 1, 1, 32, batch_first=True)
    with pytest.raises(ValueError, match=r"batch number of 'src'.*and 'tgt'"):
        tr(x, hepml.randn(2, 4, 16))
    with pytest.raises(ValueError, match=r"argument 'tgt' has shape \(3, 4, 8\)"):
        tr(x, hepml.randn(3, 4, 8))
    mha = hnn.MultiheadAttention(16, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"argument 'key' has shape \(3, 5, 8\), its last dim must be kdim=16"):
        mha(x, hepml.randn(3, 5, 8), x)
    with pytest.raises(ValueError, match=r"'key' has batch size 2 but 'query' has 3"):
        mha(x, hepml.randn(2, 5, 16), hepml.randn(2, 5, 16))
    with pytest.raises(ValueError, match=r"argument 'query' must be 3-D"):
        mha(hepml.randn(16), hepml.randn(16), hepml.randn(16))


def test_load_state_dict_shape_mismatch_is_clear(tmp_path):
    t = tnn.TransformerEncoderLayer(16, 4, 64)
    path = tmp_path / "m.pt"
    torch.save(t.state_dict(), path)
    h = hnn.TransformerEncoderLayer(16, 4, 32)
    with pytest.raises(RuntimeError, match="size mismatch for linear1.weight"):
        h.load_state_dict(hepml.load_torch_state_dict(path))


# -------------------------------------------------------------- hepml.viz


def test_plot_attention_draws_labelled_masked_maps():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    import hepml.viz
    model = hnn.Transformer(16, 4, 1, 1, 32, dropout=0.0, batch_first=True).eval()
    kpm = np.zeros((2, 16), bool)
    kpm[0, 4:13] = True  # event 0 has 4 jets
    with hnn.record_attention(model) as maps:
        model(hepml.randn(2, 16, 16), hepml.randn(2, 2, 16), src_key_padding_mask=kpm, memory_key_padding_mask=kpm)
    ax = hepml.viz.plot_attention(maps, event=0, layer=0, head=1)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == list(hepml.viz.DEFAULT_TOKENS)
    img = ax.images[0].get_array()
    assert img.mask[:, 5].all() and img.mask[5, :].all() and not img.mask[0, 0]  # jet6 padded: row and column
    assert [t.get_color() for t in ax.get_xticklabels()][5] == "grey"
    ax2 = hepml.viz.plot_attention(maps, layer="multihead", head="mean", query_tokens=["W1", "W2"])
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["W1", "W2"]
    fig = hepml.viz.plot_attention(maps, event=1, layer="decoder.layers.0.self_attn", head="all")
    assert len([a for a in fig.axes if a.images]) == 4
    # a plain array works too
    hepml.viz.plot_attention(maps.layer(0)[0, 0])
    with pytest.raises(IndexError, match="3 heads|4 heads"):
        hepml.viz.plot_attention(maps, head=7)
    with pytest.raises(KeyError, match="matches 2"):
        hepml.viz.plot_attention(maps, layer="self_attn")
    with pytest.raises(IndexError, match="event=5"):
        hepml.viz.plot_attention(maps, event=5)
    plt.close("all")


def test_attention_explorer_without_ipywidgets_says_so(monkeypatch):
    import sys

    import hepml.viz
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if not installed
    with pytest.raises(ImportError, match="needs the optional package ipywidgets"):
        hepml.viz.attention_explorer({"a": np.zeros((1, 1, 2, 2))})


def test_attention_explorer_widgets_redraw_the_chosen_map(monkeypatch):
    pytest.importorskip("ipywidgets")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import hepml.viz
    import hepml.viz.attention as va
    hepml.manual_seed(0)
    model = hnn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=32,
                            dropout=0.0, batch_first=True)
    with hnn.record_attention(model) as maps:
        model(hepml.randn(3, 16, 16), hepml.randn(3, 2, 16))
    calls = []
    real = va.plot_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(va, "plot_attention", spy)
    ui = hepml.viz.attention_explorer(maps)
    event, layer, head = ui.children[:3]
    assert (event.max, len(layer.options), len(head.options)) == (2, len(maps), 2 + 4)
    assert calls and calls[-1]["event"] == 0 and calls[-1]["head"] == 0
    event.value = 2
    layer.value = layer.options[-1]
    head.value = "mean"
    assert calls[-1]["event"] == 2 and calls[-1]["layer"] == layer.options[-1] and calls[-1]["head"] == "mean"
    with pytest.raises(IndexError, match="event=5"):
        real(maps, event=5)
    plt.close("all")
