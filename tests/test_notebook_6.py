"""Notebook 6 (neutrino flow) runs top to bottom in a fresh kernel, and reaches what it
claims: an encoder whose context ignores padded jets; a MAF and an NSF conditioned on it
that, once trained, are clearly better than untrained; samples whose phi matches the
truth; two-sample statistics printed; and the files other notebooks and the grader read
(the samples for notebook 8, both state dicts, a submission that loads back)."""
import re

import numpy as np
import pytest

from hepml import course
from notebook_runner import cell_text_outputs, run_notebook


def _number(text, label):
    """The number printed after ``label`` (a literal prefix)."""
    m = re.search(re.escape(label) + r"\s*(-?[0-9.]+(?:e-?[0-9]+)?)", text)
    assert m, f"'{label}' was not printed"
    return float(m.group(1))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    # the notebook writes its outputs next to the quick profile's cached data; remember
    # their modification times to check that this run wrote them
    import os
    os.environ["HEPML_PROFILE"] = "quick"
    try:
        return course.data_dir()
    finally:
        os.environ.pop("HEPML_PROFILE", None)


@pytest.fixture(scope="module")
def text(data_dir):
    import time
    started = time.time()
    nb = run_notebook("6_NeutrinoFlow.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    out = cell_text_outputs(nb)
    return out, started


def test_data_and_encoder(text):
    text, _ = text
    assert _number(text, "largest relative difference, hd.unscale vs the saved original:") < 1e-4
    # the MET follows the neutrinos' summed px
    assert _number(text, "correlation of MET px with the neutrinos' summed px:") > 0.8
    assert "context shape: (256, 16)" in text
    # padded jet slots change nothing: masked in the attention and weight 0 in the pooling
    assert _number(text, "largest context change when the padded jets are replaced by noise:") == 0.0
    assert _number(text, "largest score of a padded token:") == 0.0
    assert "batch shape: (5,)  event shape: (6,)" in text
    assert "one sample per event: (5, 6)   three per event: (3, 5, 6)" in text


def test_training_beats_the_untrained_flows(text):
    text, _ = text
    normal = _number(text, "standard normal (ignores the event), validation NLL:")
    assert 7.5 < normal < 9.5           # ~3 log(2 pi e) = 8.51 on standardised features
    for kind in ("MAF", "NSF"):
        untrained = _number(text, f"untrained {kind} validation NLL:")
        trained = _number(text, f"{kind} validation NLL:")
        assert 7.0 < untrained < 11.0
        # the quick profile trains on 14,000 rows for 2 epochs: a clear gain, not convergence
        assert trained < untrained - 1.0, (kind, trained, untrained)


def test_samples_and_statistics(text):
    text, _ = text
    m = re.search(r"KS from statistics alone \(95 % quantile, [0-9,]+ vs [0-9,]+ events\):\s*([0-9.]+)", text)
    assert m, "the statistical KS level was not printed"
    ks_noise = float(m.group(1))
    assert 0.01 < ks_noise < 0.1
    for kind in ("MAF", "NSF"):
        for f in ("nu1 pt", "nu1 eta", "nu1 phi", "nu2 pt", "nu2 eta", "nu2 phi"):
            assert 0.0 <= _number(text, f"{kind} KS {f}:") < 0.5
        # phi is the easy part: close to the truth already after a short training
        assert _number(text, f"{kind} KS nu1 phi:") < 0.12
        assert _number(text, f"{kind} KS nu2 phi:") < 0.12
        assert _number(text, f"{kind} FGD:") >= 0.0
        assert 0.3 < _number(text, f"{kind} classifier AUC:") < 1.0
    assert 0.3 < _number(text, "truth vs truth classifier AUC:") < 0.7
    assert _number(text, "truth vs truth FGD:") < 0.1


def test_outputs_for_other_notebooks_and_the_grader(text, data_dir):
    text, started = text
    f = data_dir / "neutrino_flow_samples.npz"
    assert f.is_file() and f.stat().st_mtime >= started - 1
    with np.load(f) as z:
        assert sorted(z.files) == ["sampled", "truth"]
        truth, sampled = z["truth"], z["sampled"]
    assert truth.dtype == np.float32 and sampled.dtype == np.float32
    assert truth.ndim == 2 and truth.shape[1] == 6 and truth.shape == sampled.shape
    assert truth.shape[0] == 1500           # quick profile: every validation event, copy 0
    assert np.all(np.isfinite(sampled))
    for name in ("neutrino_maf.npz", "neutrino_nsf.npz", "submission_neutrino_flow/neutrino_flow.npz",
                 "submission_neutrino_flow/submission.toml"):
        assert (data_dir / name).is_file(), name
    assert "wrote neutrino_flow_samples.npz" in text
    assert _number(text, "reloaded submission, largest log p difference:") < 1e-4
