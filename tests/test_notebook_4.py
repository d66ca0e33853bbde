"""Notebook 4 (normalizing flows playground) runs top to bottom in a fresh kernel, and shows what
it claims: densities transform with the Jacobian, an untrained flow is already normalised,
training on two moons lowers the NLL far below the untrained flow's, knowing the moon label is
worth about log 2, the MADE's Jacobian is triangular in autoregressive order, and the circular
spline flow learns angles."""
import math
import re

import pytest

from notebook_runner import cell_text_outputs, run_notebook

NUMBER = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"


def _number(text, label):
    """The number printed after ``label`` (a literal prefix)."""
    m = re.search(re.escape(label) + r"\s*" + NUMBER, text)
    assert m, f"'{label}' was not printed"
    return float(m.group(1))


@pytest.fixture(scope="module")
def text():
    nb = run_notebook("4_NormalizingFlowsPlayground.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return cell_text_outputs(nb)


def test_distributions_and_jacobians(text):
    assert "DiagNormal: batch_shape ()  event_shape (2,)" in text
    assert "sample((4,)) -> (4, 2)   log_prob -> (4,)" in text
    # histogram of 50,000 normal samples vs the density: fluctuations of a few 0.01
    assert _number(text, "largest |histogram - density| over the bins:") < 0.03
    assert abs(_number(text, "= log 2 =") - math.log(2)) < 1e-3
    # y = exp(x): without the 1/y factor the curve has area e^0.5, with it 1
    assert abs(_number(text, "area under the curve without the Jacobian:") - math.exp(0.5)) < 0.02
    assert abs(_number(text, "area under the curve with the Jacobian:") - 1.0) < 0.01
    assert _number(text, "Normal(0, 1)).log_prob agrees with the curve to") < 1e-4


def test_flow_layer_by_layer(text):
    assert "transform.transforms.1._0: the rotation's A, shape (2, 2), requires_grad=True" in text
    assert abs(_number(text, "det R =") - 1.0) < 1e-4
    assert "sample((5,)): (5, 2)   log_prob: (5,)" in text
    assert abs(_number(text, "integral of the untrained flow's density over [-9, 9]^2:") - 1.0) < 0.02


def test_two_moons_training(text):
    untrained = _number(text, "two moons untrained NSF validation NLL:")
    trained = _number(text, "two moons NSF validation NLL:")
    train_nll = _number(text, "two moons NSF training NLL:")
    # standard-normal-like untrained flow: ~2.5-3; the entropy of the moons is ~0.96
    assert 2.0 < untrained < 5.0
    assert trained < untrained - 1.0
    assert 0.7 < trained < 1.8
    assert abs(train_nll - trained) < 0.2            # no overfitting with thousands of points
    m = re.search(r"latent mean: \[\s*" + NUMBER + r"\s+" + NUMBER + r"\]\s+std: \[\s*" + NUMBER + r"\s+" + NUMBER,
                  text)
    assert m, "the latent mean and std were not printed"
    mean0, mean1, std0, std1 = (float(v) for v in m.groups())
    assert abs(mean0) < 0.3 and abs(mean1) < 0.3
    assert 0.6 < std0 < 1.4 and 0.6 < std1 < 1.4


def test_conditional_flow(text):
    unconditional = _number(text, "two moons NSF validation NLL:")
    conditional = _number(text, "two moons conditional NSF validation NLL:")
    # the label is worth ~log 2 = 0.69 nats (less after the quick profile's few epochs)
    assert 0.3 < unconditional - conditional < 1.0
    gain = _number(text, "two moons NLL gain from the label (log 2 = 0.693):")
    assert abs(gain - (unconditional - conditional)) < 2e-3
    assert "one sample per context: (2, 2)" in text
    assert "sample((3000,)): (3000, 2, 2) -> transposed (n, N, F): (2, 3000, 2)" in text
    # the label-0 moon sits left and up, the label-1 moon right and down
    m0 = re.search(r"label 0: mean of its samples \[\s*" + NUMBER + r"\s+" + NUMBER, text)
    m1 = re.search(r"label 1: mean of its samples \[\s*" + NUMBER + r"\s+" + NUMBER, text)
    assert m0 and m1
    assert float(m0.group(1)) < float(m1.group(1)) - 0.5
    assert float(m0.group(2)) > float(m1.group(2)) + 0.3


def test_flow_types(text):
    untrained = _number(text, "two moons untrained NSF validation NLL:")
    assert _number(text, "two moons MAF validation NLL:") < untrained - 0.5
    assert _number(text, "two moons NICE validation NLL:") < untrained - 0.5
    # the MADE's Jacobian is strictly lower-triangular in autoregressive order
    assert "MADE Jacobian, entries on or above the diagonal in autoregressive order: 0" in text
    assert "transform Jacobian, entries above the diagonal in autoregressive order: 0" in text
    m = re.search(r"log\|det J\| from the diagonal: " + NUMBER + r",\s+from the transform: " + NUMBER, text)
    assert m
    assert abs(float(m.group(1)) - float(m.group(2))) < 1e-3
    # passes=2: the first half depends only on itself, the second on the first half and itself
    m = re.search(r"passes=2: nonzero pattern\n((?:.*\n){6})", text)
    assert m, "the passes=2 pattern was not printed"
    rows = [[int(v) for v in re.findall(r"[01]", line)] for line in m.group(1).splitlines()]
    assert all(len(r) == 6 for r in rows)
    for i in range(6):
        assert rows[i][i] == 1
        for j in range(6):
            if j != i and not (i >= 3 and j < 3):
                assert rows[i][j] == 0, f"unexpected dependence of y{i} on x{j}"
    for name in ("NICE", "MAF", "NSF"):
        assert _number(text, f"{name} log_prob time (batch 1024, 8 features):") > 0
        assert _number(text, f"{name} sample time (batch 1024, 8 features):") > 0


def test_circular_splines(text):
    m = re.search(r"angles NCSF: validation NLL " + NUMBER + r" \(untrained " + NUMBER, text)
    assert m
    trained, untrained = float(m.group(1)), float(m.group(2))
    # uniform on the torus: 2 log(2 pi) = 3.68; the data are far more concentrated
    assert trained < untrained - 0.5
    assert trained < 2 * math.log(2 * math.pi) - 0.5
    assert "samples inside [-pi, pi): True" in text
