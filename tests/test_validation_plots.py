"""hepml.viz.validation: the course's five regression figures and the headline numbers."""
import math

import numpy as np
import pytest

import hepml
import hepml.data as hd
from hepml.viz import regression_summary, validation_plots
from hepml.viz.validation import FIGURES, RegressionSummary, _median, _quantiles

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# a plausible W_data scaling: (mean, std) of log(1 + pt), eta, logit phi, log(1 + m)
SCALING = np.array([[4.2, 0.7], [0.0, 1.6], [0.0, 1.8], [4.39, 0.08]])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _sample(n=600, seed=0, features=4):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 2, features)).astype(np.float32)
    t[:, 1] = 0.6 * t[:, 0] + 0.8 * t[:, 1]               # correlated Ws, as in the data
    r = (0.8 * t + 0.4 * rng.normal(size=t.shape)).astype(np.float32)
    return t, r


def _wrap(d):
    return np.pi - np.mod(np.pi - d, 2 * np.pi)


def test_five_figures_in_physical_units():
    t, r = _sample()
    figs = validation_plots(t, r, scaling=SCALING, bins=20, title="MSE")
    assert tuple(figs) == FIGURES
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs.values())
    counts = {k: len(f.axes) for k, f in figs.items()}
    assert counts == {"target_vs_regressed": 8, "distributions": 8, "residual_correlations": 4,
                      "regressed_w1_vs_w2": 4, "target_w1_vs_w2": 4}
    a = figs["target_vs_regressed"].axes
    assert [ax.get_xlabel() for ax in a[:4]] == ["true W1 $p_T$ [GeV]", r"true W1 $\eta$", r"true W1 $\phi$ [rad]",
                                                 "true W1 $m$ [GeV]"]
    assert a[4].get_ylabel() == "regressed W2 $p_T$ [GeV]"
    # the correlation printed in each panel is the unbinned one
    rho = [txt.get_text() for txt in a[0].texts]
    tp, rp = hd.unscale("W_data", t, SCALING), hd.unscale("W_data", r, SCALING)
    assert rho == [f"$\\rho$ = {np.corrcoef(tp[:, 0, 0], rp[:, 0, 0])[0, 1]:.3f}"]
    assert len(a[0].get_lines()) == 1                      # the diagonal
    assert a[2].get_xlim() == pytest.approx((-math.pi, math.pi))
    res = figs["residual_correlations"].axes
    assert res[0].get_xlabel() == "W1 $\\Delta$$p_T$ / $p_T$" and res[2].get_ylabel() == "W2 $\\Delta$$\\phi$ [rad]"
    assert figs["distributions"].axes[7].get_xlabel() == "W2 $m$ [GeV]"
    assert figs["regressed_w1_vs_w2"].axes[1].get_ylabel() == r"regressed W2 $\eta$"
    assert figs["target_w1_vs_w2"].axes[3].get_xlabel() == "true W1 $m$ [GeV]"
    assert figs["target_vs_regressed"].get_suptitle() == "MSE: true vs regressed"


def test_scaled_units_and_other_feature_sets():
    t, r = _sample(300)
    figs = validation_plots(hepml.tensor(t), hepml.tensor(r, requires_grad=True), scaling=SCALING, unscale=False,
                            bins=10)
    a = figs["target_vs_regressed"].axes
    assert a[0].get_xlabel() == "true W1 $p_T$ (scaled)" and a[3].get_ylabel() == "regressed W1 $m$ (scaled)"
    assert figs["residual_correlations"].axes[2].get_xlabel() == "W1 $\\Delta$$\\phi$ (scaled)"
    plt.close("all")
    # neutrinos: (pt, eta, phi) with their own scaling
    t3, r3 = _sample(300, features=3)
    figs = validation_plots(t3, r3, scaling=SCALING[:3], names=("pt", "eta", "phi"), scaling_name="nu_data",
                            bins=10)
    assert len(figs["target_vs_regressed"].axes) == 6 and len(figs["target_w1_vs_w2"].axes) == 3


def test_summary_matches_a_numpy_reference():
    t, r = _sample(1001)
    s = regression_summary(t, r, SCALING)
    assert isinstance(s, RegressionSummary) and s.physical and s.n_events == 1001
    tp = hd.unscale("W_data", t, SCALING).astype(np.float64)
    rp = hd.unscale("W_data", r, SCALING).astype(np.float64)
    for w in range(2):
        res = {"pt": (rp[:, w, 0] - tp[:, w, 0]) / tp[:, w, 0], "eta": rp[:, w, 1] - tp[:, w, 1],
               "phi": _wrap(rp[:, w, 2] - tp[:, w, 2]), "m": rp[:, w, 3] - tp[:, w, 3]}
        for j, f in enumerate(("pt", "eta", "phi", "m")):
            d = s[f"W{w + 1}"][f]
            assert set(d) == {"resolution", "width68", "bias", "correlation"}
            assert d["resolution"] == pytest.approx(np.std(res[f]), rel=1e-4), (w, f)
            assert d["bias"] == pytest.approx(np.median(res[f]), rel=1e-4, abs=1e-5), (w, f)
            q16, q84 = np.quantile(res[f], [0.15865525393145707, 0.8413447460685429])
            assert d["width68"] == pytest.approx(0.5 * (q84 - q16), rel=1e-4), (w, f)
            assert d["correlation"] == pytest.approx(np.corrcoef(rp[:, w, j], tp[:, w, j])[0, 1], rel=1e-4), (w, f)
    assert s.kinds == {"pt": "relative", "eta": "difference", "phi": "wrapped", "m": "difference"}
    text = str(s)
    assert "W2" in text and "(reg - true) / true" in text and "wrap(reg - true)" in text
    assert len(s.flat()) == 32 and "W1_pt_width68" in s.flat()


