"""Notebook 5 (boost flow) runs top to bottom in a fresh kernel, and reaches what it claims:
a trained conditional MAF far better than the untrained one, samples distributed like the
truth (closer than the raw reconstruction), calibrated posterior widths, and x1, x2 that
follow from (E_cm, p_z)."""
import re

import pytest

from notebook_runner import cell_text_outputs, run_notebook


def _number(text, label):
    """The number printed after ``label`` (a literal prefix)."""
    m = re.search(re.escape(label) + r"\s*(-?[0-9.]+(?:e-?[0-9]+)?)", text)
    assert m, f"'{label}' was not printed"
    return float(m.group(1))


@pytest.fixture(scope="module")
def text():
    nb = run_notebook("5_BoostFlow.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return cell_text_outputs(nb)


def test_data_and_model(text):
    # E and p_z do not change under the augmentation's rotations, so copy 0 suffices
    assert "copy 1 identical to copy 0: True" in text
    assert _number(text, "largest relative difference, hd.unscale vs the saved original:") < 1e-5
    # the reconstruction loses energy in most events
    assert _number(text, "reconstructed E below the true E_cm in") > 60
    # MAF(2 features, context 2, 2 transforms, hidden (16, 16)): 2 x (4*16+16 + 16*16+16 + 16*4+4)
    assert "trainable parameters: 840" in text
    assert "batch shape: (5,)  event shape: (2,)" in text
    assert "one sample per event: (5, 2)   three per event: (3, 5, 2)" in text


def test_training_beats_the_untrained_flow(text):
    trained = _number(text, "boost flow validation NLL:")
    untrained = _number(text, "untrained flow validation NLL:")
    # an untrained flow is close to its standard normal base: NLL ~ 2.8-3.0 on standardised data
    assert 2.0 < untrained < 4.5
    assert trained < untrained - 2.0
    assert trained < 0.0


def test_samples_match_the_truth(text):
    ks_e, ks_pz = _number(text, "boost flow KS E_cm:"), _number(text, "boost flow KS p_z:")
    # quick profile: 1,500 validation events, statistical 95 % level ~0.05
    assert 0 <= ks_e < 0.08 and 0 <= ks_pz < 0.08
    # closer to the truth than the reconstructed values themselves
    assert ks_e < _number(text, "reconstructed vs truth KS E_cm:")
    assert _number(text, "boost flow W1 E_cm:") < 0.5 * _number(text, "reconstructed vs truth W1 E_cm:")
    assert _number(text, "boost flow W1 p_z:") < 150


def test_posterior_and_partons(text):
    m = re.search(r"true \(x1, x2\) = \(([0-9.]+), ([0-9.]+)\);  from the true \(E_cm, p_z\): "
                  r"\(([0-9.]+), ([0-9.]+)\)", text)
    assert m, "the true x1, x2 were not printed"
    x1, x2, x1e, x2e = (float(v) for v in m.groups())
    assert abs(x1 - x1e) < 1e-3 and abs(x2 - x2e) < 1e-3
    assert _number(text, "samples outside 0 < x < 1:") < 5.0
    # the posterior of one event is much narrower than the spread of the truth over all events
    assert _number(text, "posterior std, median over events: E_cm") < 0.6 * _number(
        text, "spread of the truth over all events: E_cm")
    # calibrated widths: the truth inside the central 68 % of the samples ~68 % of the time
    for feature in ("E_cm", "p_z"):
        assert 0.55 < _number(text, f"boost flow 68% coverage {feature}:") < 0.80
