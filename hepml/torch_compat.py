"""Reading PyTorch checkpoints without PyTorch.

``hepml.load_torch_state_dict(path_or_dict)`` reads a state dict written by
``torch.save(model.state_dict(), "model.pt")`` (the zip format PyTorch uses
since 1.6) and returns an ``OrderedDict`` of hepml tensors that
``module.load_state_dict(...)`` accepts, so a model trained with the course's
PyTorch code loads into the same architecture in hepml.

Safety. A ``.pt`` file is a pickle, and unpickling can run arbitrary code.
This reader never imports torch and uses a restricted unpickler that only
resolves the few names a state dict needs: ``torch._utils._rebuild_tensor_v2``
(and ``_rebuild_parameter``), the typed storage classes (``torch.FloatStorage``
...), ``collections.OrderedDict`` and plain containers (dict, list, tuple,
str, numbers). Any other global (``os.system``, ``builtins.eval``, a model
class pickled with ``torch.save(model)``) is refused with an
``UnpicklingError`` naming it. Each tensor is rebuilt from the raw bytes of
its storage record in the zip with NumPy (offset, sizes and strides as
recorded), then copied into a hepml tensor: floating types become float32,
integer types int64, bool stays bool.
"""
import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

__all__ = ["load_torch_state_dict"]

# torch storage class name -> (NumPy dtype of the stored bytes, hepml dtype)
_STORAGES = {
    "FloatStorage": (np.float32, np.float32),
    "DoubleStorage": (np.float64, np.float32),
    "HalfStorage": (np.float16, np.float32),
    "BFloat16Storage": ("bfloat16", np.float32),
    "LongStorage": (np.int64, np.int64),
    "IntStorage": (np.int32, np.int64),
    "ShortStorage": (np.int16, np.int64),
    "CharStorage": (np.int8, np.int64),
    "ByteStorage": (np.uint8, np.int64),
    "BoolStorage": (np.bool_, np.bool_),
}


class _StorageType:
    """Stands in for torch.<X>Storage inside the pickle."""

    def __init__(self, name):
        self.name = name


