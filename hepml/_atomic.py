"""Writing a file so that a reader sees the old file or the new one, never half of one.

Every file hepml writes (saved weights, training histories, reports, grade sheets, the
course runner's outputs) goes through ``atomic_path``: the content is written to a
temporary name in the same directory and renamed onto the target, which is atomic on
one file system. An error (or Ctrl-C) removes the temporary file and leaves the target
as it was. Whole output directories use ``hepml.data._io.atomic_dir`` instead."""
import contextlib
import os
import tempfile
from pathlib import Path


def _umask():
    # os.umask can only be read by setting it
    m = os.umask(0)
    os.umask(m)
    return m


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; when the block succeeds it is renamed
    onto ``path``, when it raises it is removed. The file gets the mode an ordinary
    ``open()`` would give it (mkstemp alone would leave it readable by the owner only)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
