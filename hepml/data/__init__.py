"""The course's data: hepml's WW event generator, the dataset preparation of notebook 1,
and memory-mapped loading.

- ``generate(n_events, seed, out_dir=None)`` -> columns dict with the course's names
  (generator.py; physics model in datasets/README.md);
- ``prepare(input_dir, out_dir, augment=10, seed=42, split=0.7)`` -> the course's
  training/validation .npy files (prepare.py);
- ``NumpyDataset`` and ``DataLoader`` -> batches of hepml tensors (loader.py);
- ``course_dataset()`` -> the prepared dataset of the active course profile, made once
  and cached (what notebooks 3, 5 and 6 load);
- ``python -m hepml.data generate|prepare`` on the command line.
"""
from .generator import (COLUMNS, default_config, generate, generate_raw, load_events, load_or_generate,
                        read_manifest, write_events)
from .loader import DataLoader, NumpyDataset
from .prepare import (REQUIRED_COLUMNS, DataQualityWarning, load_or_prepare, output_files, prepare, read_input,
                      summary)

__all__ = [
    "COLUMNS", "REQUIRED_COLUMNS", "DataLoader", "DataQualityWarning", "NumpyDataset", "course_dataset",
    "default_config", "generate", "generate_raw", "load_events", "load_or_generate", "load_or_prepare", "output_files",
    "prepare", "read_input", "read_manifest", "summary", "unscale", "write_events",
]


def unscale(name, data, scaling, mask=None):
    """Physical units from a prepared array: ``unscale("W_data", w, ds.scaling("W_data"))``
    undoes the standardisation and the course's scaling of ``name`` (a file stem such as
    "jet_data", "W_ordered_data"); rows with mask False (padding) come out as 0. Arrays or
    tensors in, the same kind out."""
    from ..physics import unscale_features
    return unscale_features(data, name, scaling, mask)


def course_dataset(n_events=None, seed=1, augment=10, prep_seed=42, progress=True, verbose=True):
    """The course's prepared dataset for the active profile (hepml.course): generated
    (n_events = 200k in the default profile, 5k in the quick one) and prepared once into
    hepml.course.data_dir(), then reused. Returns the directory of the .npy files, ready
    for NumpyDataset(path, split=...)."""
    from ..course import data_dir, pick
    n = pick(200_000, 5_000) if n_events is None else int(n_events)
    base = data_dir()
    gen_dir = base / f"ww_events_{n}_seed{seed}"
    prep_dir = base / f"ww_prepared_{n}_seed{seed}_aug{augment}_seed{prep_seed}"
    load_or_generate(n, seed, gen_dir, progress=progress)
    load_or_prepare(gen_dir, prep_dir, augment=augment, seed=prep_seed, progress=progress, verbose=verbose)
    return prep_dir
