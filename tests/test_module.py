"""Module system, layers, state dicts and saving, against torch.nn where it applies."""
import os

import numpy as np
import pytest

import hepml
from hepml import nn
from helpers import assert_close, torch_or_skip


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(5, 16)
        self.body = nn.Sequential(nn.SELU(), nn.Linear(16, 16), nn.LayerNorm(16), nn.Dropout(0.1))
        self.head = nn.ModuleList([nn.Linear(16, 4), nn.Linear(4, 1, bias=False)])
        self.register_buffer("obj_type", hepml.tensor([0.0, 1.0, -1.0]))

    def forward(self, x):
        x = self.body(self.embed(x))
        for m in self.head:
            x = m(x)
        return x


def torch_net(torch):
    tnn = torch.nn

    class TNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = tnn.Linear(5, 16)
            self.body = tnn.Sequential(tnn.SELU(), tnn.Linear(16, 16), tnn.LayerNorm(16), tnn.Dropout(0.1))
            self.head = tnn.ModuleList([tnn.Linear(16, 4), tnn.Linear(4, 1, bias=False)])
            self.register_buffer("obj_type", torch.tensor([0.0, 1.0, -1.0]))

        def forward(self, x):
            x = self.body(self.embed(x))
            for m in self.head:
                x = m(x)
            return x
    return TNet()


def test_parameter_names_and_counts_match_torch():
    torch = torch_or_skip()
    h, t = Net(), torch_net(torch)
    assert [n for n, _ in h.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert list(h.state_dict().keys()) == list(t.state_dict().keys())
    assert hepml.count_parameters(h) == sum(p.numel() for p in t.parameters())


def test_repr_matches_torch():
    torch = torch_or_skip()
    assert repr(Net()).replace("Net(", "X(") == repr(torch_net(torch)).replace("TNet(", "X(")


def test_load_torch_weights_gives_same_outputs():
    torch = torch_or_skip()
    t = torch_net(torch).eval()
    h = Net().eval()
    h.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    assert_close(h(hepml.tensor(x)), t(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_linear_init_distribution():
    hepml.manual_seed(0)
    lin = nn.Linear(100, 200)
    w = lin.weight.numpy()
    bound = 1 / np.sqrt(100)
    assert w.min() >= -bound and w.max() <= bound and abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound * 10


def test_load_state_dict_errors_name_keys_and_shapes():
    h = Net()
    sd = h.state_dict()
    bad = dict(sd)
    bad["embed.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(RuntimeError, match=r"size mismatch for embed.weight.*\(3, 3\).*\(16, 5\)"):
        h.load_state_dict(bad)
    missing = dict(sd)
    del missing["head.0.bias"]
    missing["extra"] = np.zeros(1, np.float32)
    with pytest.raises(RuntimeError, match='Missing key.*"head.0.bias"'):
        h.load_state_dict(missing)
    mk, uk = h.load_state_dict(missing, strict=False)
    assert mk == ["head.0.bias"] and uk == ["extra"]


def test_train_eval_and_zero_grad():
    h = Net()
    assert all(m.training for m in h.modules())
    h.eval()
    assert not any(m.training for m in h.modules())
    out = h(hepml.randn(4, 5))
    out.backward(gradient=np.ones((4, 1)))
    assert h.embed.weight.grad is not None
    h.zero_grad()
    assert h.embed.weight.grad is None


def test_save_load_roundtrip_is_atomic(tmp_path):
    h = Net()
    path = tmp_path / "model.npz"
    hepml.save(h, path)
    assert os.listdir(tmp_path) == ["model.npz"]
    h2 = Net()
    h2.load_state_dict(hepml.load(path))
    for (k, a), (_, b) in zip(h.state_dict().items(), h2.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    with pytest.raises(TypeError, match="Module or a dict"):
        hepml.save([1, 2], tmp_path / "x.npz")
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a hepml"):
        hepml.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        hepml.load(tmp_path / "missing.npz")


def test_assigning_wrong_types_is_refused():
    h = Net()
    with pytest.raises(TypeError, match="buffer 'obj_type'"):
        h.obj_type = [1, 2]
    with pytest.raises(TypeError, match="parameter 'weight'"):
        h.embed.weight = hepml.zeros(16, 5)

    class Bad(nn.Module):
        def __init__(self):
            self.x = nn.Linear(1, 1)
    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_training_loop_reduces_loss():
    hepml.manual_seed(0)
    x = hepml.randn(256, 5)
    y = hepml.tanh(x[:, 0:1] * 2) + x[:, 1:2] * x[:, 2:3]  # a learnable target
    model = nn.Sequential(nn.Linear(5, 32), nn.SELU(), nn.Linear(32, 1))
    opt = hepml.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
