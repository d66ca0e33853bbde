"""hepml.data.NumpyDataset (memory-mapped) and DataLoader (batches gathered in C)."""
import numpy as np
import pytest

import hepml
import hepml.data as hd


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("loader")
    hd.generate(600, 4, out_dir=base / "gen", progress=False)
    hd.prepare(base / "gen", base / "prep", augment=2, seed=1, progress=False, verbose=False)
    return base / "prep"


def test_dataset_from_directory(prepared):
    ds = hd.NumpyDataset(prepared, split="training")
    assert len(ds) == 3 * 420
    assert "jet_data" in ds.names and "jet_padding_mask" in ds.names and "jetlepmet_padding_mask" in ds.names
    assert not any(n.endswith("_original") for n in ds.names)
    assert all(isinstance(a, np.memmap) for a in ds.arrays.values())
    assert ds["jet_data"].shape == (1260, 13, 5)
    row = ds[5]
    assert row["met_data"].shape == (1, 2)
    assert ds.scaling("jet_data").shape == (4, 2)
    val = hd.NumpyDataset(prepared, split="validation", max_events=100)
    assert len(val) == 100 and val["W_data"].shape == (100, 2, 4)
    assert "NumpyDataset(split='validation', 100 rows" in repr(val)


def test_dataset_selection_prefix_and_lists(prepared):
    ds = hd.NumpyDataset(prepared, names=["jet_data", "W_data_original", "jet_padding_mask"])
    assert ds.names == ["jet_data", "W_data_original", "jet_padding_mask"]
    pre = hd.NumpyDataset(str(prepared / "W_"), split="validation")
    assert set(pre.names) == {"W_data", "W_data_original", "W_ordered_data", "W_ordered_data_original"}
    lst = hd.NumpyDataset([prepared / "met_data_training.npy", prepared / "nu_data_training.npy"])
    assert lst.names == ["met_data", "nu_data"]
    d = hd.NumpyDataset({"a": np.zeros((5, 2), np.float32), "b": np.ones(5, np.bool_)})
    assert len(d) == 5


def test_dataset_errors(prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="_training.npy"):
        hd.NumpyDataset(tmp_path)
    with pytest.raises(KeyError, match="nope"):
        hd.NumpyDataset(prepared, names=["jet_data", "nope"])
    with pytest.raises(ValueError, match="different numbers of rows"):
        hd.NumpyDataset({"a": np.zeros(3, np.float32), "b": np.zeros(4, np.float32)})
    with pytest.raises(TypeError, match="float32, int64 or bool"):
        hd.NumpyDataset({"a": np.zeros(3, np.float64)})
    with pytest.raises(ValueError, match="max_events"):
        hd.NumpyDataset(prepared, max_events=-1)


def _marked(n=103):
    rng = np.random.default_rng(0)
    return {"idx": np.arange(n, dtype=np.int64), "x": rng.normal(size=(n, 3, 2)).astype(np.float32),
            "m": rng.uniform(size=(n, 4)) < 0.5}


def test_loader_epoch_covers_every_row_once():
    data = _marked()
    loader = hd.DataLoader(hd.NumpyDataset(data), batch_size=10, shuffle=True, seed=3)
    assert len(loader) == 11
    seen = []
    for b in loader:
        assert set(b) == {"idx", "x", "m"}
        assert all(isinstance(t, hepml.Tensor) for t in b.values())
        assert b["x"].dtype == hepml.float32 and b["m"].dtype == hepml.bool and b["idx"].dtype == hepml.int64
        idx = b["idx"].numpy()
        assert np.array_equal(b["x"].numpy(), data["x"][idx]) and np.array_equal(b["m"].numpy(), data["m"][idx])
        seen.append(idx)
    order = np.concatenate(seen)
    assert sorted(order.tolist()) == list(range(103))
    assert not np.array_equal(order, np.arange(103))
    second = np.concatenate([b["idx"].numpy() for b in loader])
    assert sorted(second.tolist()) == list(range(103)) and not np.array_equal(second, order)


def test_loader_deterministic_and_thread_independent():
    data = _marked(5000)
    a = [b["idx"].numpy() for b in hd.DataLoader(data, batch_size=512, seed=9)]
    old = hepml.get_num_threads()
    try:
        hepml.set_num_threads(1)
        b = [t["idx"].numpy() for t in hd.DataLoader(data, batch_size=512, seed=9)]
    finally:
        hepml.set_num_threads(old)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = np.concatenate([t["idx"].numpy() for t in hd.DataLoader(data, batch_size=512, seed=10)])
    assert not np.array_equal(np.concatenate(a), c)
    loader = hd.DataLoader(data, batch_size=512, seed=9)
    loader.set_epoch(0)
    assert np.array_equal(next(iter(loader))["idx"].numpy(), a[0])


def test_loader_no_shuffle_drop_last_tuples():
    data = _marked(25)
    loader = hd.DataLoader(data, batch_size=10, shuffle=False, drop_last=True, as_tuple=True)
    assert len(loader) == 2
    batches = list(loader)
    assert len(batches) == 2 and isinstance(batches[0], tuple) and len(batches[0]) == 3
    assert np.array_equal(batches[1][0].numpy(), np.arange(10, 20))
    keep = hd.DataLoader(data, batch_size=10, shuffle=False)
    sizes = [b["idx"].shape[0] for b in keep]
    assert sizes == [10, 10, 5]


def test_loader_on_prepared_files(prepared):
    ds = hd.NumpyDataset(prepared, names=["jet_data", "jet_padding_mask", "W_ordered_data"])
    loader = hd.DataLoader(ds, batch_size=256, seed=0)
    b = next(iter(loader))
    assert b["jet_data"].shape == (256, 13, 5) and b["jet_padding_mask"].shape == (256, 13)
    assert b["W_ordered_data"].shape == (256, 2, 4)
    order = loader.order(0)
    assert np.array_equal(b["jet_data"].numpy(), ds["jet_data"][order[:256]])
    # a batch feeds hepml ops directly
    assert np.isfinite(float((b["W_ordered_data"] * 2.0).numpy().sum()))


def test_loader_bad_arguments():
    data = _marked(10)
    with pytest.raises(ValueError, match="batch_size"):
        hd.DataLoader(data, batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        hd.DataLoader(data, batch_size=2, seed=-1)
    with pytest.raises(TypeError, match="dataset"):
        hd.DataLoader([1, 2, 3], batch_size=2)


def test_gather_kernel_errors():
    from hepml import _C
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(IndexError, match=r"index\[1\] = 5"):
        _C.data_gather_batch([x], np.array([0, 5]))
    with pytest.raises(IndexError, match="out of range"):
        _C.data_gather_batch([x], np.array([-1]))
    with pytest.raises(TypeError, match="float32, int64 or bool"):
        _C.data_gather_batch([np.zeros(5, np.float64)], np.array([0]))
    with pytest.raises(ValueError, match="rows"):
        _C.data_gather_batch([x, np.zeros(4, np.float32)], np.array([0]))
    with pytest.raises(TypeError, match="int64"):
        _C.data_gather_batch([x], np.array([0], np.int32))
    out = _C.data_gather_batch([x, np.ones((5, 3), np.uint8)], np.array([], np.int64))
    assert out[0].shape == (0, 2) and out[1].dtype == hepml.bool
