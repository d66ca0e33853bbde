"""Course tooling: running the notebooks, checking a set-up, grading."""
