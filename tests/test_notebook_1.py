"""Notebook 1 (dataset preparation) runs top to bottom in a fresh kernel (quick profile)."""
import re

from notebook_runner import cell_text_outputs, run_notebook


def test_notebook_1_runs(tmp_path):
    nb = run_notebook("1_DatasetPreparation.ipynb", data_dir=tmp_path)
    text = cell_text_outputs(nb)
    assert "profile: quick, events: 5,000" in text
    assert "jet_data_training.npy" in text and "jetlepmet_padding_mask_validation.npy" in text
    assert "padded slots are zero: True" in text
    assert "generated events: 5,000" in text and "training events (before augmentation): 3,500" in text
    assert re.search(r"median m_jj: [0-9]{3,4} GeV", text)
    prepared = tmp_path / "ww_prepared_5000_seed1_aug10_seed42"
    assert (prepared / "prepare.json").is_file()
    assert (prepared / "jet_data_training.npy").is_file()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
