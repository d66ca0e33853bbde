"""hepml.models.neutrino: the WWEncoder and the NeutrinoFlowModel of notebook 6.

Agreement with a minimal PyTorch encoder (and a torch + zuko flow) of the same
architecture and state-dict names, gradients reaching every parameter through the
context, padded tokens having no effect, and clear errors for bad inputs."""
import io

import numpy as np
import pytest

import hepml
from hepml.models.neutrino import NeutrinoFlowModel, WWEncoder

B, NJ = 12, 13


def _event_arrays(seed=0, b=B):
    rng = np.random.default_rng(seed)
    jets = rng.standard_normal((b, NJ, 5)).astype(np.float32)
    leptons = rng.standard_normal((b, 2, 3)).astype(np.float32)
    met = rng.standard_normal((b, 1, 2)).astype(np.float32)
    n_jets = rng.integers(2, NJ + 1, size=b)
    n_jets[0], n_jets[1] = 2, NJ                       # the extremes: no extra jet, every slot filled
    jet_mask = np.arange(NJ)[None, :] < n_jets[:, None]
    jets[~jet_mask] = 0.0                              # the dataset's padding is zeros
    mask = np.concatenate([jet_mask, np.ones((b, 3), bool)], 1)
    nu = rng.standard_normal((b, 2, 3)).astype(np.float32)
    return jets, leptons, met, mask, nu


def _h(*arrays):
    return [hepml.tensor(a) for a in arrays]


# ---------------------------------------------------------------- torch reference

def _torch_encoder_class():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchWWEncoder(tnn.Module):
        """The same architecture written directly in PyTorch (same attribute names)."""

        def __init__(self, d_model=32, nhead=4, layers=2, ff=128, context=16, score_hidden=16):
            super().__init__()
            self.embedding_jets = tnn.Sequential(tnn.Linear(5, d_model - 1), tnn.SELU())
            self.embedding_lep = tnn.Sequential(tnn.Linear(3, d_model - 1), tnn.SELU())
            self.embedding_met = tnn.Sequential(tnn.Linear(2, d_model - 1), tnn.SELU())
            labels = torch.zeros(NJ + 3, 1)
            labels[NJ:NJ + 2] = 1.0
            labels[NJ + 2] = -1.0
            self.register_buffer("obj_type", labels)
            layer = tnn.TransformerEncoderLayer(d_model, nhead, ff, 0.0, batch_first=True)
            self.encoder = tnn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.score_net = tnn.Sequential(tnn.Linear(d_model, score_hidden), tnn.SELU(),
                                            tnn.Linear(score_hidden, 1), tnn.Sigmoid())
            self.projection = tnn.Linear(d_model, context)

        def forward(self, jets, leptons, met, mask):
            x = torch.cat([self.embedding_jets(jets), self.embedding_lep(leptons), self.embedding_met(met)], 1)
            x = torch.cat([x, self.obj_type.expand(x.shape[0], -1, -1)], -1)
            h = self.encoder(x, src_key_padding_mask=~mask)
            s = self.score_net(h).squeeze(-1) * mask.float()
            w = s / (s.sum(-1, keepdim=True) + 1e-6)
            return self.projection((h * w.unsqueeze(-1)).sum(1)), h, s

    return torch, TorchWWEncoder


def _torch_pair(seed=0):
    torch, TorchWWEncoder = _torch_encoder_class()
    torch.manual_seed(seed)
    ref = TorchWWEncoder()
    # a state dict round trip through torch.save / hepml.load_torch_state_dict (no torch on hepml's side)
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    enc = WWEncoder()
    enc.load_state_dict(hepml.load_torch_state_dict(buf.getvalue()))
    return torch, ref, enc


