"""Notebook 8 (validating generators) runs top to bottom in a fresh kernel, and its tests behave
as it claims: samples of the same distribution are not rejected, a correlation that leaves
every marginal unchanged is invisible to the per-feature tests and obvious to FGD and the
classifier, the p-values fall as a deformation grows, and the neutrino section (the flow's
samples of notebook 6, or the stand-in when they are absent) compares with truth vs truth."""
import re

import pytest

from notebook_runner import cell_text_outputs, run_notebook

NUMBER = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"
TESTS = ["W1 (per feature)", "KS (per feature)", "sliced W1", "sliced KS", "FGD", "MMD poly4",
         "FGD-inf", "KPD", "classifier AUC"]
P_TESTS = [t for t in TESTS if t not in ("FGD-inf", "KPD")]
KINDS = ["mean shift", "width", "correlation", "tails"]
ALPHA = 0.05


def _number(text, label):
    """The number printed after ``label`` (a literal prefix)."""
    m = re.search(re.escape(label) + r"\s*" + NUMBER, text)
    assert m, f"'{label}' was not printed"
    return float(m.group(1))


def _sweep(text, kind):
    """The sensitivity block of one deformation: (eps list, {test: [p-value or excess in sigma]})."""
    m = re.search(r"^" + re.escape(kind) + r"\s+((?:[0-9.]+\s+)+)\(eps\)\n((?:.*\n){%d})" % len(TESTS), text,
                  re.MULTILINE)
    assert m, f"the '{kind}' block of the sensitivity study was not printed"
    eps = [float(v) for v in m.group(1).split()]
    rows = {}
    for line in m.group(2).splitlines():
        name = line[:18].strip()
        assert name in TESTS, line
        values = [float(v.rstrip("s")) for v in line[18:].split()]
        assert len(values) == len(eps), line
        rows[name] = values
    assert set(rows) == set(TESTS)
    return eps, rows


