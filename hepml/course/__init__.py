"""Course tooling: profiles, data locations, running the notebooks, grading."""
from .config import data_dir, pick, profile
