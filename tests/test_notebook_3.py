"""Notebook 3 (WW regression) runs top to bottom in a fresh kernel in the quick profile, and
reaches what it claims: the shapes and sizes of each stage's model, the identical-W failure
of identical decoder tokens, training that beats an untrained model, an MMD loss that brings
the regressed distributions closer to the truth, an MDMM run that reports its multiplier and
infeasibility, and a submission that reloads."""
import re

import pytest

from notebook_runner import cell_text_outputs, run_notebook


def _number(text, label):
    """The number printed after ``label`` (a literal prefix)."""
    m = re.search(re.escape(label) + r"\s*(-?[0-9.]+(?:e[-+]?[0-9]+)?)", text)
    assert m, f"'{label}' was not printed"
    return float(m.group(1))


@pytest.fixture(scope="module")
def text():
    nb = run_notebook("3_WWRegression.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return cell_text_outputs(nb)


def test_shapes_and_sizes(text):
    assert "jet_data                 (4, 13, 5)" in text
    assert "jetlepmet_padding_mask   (4, 16)" in text
    assert "W_ordered_data           (4, 2, 4)" in text
    # d_model 5, 2 + 2 layers, feed-forward 32, 5 heads
    m = re.search(r"MaskedTransformer on raw jets: output shape \(4, 2, 5\), ([0-9,]+) parameters", text)
    assert m, "the bare transformer's shape line was not printed"
    # LayerNorm at the end: every output token has mean 0 and std 1 over its features
    means = re.search(r"mean over the 5 features of each output token: \[([^\]]*)\]", text).group(1).split()
    assert all(abs(float(v)) < 1e-2 for v in means)
    m = re.search(r"WWRegressor: output shape \(4, 2, 4\), ([0-9,]+) parameters", text)
    assert m, "the jets-only model's shape line was not printed"
    assert "encoder input: (4, 16, 16); type labels of event 0: [ 0  0  0  0  0  0  0  0  0  0  0  0  0  1  1 -1]" \
        in text
    assert re.search(r"WWRegressorComplete: output shape \(4, 2, 4\), [0-9,]+ parameters", text)


def test_identical_tokens_give_identical_ws(text):
    assert _number(text, "identical null tokens: largest |W1 - W2| over the validation set:") == 0.0
    assert _number(text, "largest |W1 - W2| now:") > 0.1


def test_training_beats_untrained(text):
    untrained = _number(text, "untrained model validation MSE:")
    trained = _number(text, "MSE model validation MSE:")
    assert untrained > 0.8
    assert trained < untrained - 0.1
    # something real is learned: pt and eta correlate with the truth
    assert _number(text, "MSE model W1 eta resolution:") < 1.2
    assert re.search(r"MSE model W1 pt resolution: [0-9.]+ \(relative\)\s+68% width [0-9.]+, correlation 0\.[3-9]",
                     text)


def test_mmd_loss_matches_distributions(text):
    mmd_mse = _number(text, "MSE model validation MMD:")
    mmd_mmd = _number(text, "MMD model validation MMD:")
    assert mmd_mmd < 0.7 * mmd_mse
    floor = _number(text, "MMD noise floor at batch size 250:")
    assert 0.005 < floor < 0.05


def test_mdmm_reports(text):
    bound = _number(text, "MMD bound:")
    floor = _number(text, "MMD noise floor at batch size 250:")
    assert abs(bound - floor - 1e-3) < 2e-4
    lam = _number(text, "MDMM lambda:")
    inf = _number(text, "MDMM infeasibility (last epoch mean):")
    assert lam == lam and inf == inf and abs(inf) < 1.0
    assert _number(text, "MDMM model validation MMD:") < _number(text, "MSE model validation MMD:")


def test_saved_and_recorded(text):
    for stage in ("mse", "mmd", "phi", "mdmm"):
        assert f"saved ww_regression_{stage}.npz" in text
    assert "reloaded submission reproduces the predictions: True" in text
    assert "MDMM model W1 pt resolution:" in text and "MDMM model W2 eta correlation:" in text
