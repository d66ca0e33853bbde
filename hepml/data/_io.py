"""Atomic output directories, manifests and .npy files written in place."""
import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

GENERATED_FORMAT = "hepml-ww-columns"
PREPARED_FORMAT = "hepml-prepared"
GENERATED_MANIFEST = "manifest.json"
PREPARED_MANIFEST = "prepare.json"


def progress_bar(enabled, **kw):
    """A tqdm bar (the notebook flavour when ipywidgets is there, text otherwise), or None."""
    if not enabled:
        return None
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tqdm.auto warns when ipywidgets is missing; text bars are fine
            from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but a progress bar is never essential
        return None
    return tqdm(**kw)


def hepml_version():
    import hepml
    return getattr(hepml, "__version__", "unknown")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _is_ours(d):
    """A directory hepml wrote (so replacing it cannot destroy anything else)."""
    for name, fmt in ((GENERATED_MANIFEST, GENERATED_FORMAT), (PREPARED_MANIFEST, PREPARED_FORMAT)):
        p = d / name
        if p.is_file():
            try:
                if read_json(p).get("format") == fmt:
                    return True
            except (OSError, ValueError):
                pass
    return False


@contextlib.contextmanager
def atomic_dir(out_dir):
    """Yield a fresh temporary directory next to ``out_dir``; on success it replaces
    ``out_dir`` by a rename, on error it is removed. Readers therefore see either the
    old complete output or the new complete output, never a half-written one.

    An existing ``out_dir`` is only replaced if it is empty or was written by hepml
    (it holds a hepml manifest): a typo cannot wipe an unrelated directory."""
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"output path {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not _is_ours(out_dir):
            raise FileExistsError(f"output directory {out_dir} exists, is not empty and was not written by hepml; "
                                  "choose another directory or remove it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_npy(path, shape, dtype):
    """A new .npy file mapped for writing (the data never has to sit in anonymous memory)."""
    return np.lib.format.open_memmap(str(path), mode="w+", dtype=np.dtype(dtype), shape=tuple(int(s) for s in shape))


def close_npy(arr):
    """Finish writing a mapped .npy. Nothing to do: the data are in the page cache and
    reach the file when the mapping goes (the caller drops its references). An
    explicit msync here would make every array wait for the disk, which costs more
    than the whole computation, and buys nothing: the directory only becomes visible
    by the final rename."""
    return None