def test_encoder_matches_torch_reference():
    torch, ref, enc = _torch_pair()
    jets, leptons, met, mask, _ = _event_arrays()
    tj, tl, tm = (torch.tensor(a, requires_grad=True) for a in (jets, leptons, met))
    ctx_t, tok_t, s_t = ref(tj, tl, tm, torch.tensor(mask))
    hj, hl, hm_ = (hepml.tensor(a).requires_grad_() for a in (jets, leptons, met))
    hmask = hepml.tensor(mask)
    ctx_h = enc(hj, hl, hm_, hmask)
    tok_h, s_h = enc.forward_tokens(hj, hl, hm_, hmask)
    np.testing.assert_allclose(ctx_h.detach().numpy(), ctx_t.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s_h.detach().numpy(), s_t.detach().numpy(), rtol=1e-5, atol=1e-5)
    valid = mask  # torch and hepml agree on real tokens; padded tokens' outputs are unspecified
    np.testing.assert_allclose(tok_h.detach().numpy()[valid], tok_t.detach().numpy()[valid], rtol=1e-5, atol=1e-5)
    # gradients of a function of the context: inputs and every parameter
    g = np.random.default_rng(3).standard_normal(ctx_t.shape).astype(np.float32)
    (ctx_t * torch.tensor(g)).sum().backward()
    (ctx_h * hepml.tensor(g)).sum().backward()
    for th, hh, name in ((tj, hj, "jets"), (tl, hl, "leptons"), (tm, hm_, "met")):
        np.testing.assert_allclose(hh.grad.numpy(), th.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
    hp = dict(enc.named_parameters())
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(hp[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_flow_model_matches_torch_zuko():
    """The whole model (encoder + MAF with rotations, and NSF): same state dict, same log p."""
    torch, TorchWWEncoder = _torch_encoder_class()
    zuko = pytest.importorskip("zuko")
    jets, leptons, met, mask, nu = _event_arrays(1)
    for kind in ("maf", "nsf"):
        torch.manual_seed(0)
        enc = TorchWWEncoder()
        if kind == "maf":
            ts = []
            for i in range(3):
                if i:
                    ts.append(zuko.flows.UnconditionalTransform(zuko.transforms.RotationTransform, torch.randn(6, 6)))
                ts.append(zuko.flows.MaskedAutoregressiveTransform(6, 16, order=list(range(6))[::(-1 if i % 2 else 1)],
                                                                   hidden_features=(32, 32)))
            zf = zuko.flows.Flow(ts, zuko.flows.UnconditionalDistribution(
                zuko.distributions.DiagNormal, loc=torch.zeros(6), scale=torch.ones(6), buffer=True))
            model = NeutrinoFlowModel.maf(transforms=3, hidden_features=(32, 32))
        else:
            zf = zuko.flows.NSF(6, 16, transforms=2, bins=10, hidden_features=(32, 32))
            model = NeutrinoFlowModel.nsf(transforms=2, hidden_features=(32, 32))
        with torch.no_grad():
            for p in zf.parameters():
                p.normal_(0, 0.2)
        state = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
        state.update({f"flow.{k}": v for k, v in zf.state_dict().items()})
        model.load_state_dict(hepml.load_torch_state_dict(state))
        ctx, _, _ = enc(*(torch.tensor(a) for a in (jets, leptons, met, mask)))
        lp_t = zf(ctx).log_prob(torch.tensor(nu.reshape(B, 6)))
        lp_t.sum().backward()
        lp_h = model.log_prob(*_h(nu, jets, leptons, met, mask))
        lp_h.sum().backward()
        np.testing.assert_allclose(lp_h.detach().numpy(), lp_t.detach().numpy(), rtol=3e-5, atol=3e-5,
                                   err_msg=kind)
        hp = dict(model.named_parameters())
        torch_params = [(f"encoder.{k}", p) for k, p in enc.named_parameters()]
        torch_params += [(f"flow.{k}", p) for k, p in zf.named_parameters()]
        for name, p in torch_params:
            g = p.grad.numpy()
            np.testing.assert_allclose(hp[name].grad.numpy(), g, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(g).max()),
                                       err_msg=f"{kind}: {name}")


# ---------------------------------------------------------------- properties

@pytest.mark.parametrize("kind", ["maf", "nsf"])
def test_gradients_reach_every_parameter(kind):
    hepml.manual_seed(0)
    model = (NeutrinoFlowModel.maf(transforms=2, hidden_features=(16, 16)) if kind == "maf"
             else NeutrinoFlowModel.nsf(transforms=2, bins=4, hidden_features=(16, 16)))
    jets, leptons, met, mask, nu = _event_arrays(2)
    loss = -model.log_prob(*_h(nu, jets, leptons, met, mask)).mean()
    loss.backward()
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith("encoder.") for n in names) and any(n.startswith("flow.") for n in names)
    if kind == "maf":
        assert any(n.endswith("._0") for n in names), "the rotation's A should be a learnable parameter"
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        g = p.grad.numpy()
        assert np.all(np.isfinite(g)), name
        assert np.abs(g).max() > 0, f"zero gradient at {name}"


def test_padded_tokens_do_not_change_the_context():
    hepml.manual_seed(1)
    enc = WWEncoder()
    jets, leptons, met, mask, _ = _event_arrays(4)
    jets_changed = jets.copy()
    jet_pad = ~mask[:, :NJ]
    jets_changed[jet_pad] = np.random.default_rng(5).standard_normal((jet_pad.sum(), 5)).astype(np.float32) * 10
    assert (jets_changed != jets).any()
    a = enc(*_h(jets, leptons, met, mask)).numpy()
    b = enc(*_h(jets_changed, leptons, met, mask)).numpy()
    assert np.array_equal(a, b)
    # the scores of padded tokens are 0, and the real tokens' outputs are unchanged as well
    tok_a, s_a = enc.forward_tokens(*_h(jets, leptons, met, mask))
    tok_b, s_b = enc.forward_tokens(*_h(jets_changed, leptons, met, mask))
    assert np.all(s_a.numpy()[~mask] == 0)
    assert np.array_equal(tok_a.numpy()[mask], tok_b.numpy()[mask])
    # ... while changing a real jet does change the context
    jets_real = jets.copy()
    jets_real[:, 0] += 1.0
    assert not np.allclose(enc(*_h(jets_real, leptons, met, mask)).numpy(), a)


def test_pooling_is_a_weighted_mean():
    hepml.manual_seed(2)
    enc = WWEncoder()
    jets, leptons, met, mask, _ = _event_arrays(6)
    tokens, scores = enc.forward_tokens(*_h(jets, leptons, met, mask))
    pooled = enc.pool(tokens, scores).numpy()
    t, s = tokens.numpy().astype(np.float64), scores.numpy().astype(np.float64)
    w = s / (s.sum(1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(pooled, (t * w[..., None]).sum(1), rtol=1e-5, atol=1e-6)
    assert np.all((s[mask] > 0) & (s[mask] < 1))
    # a constant token sequence pools to that token (the weights sum to ~1)
    const = hepml.ones(2, NJ + 3, 32) * 3.0
    np.testing.assert_allclose(enc.pool(const, hepml.tensor(s[:2].astype(np.float32))).numpy(), 3.0, rtol=1e-5)


def test_shapes_sampling_and_batch_helpers():
    hepml.manual_seed(3)
    model = NeutrinoFlowModel.maf(transforms=2, hidden_features=(16, 16), d_model=16, nhead=2,
                                  dim_feedforward=32)
    jets, leptons, met, mask, nu = _event_arrays(7)
    args = _h(jets, leptons, met, mask)
    assert tuple(model.context(*args).shape) == (B, 16)
    assert tuple(model.log_prob(hepml.tensor(nu), *args).shape) == (B,)
    lp6 = model.log_prob(hepml.tensor(nu.reshape(B, 6)), *args).detach().numpy()
    np.testing.assert_array_equal(lp6, model.log_prob(hepml.tensor(nu), *args).detach().numpy())
    s = model.sample(*args)
    assert tuple(s.shape) == (B, 6) and not s.requires_grad
    assert tuple(model.sample(*args, n=3).shape) == (3, B, 6)
    assert np.all(np.isfinite(s.numpy()))
    batch = dict(zip(("jet_data", "lepton_data", "met_data", "jetlepmet_padding_mask", "nu_data"),
                     _h(jets, leptons, met, mask, nu)))
    nll = model.nll(batch)
    np.testing.assert_allclose(nll.item(), -lp6.mean(), rtol=1e-5)
    assert tuple(model.sample_batch(batch).shape) == (B, 6)
    # rebuild from the config and load the state: the same function
    other = NeutrinoFlowModel.from_config(model.config)
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other.log_prob(hepml.tensor(nu), *args).detach().numpy(), lp6)
    # NumPy inputs are accepted as well
    np.testing.assert_allclose(model.log_prob(nu, jets, leptons, met, mask).detach().numpy(), lp6, rtol=1e-6)


def test_bad_inputs_name_the_argument():
    enc = WWEncoder()
    jets, leptons, met, mask, nu = _event_arrays(8)
    hj, hl, hmt, hmask = _h(jets, leptons, met, mask)
    with pytest.raises(ValueError, match=r"argument 'jets' has shape \(12, 12, 5\)"):
        enc(hj[:, :12], hl, hmt, hmask)
    with pytest.raises(ValueError, match=r"argument 'jets' has shape \(12, 13, 4\)"):
        enc(hj[..., :4], hl, hmt, hmask)
    with pytest.raises(ValueError, match=r"argument 'leptons' has shape \(11, 2, 3\)"):
        enc(hj, hl[:11], hmt, hmask)
    with pytest.raises(ValueError, match=r"argument 'met' has shape \(12, 2\)"):
        enc(hj, hl, hmt[:, 0], hmask)
    with pytest.raises(ValueError, match=r"argument 'mask' has shape \(12, 13\)"):
        enc(hj, hl, hmt, hmask[:, :13])
    with pytest.raises(TypeError, match=r"argument 'mask' must be a bool tensor"):
        enc(hj, hl, hmt, hmask.float())
    with pytest.raises(TypeError, match=r"argument 'jets' must be a float32 tensor"):
        enc(hepml.tensor(jets.astype(np.int64), dtype=hepml.int64), hl, hmt, hmask)
    with pytest.raises(TypeError, match=r"argument 'met'"):
        enc(hj, hl, object(), hmask)
    with pytest.raises(ValueError, match="d_model=30 must be divisible by nhead=4"):
        WWEncoder(d_model=30)
    with pytest.raises(ValueError, match="argument 'context_features'"):
        WWEncoder(context_features=0)
    model = NeutrinoFlowModel.maf(transforms=1, hidden_features=(8,))
    with pytest.raises(ValueError, match=r"argument 'nu' has shape \(12, 5\)"):
        model.log_prob(hepml.tensor(nu.reshape(B, 6)[:, :5]), hj, hl, hmt, hmask)
    with pytest.raises(ValueError, match=r"argument 'nu' has 6 events"):
        model.log_prob(hepml.tensor(nu[:6]), hj, hl, hmt, hmask)
    with pytest.raises(KeyError, match="nu_data"):
        model.nll({"jet_data": hj})
    with pytest.raises(ValueError, match="argument 'n'"):
        model.sample(hj, hl, hmt, hmask, n=0)
    with pytest.raises(TypeError, match="argument 'flow'"):
        NeutrinoFlowModel(enc, "maf")
