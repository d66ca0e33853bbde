"""Run profiles and where the course keeps its data.

- ``HEPML_PROFILE=default`` (the course as taught) or ``quick`` (the same cells
  on small data, used by the test suite).
- ``HEPML_DATA_DIR``: where the generated and prepared datasets are cached
  (default: ``datasets/cache/<profile>`` in the repository, or
  ``~/.cache/hepml/<profile>`` for an installed package).
"""
import os
from pathlib import Path

PROFILES = ("default", "quick")


def profile():
    """The active profile: 'default' or 'quick'."""
    p = os.environ.get("HEPML_PROFILE", "default")
    if p not in PROFILES:
        raise ValueError(f"HEPML_PROFILE must be one of {PROFILES}, got {p!r}")
    return p


def pick(default, quick):
    """``pick(1_000_000, 20_000)``: the value for the active profile."""
    return quick if profile() == "quick" else default


def repo_root():
    here = Path(__file__).resolve().parents[2]
    return here if (here / "setup.py").exists() else None


def data_dir():
    """Directory of the course's cached datasets for the active profile (created)."""
    env = os.environ.get("HEPML_DATA_DIR")
    if env:
        d = Path(env)
    elif repo_root() is not None:
        d = repo_root() / "datasets" / "cache" / profile()
    else:
        d = Path.home() / ".cache" / "hepml" / profile()
    d.mkdir(parents=True, exist_ok=True)
    return d
