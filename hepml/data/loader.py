"""Memory-mapped datasets of prepared arrays and a DataLoader whose batches are
gathered in C.

    ds = NumpyDataset("datasets/cache/default/prepared", split="training")
    loader = DataLoader(ds, batch_size=1024, shuffle=True, seed=0)
    for batch in loader:            # dict name -> hepml.Tensor
        jets, mask = batch["jet_data"], batch["jet_padding_mask"]

Nothing is read into memory up front: the .npy files are memory-mapped and each
batch copies its rows (in random order when shuffling) straight from the mapped
files into hepml tensors, one C call per batch, parallel over rows.
"""
import math
from pathlib import Path

import numpy as np

from .. import _C

_TENSOR_DTYPES = (np.float32, np.bool_, np.int64, np.uint8)


def _strip_split(stem, split):
    suffix = f"_{split}"
    return stem[:-len(suffix)] if split and stem.endswith(suffix) else stem


class NumpyDataset:
    """Arrays that share their first dimension (events), memory-mapped from .npy files.

    ``paths_or_prefix``:

    - a directory (e.g. the output of hepml.data.prepare): every ``<name>_<split>.npy``
      in it, except the unscaled ``*_original_*`` twins unless ``names`` asks for them;
    - a path prefix such as ``"out/jet"``: the files ``<prefix>*_<split>.npy``;
    - a list of .npy paths, or a dict name -> path or array.

    Names drop the ``_<split>`` suffix (``jet_data``, ``jet_padding_mask``, ...).
    ``names`` selects and orders the arrays; ``max_events`` keeps the first rows only.
    """

    def __init__(self, paths_or_prefix, split="training", max_events=None, names=None):
        self.split = split
        self.directory = None
        files = {}
        if isinstance(paths_or_prefix, dict):
            files = dict(paths_or_prefix)
        elif isinstance(paths_or_prefix, (list, tuple)):
            for p in paths_or_prefix:
                p = Path(p)
                files[_strip_split(p.name[:-4] if p.name.endswith(".npy") else p.name, split)] = p
        else:
            p = Path(paths_or_prefix)
            if p.is_dir():
                self.directory = p
                for f in sorted(p.glob(f"*_{split}.npy")):
                    name = _strip_split(f.stem, split)
                    if names is None and name.endswith("_original"):
                        continue
                    files[name] = f
            else:
                self.directory = p.parent
                for f in sorted(p.parent.glob(f"{p.name}*_{split}.npy")):
                    files[_strip_split(f.stem, split)] = f
            if not files:
                raise FileNotFoundError(f"NumpyDataset: no '*_{split}.npy' files at {paths_or_prefix}")
        if names is not None:
            missing = [n for n in names if n not in files]
            if missing:
                raise KeyError(f"NumpyDataset: no array(s) {missing} for split '{split}'; available: {sorted(files)}")
            files = {n: files[n] for n in names}
        if not files:
            raise ValueError("NumpyDataset: no arrays given")
        self.arrays = {}
        for name, src in files.items():
            a = src if isinstance(src, np.ndarray) else np.load(src, mmap_mode="r", allow_pickle=False)
            if a.ndim < 1:
                raise ValueError(f"NumpyDataset: array '{name}' is a scalar; arrays need an event dimension")
            if a.dtype.type not in _TENSOR_DTYPES:
                raise TypeError(f"NumpyDataset: array '{name}' has dtype {a.dtype}; batches are hepml tensors, "
                                "which hold float32, int64 or bool")
            if not a.flags.c_contiguous:
                a = np.ascontiguousarray(a)
            self.arrays[name] = a
        lengths = {n: a.shape[0] for n, a in self.arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"NumpyDataset: arrays have different numbers of rows: {lengths}")
        if max_events is not None:
            if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) or max_events < 0:
                raise ValueError(f"NumpyDataset: max_events must be a non-negative integer, got {max_events!r}")
            self.arrays = {n: a[:int(max_events)] for n, a in self.arrays.items()}
        self.names = list(self.arrays)

    def __len__(self):
        return self.arrays[self.names[0]].shape[0]

    def __getitem__(self, index):
        """Row(s) of every array as NumPy (an int, a slice or an index array)."""
        if isinstance(index, str):
            return self.arrays[index]
        return {n: a[index] for n, a in self.arrays.items()}

    def scaling(self, name):
        """The (mean, std) array [F, 2] saved next to the data as <name>_scaling.npy."""
        if self.directory is None:
            raise FileNotFoundError("NumpyDataset: no directory known to look for scaling files in")
        f = self.directory / f"{name}_scaling.npy"
        if not f.is_file():
            raise FileNotFoundError(f"NumpyDataset: {f} does not exist")
        return np.load(f)

    def __repr__(self):
        body = ", ".join(f"{n}: {tuple(a.shape)} {a.dtype}" for n, a in self.arrays.items())
        return f"NumpyDataset(split={self.split!r}, {len(self)} rows; {body})"


class DataLoader:
    """Batches of a NumpyDataset as hepml tensors (dicts name -> Tensor, or tuples in the
    dataset's name order with ``as_tuple=True``).

    shuffle: a new random order every epoch (every ``iter()``), a pure function of
    (seed, epoch) from hepml's counter-based generator, so runs repeat exactly and do not
    depend on the thread count. drop_last: leave out a last, smaller batch.
    """

    def __init__(self, dataset, batch_size, shuffle=True, seed=0, drop_last=False, as_tuple=False):
        if isinstance(dataset, dict):
            dataset = NumpyDataset(dataset)
        if not isinstance(dataset, NumpyDataset):
            raise TypeError(f"DataLoader: 'dataset' must be a NumpyDataset or a dict of arrays, got "
                            f"{type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: 'batch_size' must be a positive integer, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"DataLoader: 'seed' must be an integer in [0, 2^64), got {seed!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.as_tuple = bool(as_tuple)
        self.epoch = 0
        self._arrays = [dataset.arrays[n] for n in dataset.names]

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch):
        """Use the shuffle order of this epoch for the next iteration."""
        self.epoch = int(epoch)

    def order(self, epoch=None):
        """The row order of an epoch (int64 array)."""
        n = len(self.dataset)
        e = self.epoch if epoch is None else int(epoch)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        # epoch e takes counters [e*n, (e+1)*n) of the permutation stream: fresh keys per epoch
        return _C.data_permutation(n, self.seed, (e * n) % 2**64)

    def __iter__(self):
        order = self.order()
        self.epoch += 1
        n, bs = order.shape[0], self.batch_size
        stop = (n // bs) * bs if self.drop_last else n
        names = self.dataset.names
        for a in range(0, stop, bs):
            tensors = _C.data_gather_batch(self._arrays, order[a:min(a + bs, stop)])
            yield tuple(tensors) if self.as_tuple else dict(zip(names, tensors))
