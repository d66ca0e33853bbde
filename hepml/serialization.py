"""Saving and loading state dicts (.npz), written atomically."""
import os
import zipfile
from collections import OrderedDict

import numpy as np

from ._atomic import atomic_path


def _to_arrays(obj):
    from .nn.module import Module
    if isinstance(obj, Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError(f"hepml.save(): expected a Module or a dict of tensors, got {type(obj).__name__}")
    out = OrderedDict()
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"hepml.save(): keys must be strings, got {k!r}")
        try:
            out[k] = np.asarray(v)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"hepml.save(): value of '{k}' is not a tensor or array ({type(v).__name__})") from e
        if out[k].dtype == object:
            raise TypeError(f"hepml.save(): value of '{k}' is not a tensor or array ({type(v).__name__})")
    return out


def save(obj, path):
    """Save a Module's state dict (or a dict of tensors/arrays) to ``path`` (.npz).

    The file is written to a temporary name in the same directory and renamed,
    so an interrupted save never leaves a half-written file."""
    arrays = _to_arrays(obj)
    with atomic_path(os.path.abspath(os.fspath(path))) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load(path):
    """Load what ``hepml.save`` wrote: an OrderedDict of name -> hepml.Tensor."""
    from ._tensor import tensor
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"hepml.load(): no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return OrderedDict((k, tensor(data[k], dtype=data[k].dtype if data[k].dtype in (np.bool_, np.int64)
                                          else None)) for k in data.files)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ValueError(f"hepml.load(): {path} is not a hepml .npz file ({e})") from e