@pytest.fixture(scope="module")
def text():
    nb = run_notebook("8_ValidatingGenerators.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return cell_text_outputs(nb)


def test_correlated_toy(text):
    # the marginals are exactly standard normal: KS sees nothing ...
    m = re.search(r"per-feature KS statistic: \[.*?\]\s+p-values: \[\s*" + NUMBER + r"\s+" + NUMBER, text)
    assert m
    assert min(float(m.group(1)), float(m.group(2))) > 0.01
    # ... the FGD rejects with the smallest p-value the permutations allow
    m = re.search(r"permutation p-value " + NUMBER + r" \(smallest possible: " + NUMBER, text)
    assert m and float(m.group(1)) == pytest.approx(float(m.group(2)))
    # same distribution: not rejected
    m = re.search(r"same distribution:\s+FGD = " + NUMBER + r", p = " + NUMBER, text)
    assert m and float(m.group(2)) > 0.05
    # the classifier: ~0.5 for the same distribution, clearly above for the correlation
    m = re.search(r"same distribution\s+AUC = " + NUMBER + r", p = " + NUMBER, text)
    assert m and abs(float(m.group(1)) - 0.5) < 0.05 and float(m.group(2)) > 0.01
    m = re.search(r"correlation 0.6\s+AUC = " + NUMBER + r", p = " + NUMBER, text)
    assert m and float(m.group(1)) > 0.6 and float(m.group(2)) < 1e-6
    # shifting one feature by 0.1: W1 is exactly the shift
    m = re.search(r"reference shifted by 0.1 in x: W1 per feature \[\s*" + NUMBER, text)
    assert m and abs(float(m.group(1)) - 0.1) < 1e-3


def test_validation_table(text):
    assert _number(text, "validation table time:") > 0
    for label in ("W1[x0]", "KS[x0]", "sliced W1", "FGD-inf (jetnet fpd)", "KPD (jetnet kpd)"):
        assert label in text


def test_truth_vs_truth_is_not_rejected(text):
    m = re.search(r"p-values without deformation \(eps = 0\): (.*)", text)
    assert m
    ps = dict(item.rsplit(" ", 1) for item in m.group(1).strip().split(", "))
    ps = {t: float(v) for t, v in ps.items()}
    assert len(ps) == len(P_TESTS)
    assert min(ps.values()) > 0.01, ps
    assert _number(text, "smallest p-value without deformation (eps = 0):") > 0.01


def test_sensitivity_grows_with_the_deformation(text):
    for kind in KINDS:
        eps, rows = _sweep(text, kind)
        assert eps[0] == 0 and eps[-1] == 0.5
        # at eps = 0: no test rejects, no excess beyond a few sigma
        assert all(rows[t][0] > 0.01 for t in P_TESTS), (kind, rows)
        assert all(rows[t][0] == 0 for t in ("FGD-inf", "KPD"))
        # at the largest deformation several tests reject, some with tiny p-values
        assert sum(rows[t][-1] < ALPHA for t in P_TESTS) >= 3, (kind, rows)
        assert min(rows[t][-1] for t in P_TESTS) < 0.01, (kind, rows)
    # the p-values fall as the deformation grows (KS for shifts and widths, FGD for correlations)
    for kind, test in (("mean shift", "KS (per feature)"), ("width", "KS (per feature)"),
                       ("correlation", "FGD"), ("mean shift", "classifier AUC")):
        eps, rows = _sweep(text, kind)
        ps = rows[test]
        assert ps[-1] < 1e-2 and ps[-1] <= min(ps[:-1]), (kind, test, ps)
        assert ps[-1] < 0.2 * ps[0]
    for kind in ("mean shift", "width", "correlation"):
        eps, rows = _sweep(text, kind)
        excess = rows["FGD-inf"]
        assert excess[-1] > 3 and excess[-1] > excess[1], (kind, excess)
    eps, rows = _sweep(text, "mean shift")
    assert rows["KS (per feature)"][-1] < 1e-20
    assert _number(text, "KS (per feature) p-value, mean shift eps = 0.5:") < 1e-20
    # the marginals are unchanged by the correlation: the per-feature tests never reject
    eps, rows = _sweep(text, "correlation")
    assert min(rows["W1 (per feature)"]) > 0.05 and min(rows["KS (per feature)"]) > 0.05
    # mean and covariance are unchanged by the tails: FGD never rejects
    eps, rows = _sweep(text, "tails")
    assert min(rows["FGD"]) > 0.01


def test_who_detects_first(text):
    m = re.search(r"smallest eps detected \(N = .*\n.*\n((?:.*\n){%d})" % len(TESTS), text)
    assert m
    table = {}
    for line in m.group(1).splitlines():
        name = line[:18].strip()
        assert name in TESTS, line
        table[name] = dict(zip(KINDS, line[18:].split()))
    assert table["KS (per feature)"]["correlation"] == "-"
    assert table["W1 (per feature)"]["correlation"] == "-"
    assert table["FGD"]["correlation"] != "-"
    assert table["FGD"]["tails"] == "-"
    assert table["KS (per feature)"]["mean shift"] != "-" and float(table["KS (per feature)"]["mean shift"]) <= 0.2


def test_neutrino_section(text):
    stand_in = "validating a stand-in instead" in text
    assert stand_in or "loaded neutrino_flow_samples.npz" in text
    m = re.search(r"kept ([0-9,]+) of ([0-9,]+) rows: one per event", text)
    assert m and 0 < int(m.group(1).replace(",", "")) <= int(m.group(2).replace(",", ""))
    # the comparison table: generated, then truth vs truth
    head = re.search(r"^test\s+(.+?)\s+truth vs truth\n((?:.*\n){%d})" % len(TESTS), text, re.MULTILINE)
    assert head, "the neutrino comparison table was not printed"
    p_truth = []
    for line in head.group(2).splitlines():
        ps = re.findall(r"p = " + NUMBER, line)
        if ps:
            assert len(ps) == 2, line
            p_truth.append(float(ps[1]))
    assert len(p_truth) == len(P_TESTS)
    # two halves of the truth: at most one of seven tests below 1 % by chance, none tiny
    assert sum(p < 0.01 for p in p_truth) <= 1, p_truth
    assert min(p_truth) > 1e-3, p_truth
    assert _number(text, "neutrino truth vs truth: smallest p-value:") > 1e-3
    auc_tt = _number(text, "neutrino truth vs truth: classifier AUC:")
    assert 0.4 < auc_tt < 0.6
    m = re.search(r"tests that flag the .*?: ([0-9]) of 9", text)
    assert m
    if stand_in:
        # a diagonal Gaussian misses the shapes and the eta-eta correlation
        assert int(m.group(1)) >= 3
        assert _number(text, "neutrino stand-in (DiagNormal): FGD:") > 0.05
