"""Execute a course notebook headless in the quick profile (used by tests/test_notebook_*.py)."""
import os
from pathlib import Path

import pytest

from hepml.course.nbrun import execute_notebook

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(name, timeout=600, extra_env=None, data_dir=None):
    """Run notebooks/<name> top to bottom in a fresh kernel with HEPML_PROFILE=quick.

    Returns the executed notebook (nbformat node) so a test can check outputs.
    A failing cell fails the test with the cell's source and the error."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    os.environ["HEPML_PROFILE"] = "quick"
    os.environ["MPLBACKEND"] = "Agg"
    if data_dir is not None:
        os.environ["HEPML_DATA_DIR"] = str(data_dir)
    os.environ.update(extra_env or {})
    try:
        execute_notebook(nb, path.parent, timeout=timeout)
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{name}: a cell failed:\n{e}")
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    return nb


def cell_text_outputs(nb):
    """All stdout text of a notebook, joined (for checking printed headline figures)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o.get("text", ""))
            elif o.get("output_type") in ("execute_result", "display_data"):
                out.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)