class _RawTensor:
    """A tensor as recorded: its storage bytes, dtype, offset, sizes, strides."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _RawTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, read_record, where):
        super().__init__(file)
        self._read_record = read_record
        self._where = where
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"load_torch_state_dict(): {self._where} refers to '{module}.{name}', which a state dict does not need; "
            f"refusing to load it (only tensors, OrderedDict and plain containers are allowed: a pickle can run "
            f"arbitrary code). Save model.state_dict() rather than the model object.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"load_torch_state_dict(): {self._where} has an unsupported persistent id "
                                         f"{pid!r:.80}")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"load_torch_state_dict(): {self._where}: storage {key!r} has an unsupported "
                                         f"type {stype!r:.60}")
        if key not in self._storages:
            self._storages[key] = (stype.name, self._read_record(str(key)), int(numel))
        return self._storages[key]


def _to_numpy(raw, byteorder, where):
    name, data, numel = raw.storage
    stored, _ = _STORAGES[name]
    if stored == "bfloat16":
        bits = np.frombuffer(data, dtype=np.dtype("<u2" if byteorder == "little" else ">u2"), count=numel)
        # bfloat16 is the top half of a float32: widen the bit pattern.
        flat = (bits.astype(np.uint32) << 16).view(np.float32)
    else:
        dt = np.dtype(stored).newbyteorder("<" if byteorder == "little" else ">")
        if len(data) < numel * dt.itemsize:
            raise ValueError(f"load_torch_state_dict(): {where}: storage record holds {len(data)} bytes, "
                             f"{numel * dt.itemsize} expected")
        flat = np.frombuffer(data, dtype=dt, count=numel)
    size, stride, offset = raw.size, raw.stride, int(raw.offset)
    if len(size) != len(stride):
        raise ValueError(f"load_torch_state_dict(): {where}: tensor sizes {size} and strides {stride} differ in length")
    n = 1
    for s in size:
        n *= s
    if n == 0:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if offset < 0 or any(st < 0 for st in stride) or last >= flat.size:
        raise ValueError(f"load_torch_state_dict(): {where}: tensor (offset {offset}, sizes {size}, strides {stride}) "
                         f"does not fit its storage of {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=tuple(st * flat.itemsize for st in stride), writeable=False)
    return np.array(view, copy=True)


def _convert(obj, byteorder, where, key=""):
    """Replace every recorded tensor by a hepml tensor, walking plain containers."""
    if isinstance(obj, _RawTensor):
        arr = _to_numpy(obj, byteorder, f"{where} entry {key!r}" if key else where)
        _, target = _STORAGES[obj.storage[0]]
        return _as_hepml(arr.astype(target, copy=False))
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _convert(v, byteorder, where, k)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _convert(v, byteorder, where, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_convert(v, byteorder, where, key) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_convert(v, byteorder, where, key) for v in obj)
    return obj


def _as_hepml(arr):
    """A hepml tensor holding arr: float32, int64 (any integer) or bool."""
    from ._tensor import from_numpy

    if arr.dtype == np.bool_:
        target = np.bool_
    elif np.issubdtype(arr.dtype, np.integer):
        target = np.int64
    else:
        target = np.float32
    return from_numpy(np.array(arr, dtype=target, order="C", copy=True))


def _from_torch_like(obj):
    """A dict already in memory: hepml tensors and arrays pass through; torch
    tensors (duck-typed, torch is not imported) are converted via NumPy."""
    from ._tensor import Tensor

    out = OrderedDict()
    for k, v in obj.items():
        if isinstance(v, Tensor):
            out[k] = v
        elif hasattr(v, "detach") and hasattr(v, "cpu") and hasattr(v, "numpy"):
            a = v.detach().cpu()
            if str(getattr(a, "dtype", "")) == "torch.bfloat16":
                a = a.float()
            out[k] = _as_hepml(a.numpy())
        elif isinstance(v, np.ndarray):
            out[k] = _as_hepml(v)
        elif isinstance(v, dict):
            out[k] = _from_torch_like(v)
        else:
            out[k] = v
    return out


def load_torch_state_dict(path_or_dict):
    """Read a PyTorch state dict (``.pt``/``.pth`` written by ``torch.save`` in
    its zip format, a path, a file object or bytes) without importing torch.

    Returns an ``OrderedDict`` of hepml tensors (nested dicts, e.g. a
    checkpoint ``{"model": state_dict, "epoch": 3}``, keep their structure),
    ready for ``module.load_state_dict(...)``. A dict already in memory (of
    torch tensors, NumPy arrays or hepml tensors) is converted likewise.

    Refuses, with a clear error, pickles that reference anything but tensors,
    OrderedDict and plain containers (see the module docstring), and the
    legacy non-zip format (re-save it with a current PyTorch)."""
    if isinstance(path_or_dict, dict):
        return _from_torch_like(path_or_dict)
    if isinstance(path_or_dict, (bytes, bytearray)):
        src, where = io.BytesIO(path_or_dict), "<bytes>"
    elif isinstance(path_or_dict, (str, os.PathLike)):
        src, where = os.fspath(path_or_dict), repr(os.fspath(path_or_dict))
        if not os.path.exists(src):
            raise FileNotFoundError(f"load_torch_state_dict(): no such file: {src}")
    elif hasattr(path_or_dict, "read"):
        src, where = path_or_dict, "<file object>"
    else:
        raise TypeError(f"load_torch_state_dict(): expected a path, file object, bytes or dict, got "
                        f"{type(path_or_dict).__name__}")
    if not zipfile.is_zipfile(src):
        raise ValueError(f"load_torch_state_dict(): {where} is not a PyTorch zip checkpoint (torch.save writes zip "
                         f"files since PyTorch 1.6; re-save the state dict with a current PyTorch, without "
                         f"_use_new_zipfile_serialization=False)")
    if hasattr(src, "seek"):
        src.seek(0)
    with zipfile.ZipFile(src) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise ValueError(f"load_torch_state_dict(): {where} has no data.pkl record: not a torch.save file")
        pkl = min(pkl, key=len)
        prefix = pkl[: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip() or "little"
        if byteorder not in ("little", "big"):
            raise ValueError(f"load_torch_state_dict(): {where} has an unknown byte order {byteorder!r}")

        def read_record(key):
            rec = f"{prefix}data/{key}"
            if rec not in names:
                raise pickle.UnpicklingError(f"load_torch_state_dict(): {where} lacks the storage record {rec!r}")
            return zf.read(rec)

        obj = _Unpickler(io.BytesIO(zf.read(pkl)), read_record, where).load()
    return _convert(obj, byteorder, where)
