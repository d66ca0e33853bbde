"""hepml.load_torch_state_dict: PyTorch checkpoints read without importing torch,
with a restricted unpickler."""
import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import hepml

torch = pytest.importorskip("torch")


def _save(obj, tmp_path, name="sd.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_dtypes_layouts_and_shared_storage(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = OrderedDict([
        ("f32", torch.randn(3, 4)),
        ("f64", torch.randn(5, dtype=torch.float64)),
        ("f16", torch.randn(2, 3).half()),
        ("bf16", torch.randn(7).bfloat16()),
        ("i64", torch.arange(5)),
        ("i32", torch.arange(4, dtype=torch.int32) - 2),
        ("u8", torch.arange(3, dtype=torch.uint8)),
        ("b", torch.tensor([True, False, True])),
        ("transposed", base.t()),
        ("sliced", base[1:3, 2:5]),
        ("shared_view", base[2]),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 4)),
        ("strided", base[:, ::2]),
    ])
    loaded = hepml.load_torch_state_dict(_save(sd, tmp_path))
    assert isinstance(loaded, OrderedDict) and list(loaded) == list(sd)
    for k, t in sd.items():
        h = loaded[k]
        assert isinstance(h, hepml.Tensor), k
        assert tuple(h.shape) == tuple(t.shape), k
        expect = t.float().numpy() if t.is_floating_point() else t.numpy()
        if t.dtype == torch.bool:
            assert h.dtype == np.bool_
        elif t.is_floating_point():
            assert h.dtype == np.float32
        else:
            assert h.dtype == np.int64
        np.testing.assert_array_equal(h.numpy(), expect.astype(h.dtype), err_msg=k)


def test_module_state_dict_round_trip(tmp_path):
    t = torch.nn.Transformer(16, 4, 1, 1, 32, batch_first=True)
    path = _save(t.state_dict(), tmp_path, "transformer.pth")
    sd = hepml.load_torch_state_dict(str(path))
    h = hepml.nn.Transformer(16, 4, 1, 1, 32, batch_first=True)
    missing, unexpected = h.load_state_dict(sd)
    assert not missing and not unexpected
    for name, p in t.state_dict().items():
        np.testing.assert_array_equal(h.state_dict()[name].numpy(), p.numpy())


def test_sources_path_file_bytes_and_nested(tmp_path):
    sd = {"w": torch.randn(2, 2), "n": 3}
    path = _save({"model": sd, "epoch": 7, "names": ["a", "b"], "pair": (1, torch.ones(2))}, tmp_path)
    for src in (path, str(path), open(path, "rb"), path.read_bytes()):
        out = hepml.load_torch_state_dict(src)
        assert out["epoch"] == 7 and out["names"] == ["a", "b"]
        np.testing.assert_array_equal(out["model"]["w"].numpy(), sd["w"].numpy())
        assert out["pair"][0] == 1 and out["pair"][1].numpy().tolist() == [1.0, 1.0]
        if hasattr(src, "close"):
            src.close()


def test_dict_in_memory():
    sd = {"a": torch.randn(3), "b": np.arange(4), "c": hepml.ones(2), "d": torch.arange(3)}
    out = hepml.load_torch_state_dict(sd)
    np.testing.assert_array_equal(out["a"].numpy(), sd["a"].numpy())
    assert out["c"] is sd["c"]
    assert out["d"].dtype == np.int64


def test_parameters_saved_directly(tmp_path):
    lin = torch.nn.Linear(3, 2)
    out = hepml.load_torch_state_dict(_save({"weight": lin.weight, "bias": lin.bias}, tmp_path))
    np.testing.assert_array_equal(out["weight"].numpy(), lin.weight.detach().numpy())


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    path = _save({"w": torch.ones(2), "evil": _Evil(marker)}, tmp_path)
    with pytest.raises(pickle.UnpicklingError, match=r"refers to '(posix|os|nt)\.system'.*refusing"):
        hepml.load_torch_state_dict(path)
    assert not marker.exists()


def test_refuses_builtins_eval_and_whole_models(tmp_path):
    # a hand-made zip whose data.pkl calls builtins.eval
    payload = b"\x80\x02cbuiltins\neval\nX\x0a\x00\x00\x00print('x')\x85R."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
    with pytest.raises(pickle.UnpicklingError, match=r"'builtins\.eval'"):
        hepml.load_torch_state_dict(buf.getvalue())
    # torch.save(model) pickles the module class: refused, with advice
    path = _save(torch.nn.Linear(2, 2), tmp_path, "model.pt")
    with pytest.raises(pickle.UnpicklingError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
        hepml.load_torch_state_dict(path)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        hepml.load_torch_state_dict(tmp_path / "missing.pt")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="not a PyTorch zip checkpoint"):
        hepml.load_torch_state_dict(legacy)
    with pytest.raises(TypeError, match="expected a path"):
        hepml.load_torch_state_dict(42)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x/other.txt", "hi")
    with pytest.raises(ValueError, match="no data.pkl"):
        hepml.load_torch_state_dict(buf.getvalue())


def test_does_not_import_torch(tmp_path):
    path = _save({"w": torch.randn(2, 3)}, tmp_path)
    code = ("import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
            "import hepml\n"
            f"sd = hepml.load_torch_state_dict({str(path)!r})\n"
            "print(tuple(sd['w'].shape))\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 3)"
