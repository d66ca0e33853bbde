"""Course tooling: profiles, data locations, headline figures, running the notebooks, grading."""
from .config import data_dir, pick, profile
from .results import record
from .setup_check import check_setup
