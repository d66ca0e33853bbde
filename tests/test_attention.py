"""The fused attention op (hepml._C.attention, hepml.scaled_dot_product_attention,
hepml.multi_head_attention_forward): finite-difference gradients, agreement with
PyTorch for every mask type, the defined behaviour of fully masked rows,
dropout, and argument checks."""
import math

import numpy as np
import pytest

import hepml
from helpers import assert_close, gradcheck, to_np

C = hepml._C


def _rand(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _torch_reference(torch, q, k, v, H, kpm=None, am=None, causal=False, scale=None):
    """Multi-head attention from the definition, in torch (float64), batch first.
    Fully masked rows are set to 0 (torch itself gives NaN there)."""
    q, k, v = (torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in (q, k, v))
    B, L, E = q.shape
    S = k.shape[1]
    D = E // H
    qh = q.view(B, L, H, D).transpose(1, 2)
    kh = k.view(B, S, H, D).transpose(1, 2)
    vh = v.view(B, S, H, D).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) * (1 / math.sqrt(D) if scale is None else scale)
    allowed = torch.ones(B, H, L, S, dtype=torch.bool)
    if am is not None:
        am = np.asarray(am)
        amt = torch.tensor(am)
        if am.ndim == 3:
            amt = amt.view(B, H, L, S)
        if am.dtype == np.bool_:
            allowed = allowed & ~amt
        else:
            s = s + amt.double()
    if kpm is not None:
        kpm = np.asarray(kpm)
        if kpm.dtype == np.bool_:
            allowed = allowed & ~torch.tensor(kpm)[:, None, None, :]
        else:
            s = s + torch.tensor(kpm).double()[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(L, S, dtype=torch.bool).tril()
    s = s.masked_fill(~allowed, float("-inf"))
    dead = torch.isneginf(s).all(-1, keepdim=True)
    p = torch.softmax(s.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    out = (p @ vh).transpose(1, 2).reshape(B, L, E)
    return out, p, (q, k, v)


def _compare_with_torch(torch, rng, B=3, L=5, S=6, E=8, H=2, kpm=None, am=None, causal=False, scale=None):
    q, k, v = _rand(rng, B, L, E), _rand(rng, B, S, E), _rand(rng, B, S, E)
    hq, hk, hv = (hepml.tensor(a, requires_grad=True) for a in (q, k, v))
    out, w = C.attention(hq, hk, hv, H, key_padding_mask=kpm, attn_mask=am, is_causal=causal, need_weights=True,
                         scale=scale)
    ref, p, tin = _torch_reference(torch, q, k, v, H, kpm, am, causal, scale)
    assert_close(out, ref.detach().numpy(), rtol=1e-5, atol=1e-5, what="attention output")
    assert_close(w, p.detach().numpy(), rtol=1e-5, atol=1e-6, what="attention weights")
    g = _rand(rng, B, L, E)
    out.backward(gradient=hepml.tensor(g))
    ref.backward(torch.tensor(g, dtype=torch.float64))
    for name, h, t in zip("qkv", (hq, hk, hv), tin):
        tg = t.grad.numpy()
        err = np.abs(to_np(h.grad) - tg).max()
        assert err <= 1e-5 * max(1.0, np.abs(tg).max()), f"gradient of {name} differs by {err}"


# ------------------------------------------------------------------ vs torch


def test_plain_attention_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    _compare_with_torch(torch, rng)
    _compare_with_torch(torch, rng, B=2, L=16, S=16, E=64, H=4)
    _compare_with_torch(torch, rng, B=1, L=1, S=9, E=6, H=3)
    _compare_with_torch(torch, rng, scale=0.3)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_key_padding_mask_matches_torch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    kpm = np.zeros((3, 6), bool)
    kpm[0, 4:] = True
    kpm[1, 1:] = True
    if kind == "float":
        m = np.where(kpm, -np.inf, 0).astype(np.float32)
        m[2] = _rand(rng, 6)  # arbitrary additive biases
        kpm = m
    _compare_with_torch(torch, rng, kpm=kpm)


@pytest.mark.parametrize("kind", ["bool2d", "float2d", "bool3d", "float3d"])
def test_attn_mask_matches_torch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    B, L, S, H = 3, 5, 6, 2
    shape = (L, S) if kind.endswith("2d") else (B * H, L, S)
    if kind.startswith("bool"):
        am = rng.random(shape) < 0.3
    else:
        am = _rand(rng, *shape)
        am[..., 0, 2] = -np.inf
    _compare_with_torch(torch, rng, B=B, L=L, S=S, H=H, am=am)


def test_all_masks_combined_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    B, L, S, H = 3, 6, 6, 2
    kpm = np.zeros((B, S), bool)
    kpm[0, 4:] = True
    kpm_f = np.where(kpm, -np.inf, 0.0).astype(np.float32)
    am_b = rng.random((B * H, L, S)) < 0.2
    am_b2 = rng.random((L, S)) < 0.2
    am_f = _rand(rng, L, S)
    am_f3 = _rand(rng, B * H, L, S)
    for kp in (kpm, kpm_f):
        for am in (am_b, am_b2, am_f, am_f3):
            _compare_with_torch(torch, rng, B=B, L=L, S=S, H=H, kpm=kp, am=am, causal=True)
    _compare_with_torch(torch, rng, B=B, L=4, S=7, H=H, causal=True)  # L != S: top-left aligned


# ------------------------------------------------------- fully masked rows


def test_fully_masked_rows_give_zero_not_nan():
    rng = np.random.default_rng(4)
    B, L, S, E, H = 2, 3, 4, 4, 2
    q, k, v = (hepml.tensor(_rand(rng, B, n, E), requires_grad=True) for n in (L, S, S))
    kpm = np.zeros((B, S), bool)
    kpm[1] = True  # event 1 has no valid key at all
    am = np.zeros((L, S), bool)
    am[0] = True  # query 0 may not attend anything
    out, w = C.attention(q, k, v, H, key_padding_mask=kpm, attn_mask=am, need_weights=True)
    o = out.numpy()
    assert np.isfinite(o).all()
    assert (o[1] == 0).all() and (o[:, 0] == 0).all()
    assert (w.numpy()[1] == 0).all() and (w.numpy()[:, :, 0] == 0).all()
    assert np.abs(o[0, 1:]).max() > 0
    out.backward(gradient=hepml.ones(B, L, E))
    for t in (q, k, v):
        assert np.isfinite(t.grad.numpy()).all()
    assert (k.grad.numpy()[1] == 0).all() and (v.grad.numpy()[1] == 0).all()
    assert (q.grad.numpy()[:, 0] == 0).all()


def test_float_mask_of_minus_inf_rows_is_fully_masked():
    rng = np.random.default_rng(5)
    q, k, v = (hepml.tensor(_rand(rng, 1, 2, 4)) for _ in range(3))
    am = np.zeros((2, 2), np.float32)
    am[1] = -np.inf
    out, _ = C.attention(q, k, v, 1, attn_mask=am)
    assert (out.numpy()[0, 1] == 0).all() and np.isfinite(out.numpy()).all()


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("masks", ["none", "kpm", "bool_mask", "float_mask", "causal", "float_kpm"])
def test_gradcheck(masks):
    rng = np.random.default_rng(6)
    B, L, S, E, H = 2, 3, 4, 4, 2
    kpm = am = None
    causal = False
    if masks == "kpm":
        kpm = np.array([[False, False, True, False], [False, True, True, True]])
    elif masks == "float_kpm":
        kpm = np.array([[0, 0.5, -np.inf, 0], [1.0, -2.0, 0, 0]], np.float32)
    elif masks == "bool_mask":
        am = np.array([[False, True, False, False], [False, False, False, True], [True, False, False, False]])
    elif masks == "float_mask":
        am = _rand(rng, B * H, L, S)
    elif masks == "causal":
        causal = True
    arrays = [_rand(rng, B, L, E), _rand(rng, B, S, E), _rand(rng, B, S, E)]
    gradcheck(lambda q, k, v: C.attention(q, k, v, H, key_padding_mask=kpm, attn_mask=am, is_causal=causal)[0],
              *arrays)


def test_gradcheck_self_attention_same_tensor():
    rng = np.random.default_rng(7)
    gradcheck(lambda x: C.attention(x, x, x, 2, is_causal=True)[0], _rand(rng, 2, 4, 4))


def test_gradcheck_with_dropout():
    rng = np.random.default_rng(8)

    def fn(q, k, v):
        hepml.manual_seed(99)  # the same keep decisions on every evaluation
        return C.attention(q, k, v, 2, dropout_p=0.3)[0]

    gradcheck(fn, _rand(rng, 2, 3, 4), _rand(rng, 2, 5, 4), _rand(rng, 2, 5, 4))


def test_gradcheck_sdpa():
    rng = np.random.default_rng(9)
    mask = np.tril(np.ones((3, 3), bool))
    gradcheck(lambda q, k, v: hepml.scaled_dot_product_attention(q, k, v, attn_mask=mask),
              _rand(rng, 2, 2, 3, 4), _rand(rng, 2, 2, 3, 4), _rand(rng, 2, 2, 3, 4))


# ------------------------------------------------------------------ dropout


def test_dropout_output_matches_returned_weights():
    """With dropout, need_weights returns the probabilities after dropout (as
    torch), and the output is exactly those weights applied to the values."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    B, L, S, E, H = 2, 5, 7, 8, 2
    q, k, v = _rand(rng, B, L, E), _rand(rng, B, S, E), _rand(rng, B, S, E)
    hepml.manual_seed(3)
    out, w = C.attention(q, k, v, H, dropout_p=0.4, need_weights=True)
    hepml.manual_seed(3)
    _, w_pre = C.attention(q, k, v, H, dropout_p=0.4, need_weights=True, weights_after_dropout=False)
    _, p, _ = _torch_reference(torch, q, k, v, H)
    assert_close(w_pre, p.detach().numpy(), rtol=1e-5, atol=1e-6, what="pre-dropout weights")
    wn = w.numpy()
    kept = wn != 0
    np.testing.assert_allclose(wn[kept], w_pre.numpy()[kept] / 0.6, rtol=1e-6)
    frac_dropped = 1 - kept.mean()
    assert 0.25 < frac_dropped < 0.55
    vh = torch.tensor(v, dtype=torch.float64).view(B, S, H, E // H).transpose(1, 2)
    ref = (torch.tensor(wn, dtype=torch.float64) @ vh).transpose(1, 2).reshape(B, L, E).numpy()
    assert_close(out, ref, rtol=1e-5, atol=1e-5, what="output with dropout")


def test_dropout_reproducible_and_advances_rng():
    rng = np.random.default_rng(11)
    q = _rand(rng, 4, 6, 8)
    hepml.manual_seed(5)
    a1, _ = C.attention(q, q, q, 2, dropout_p=0.5)
    a2, _ = C.attention(q, q, q, 2, dropout_p=0.5)
    hepml.manual_seed(5)
    b1, _ = C.attention(q, q, q, 2, dropout_p=0.5)
    np.testing.assert_array_equal(a1.numpy(), b1.numpy())
    assert not np.array_equal(a1.numpy(), a2.numpy())
    # dropout 0 consumes no random numbers
    hepml.manual_seed(5)
    C.attention(q, q, q, 2, dropout_p=0.0)
    c1, _ = C.attention(q, q, q, 2, dropout_p=0.5)
    np.testing.assert_array_equal(a1.numpy(), c1.numpy())


def test_dropout_one_drops_everything():
    q = np.ones((1, 2, 4), np.float32)
    out, w = C.attention(q, q, q, 1, dropout_p=1.0, need_weights=True)
    assert (out.numpy() == 0).all() and (w.numpy() == 0).all()


# ------------------------------------------------------------- functional


def test_sdpa_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    q, k, v = _rand(rng, 2, 3, 5, 8), _rand(rng, 2, 3, 7, 8), _rand(rng, 2, 3, 7, 8)
    tq, tk, tv = (torch.tensor(a) for a in (q, k, v))
    bmask = rng.random((5, 7)) < 0.7
    bmask[:, 0] = True
    masks = [None, bmask, _rand(rng, 5, 7), _rand(rng, 2, 1, 5, 7), rng.random((2, 3, 5, 7)) < 0.8]
    for m in masks:
        ref = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=None if m is None else torch.tensor(m))
        if m is not None and m.dtype == np.bool_:
            ref = torch.nan_to_num(ref)  # rows with nothing allowed: torch NaN, hepml 0
            got = hepml.scaled_dot_product_attention(q, k, v, attn_mask=hepml.tensor(m))
        else:
            got = hepml.scaled_dot_product_attention(q, k, v, attn_mask=None if m is None else hepml.tensor(m))
        assert_close(got, ref.numpy(), rtol=1e-5, atol=1e-5, what=f"sdpa with mask {None if m is None else m.shape}")
    ref = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True, scale=0.2)
    assert_close(hepml.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.2), ref.numpy(), rtol=1e-5,
                 atol=1e-5)


def test_multi_head_attention_forward_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(13)
    L, S, N, E, H = 4, 6, 3, 8, 2
    q, k = _rand(rng, L, N, E), _rand(rng, S, N, E)
    w_in, b_in, w_out, b_out = _rand(rng, 3 * E, E), _rand(rng, 3 * E), _rand(rng, E, E), _rand(rng, E)
    kpm = np.zeros((N, S), bool)
    kpm[1, 3:] = True
    am = _rand(rng, L, S)
    for avg in (True, False):
        ref_o, ref_w = F.multi_head_attention_forward(
            torch.tensor(q), torch.tensor(k), torch.tensor(k), E, H, torch.tensor(w_in), torch.tensor(b_in), None,
            None, False, 0.0, torch.tensor(w_out), torch.tensor(b_out), training=False,
            key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(am), average_attn_weights=avg)
        o, w = hepml.multi_head_attention_forward(q, k, k, E, H, w_in, b_in, None, None, False, 0.0, w_out, b_out,
                                                  training=False, key_padding_mask=kpm, attn_mask=am,
                                                  average_attn_weights=avg)
        assert_close(o, ref_o.numpy(), rtol=1e-5, atol=1e-5, what="mha output")
        assert_close(w, ref_w.numpy(), rtol=1e-5, atol=1e-6, what="mha weights")
    # unbatched
    ref_o, ref_w = F.multi_head_attention_forward(
        torch.tensor(q[:, 0]), torch.tensor(k[:, 0]), torch.tensor(k[:, 0]), E, H, torch.tensor(w_in),
        torch.tensor(b_in), None, None, False, 0.0, torch.tensor(w_out), torch.tensor(b_out), training=False)
    o, w = hepml.multi_head_attention_forward(q[:, 0], k[:, 0], k[:, 0], E, H, w_in, b_in, None, None, False, 0.0,
                                              w_out, b_out, training=False)
    assert_close(o, ref_o.numpy(), rtol=1e-5, atol=1e-5)
    assert_close(w, ref_w.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match="add_zero_attn"):
        hepml.multi_head_attention_forward(q, k, k, E, H, w_in, b_in, None, None, True, 0.0, w_out, b_out)


def test_functional_exported_in_nn_functional():
    assert hepml.nn.functional.scaled_dot_product_attention is hepml.scaled_dot_product_attention
    assert hepml.nn.functional.multi_head_attention_forward is hepml.multi_head_attention_forward


# --------------------------------------------------------------- bad input


def _qkv(B=2, L=3, S=4, E=8):
    return np.zeros((B, L, E), np.float32), np.zeros((B, S, E), np.float32), np.zeros((B, S, E), np.float32)


def test_errors_name_the_argument():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"'query' must be 3-D.*\(3, 8\)"):
        C.attention(q[0], k, v, 2)
    with pytest.raises(ValueError, match=r"not divisible by num_heads 3"):
        C.attention(q, k, v, 3)
    with pytest.raises(ValueError, match=r"num_heads must be a positive int"):
        C.attention(q, k, v, 0)
    with pytest.raises(ValueError, match=r"'key' has shape \(2, 4, 6\), expected \(2, S, 8\)"):
        C.attention(q, k[..., :6], v, 2)
    with pytest.raises(ValueError, match=r"'key' has shape \(1, 4, 8\)"):
        C.attention(q, k[:1], v, 2)
    with pytest.raises(ValueError, match=r"'value' has shape \(2, 3, 8\), expected \(2, 4, 8\)"):
        C.attention(q, k, v[:, :3], 2)
    with pytest.raises(ValueError, match=r"'key_padding_mask' has shape \(2, 3\), expected \(batch, source length\) "
                                         r"= \(2, 4\)"):
        C.attention(q, k, v, 2, key_padding_mask=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"'attn_mask' has shape \(4, 3\), expected .* \(3, 4\) or .* \(4, 3, 4\)"):
        C.attention(q, k, v, 2, attn_mask=np.zeros((4, 3), bool))
    with pytest.raises(TypeError, match=r"'attn_mask' must be a bool or float mask.*int64"):
        C.attention(q, k, v, 2, attn_mask=np.zeros((3, 4), np.int64))
    with pytest.raises(TypeError, match=r"'key_padding_mask' must be a bool or float mask.*int64"):
        C.attention(q, k, v, 2, key_padding_mask=hepml.zeros(2, 4, dtype=hepml.int64))
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\]"):
        C.attention(q, k, v, 2, dropout_p=1.5)
    with pytest.raises(NotImplementedError, match=r"'attn_mask' requires grad"):
        C.attention(q, k, v, 2, attn_mask=hepml.zeros(3, 4, requires_grad=True))
    with pytest.raises(TypeError, match=r"'query' must be a tensor"):
        C.attention(None, k, v, 2)
    # custom names (how the layers report their own argument names)
    with pytest.raises(ValueError, match=r"Layer\(\): argument 'memory_mask' has shape"):
        C.attention(q, k, v, 2, attn_mask=np.zeros((4, 3), bool), op="Layer",
                    names=("tgt", "memory", "memory", "memory_key_padding_mask", "memory_mask"))


def test_sdpa_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="'key' has shape"):
        hepml.scaled_dot_product_attention(q, k[:, :, :4], v)
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        hepml.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), bool), is_causal=True)
    with pytest.raises(ValueError, match="'attn_mask' has shape"):
        hepml.scaled_dot_product_attention(q, k, v, attn_mask=hepml.tensor(np.ones((3, 5), bool)))
    with pytest.raises(NotImplementedError, match="value's feature dim"):
        hepml.scaled_dot_product_attention(q, k, v[:, :, :4])


def test_saved_tensor_modified_in_place_is_detected():
    rng = np.random.default_rng(14)
    q = hepml.tensor(_rand(rng, 1, 2, 4), requires_grad=True)
    k = hepml.tensor(_rand(rng, 1, 2, 4))
    out, _ = C.attention(q, k, k, 1)
    with hepml.no_grad():
        k.fill_(1.0)
    with pytest.raises(RuntimeError, match="modified"):
        out.sum().backward()


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(15)
    B, L, E = 64, 16, 32  # large enough for the kernel to split work over threads
    q = hepml.tensor(_rand(rng, B, L, E), requires_grad=True)
    kpm = np.arange(L)[None, :] >= rng.integers(1, L + 1, size=B)[:, None]
    g = hepml.tensor(_rand(rng, B, L, E))
    old = hepml.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            hepml.set_num_threads(n)
            hepml.manual_seed(7)
            q.grad = None
            out, w = C.attention(q, q, q, 4, key_padding_mask=kpm, dropout_p=0.2, need_weights=True)
            out.backward(gradient=g)
            results.append((out.numpy().copy(), w.numpy().copy(), q.grad.numpy().copy()))
    finally:
        hepml.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