def test_summary_units_scalings_and_masks_agree():
    t, r = _sample(400)
    s = regression_summary(t, r, SCALING)
    # one scaling per W, both the same: the same numbers
    s2 = regression_summary(t, r, np.stack([SCALING, SCALING]))
    assert s2.flat() == pytest.approx(s.flat())
    # already physical inputs
    tp, rp = hd.unscale("W_data", t, SCALING), hd.unscale("W_data", r, SCALING)
    s3 = regression_summary(tp, rp, physical=True)
    assert s3.flat() == pytest.approx(s.flat(), rel=1e-5, abs=1e-6)
    # scaled units: plain differences, no wrapping
    s4 = regression_summary(t, r)
    assert not s4.physical and set(s4.kinds.values()) == {"difference"}
    assert s4["W1"]["phi"]["resolution"] == pytest.approx(np.std(r[:, 0, 2] - t[:, 0, 2]), rel=1e-4)
    # a mask selects events
    mask = np.arange(400) % 3 != 0
    s5 = regression_summary(t, r, SCALING, mask=mask)
    s6 = regression_summary(t[mask], r[mask], SCALING)
    assert s5.n_events == mask.sum() and s5.flat() == pytest.approx(s6.flat())


def test_phi_residuals_are_wrapped():
    # true phi near +pi, regressed near -pi: a small residual, not ~2 pi
    n = 50
    tp = np.zeros((n, 2, 4), np.float32)
    rp = np.zeros((n, 2, 4), np.float32)
    tp[..., 0] = rp[..., 0] = 50.0
    tp[..., 3] = rp[..., 3] = 80.0
    tp[..., 2] = 3.1
    rp[..., 2] = -3.1
    s = regression_summary(tp, rp, physical=True)
    assert s["W1"]["phi"]["bias"] == pytest.approx(2 * np.pi - 6.2, abs=1e-5)
    assert s["W1"]["phi"]["resolution"] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 4096, 20000, 20001])
@pytest.mark.parametrize("kind", ["normal", "ties", "heavy", "sorted"])
def test_median_is_exact(n, kind):
    rng = np.random.default_rng(n)
    if kind == "normal":
        a = rng.normal(size=(n, 3))
    elif kind == "ties":
        a = rng.integers(0, 3, size=(n, 3)).astype(float)
    elif kind == "heavy":
        a = rng.standard_cauchy(size=(n, 3)) * 1e3
    else:
        a = np.sort(rng.normal(size=(n, 3)), axis=0)
    a = a.astype(np.float32)
    np.testing.assert_array_equal(_median(hepml.tensor(a)), np.median(a.astype(np.float64), axis=0))
    qs = (0.0, 0.1586, 0.25, 0.8413, 1.0)
    np.testing.assert_allclose(_quantiles(hepml.tensor(a), qs), np.quantile(a.astype(np.float64), qs, axis=0),
                               rtol=1e-12, atol=0)


def test_bad_inputs_name_the_argument():
    t, r = _sample(50)
    with pytest.raises(ValueError, match=r"'target' has shape \(50, 8\)"):
        validation_plots(t.reshape(50, 8), r)
    with pytest.raises(ValueError, match=r"'regressed' has shape \(50, 2, 3\)"):
        regression_summary(t, r[:, :, :3])
    with pytest.raises(ValueError, match="'target' \\(50 events\\) and 'regressed' \\(49 events\\)"):
        validation_plots(t, r[:49])
    with pytest.raises(ValueError, match=r"'scaling' has shape \(3, 2\)"):
        validation_plots(t, r, scaling=SCALING[:3])
    with pytest.raises(ValueError, match=r"'scaling' has shape \(2, 4\)"):
        regression_summary(t, r, SCALING.T)
    with pytest.raises(ValueError, match="'mask'"):
        regression_summary(t, r, SCALING, mask=np.ones(49, bool))
    with pytest.raises(ValueError, match="'mask'"):
        regression_summary(t, r, SCALING, mask=np.ones(50))
    with pytest.raises(ValueError, match="'names'"):
        regression_summary(t, r, names=("pt", "pt", "phi", "m"))
    with pytest.raises(ValueError, match="'bins'"):
        validation_plots(t, r, bins=0)
    with pytest.raises(ValueError, match="physical"):
        regression_summary(t, r, SCALING, physical=True)
    with pytest.raises(TypeError, match="'target'"):
        regression_summary(None, r)
    bad = r.copy()
    bad[3, 0, 1] = np.nan
    with pytest.raises(ValueError, match="not all finite"):
        regression_summary(t, bad)
