"""hepml.metrics: agreement with scipy / a float64 NumPy reference, null calibration,
sensitivity, the classifier test, bad inputs."""
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.stats

import hepml
from hepml import metrics as M


def gauss(n, d, seed, shift=0.0, dtype=np.float64):
    return (np.random.default_rng(seed).normal(size=(n, d)) + shift).astype(dtype)


# ----------------------------------------------------------- scipy agreement

@pytest.mark.parametrize("n,m", [(50, 50), (300, 170), (2000, 1500), (12000, 11000)])
def test_w1_and_ks_match_scipy(n, m):
    a, b = gauss(n, 3, 1), gauss(m, 3, 2, shift=0.05)
    a[:, 2] = np.round(a[:, 2], 1)  # ties
    b[:, 2] = np.round(b[:, 2], 1)
    w1 = M.wasserstein_1d(a, b)
    ks, p = M.ks_2samp(a, b)
    for j in range(3):
        ref = scipy.stats.ks_2samp(a[:, j], b[:, j])
        np.testing.assert_allclose(w1[j], scipy.stats.wasserstein_distance(a[:, j], b[:, j]), rtol=1e-10)
        np.testing.assert_allclose(ks[j], ref.statistic, rtol=1e-12)
        np.testing.assert_allclose(p[j], ref.pvalue, rtol=1e-8, atol=1e-300)


def test_1d_inputs_and_float32_and_tensors():
    a, b = gauss(400, 1, 3)[:, 0], gauss(300, 1, 4)[:, 0]
    assert isinstance(M.wasserstein_1d(a, b), float)
    np.testing.assert_allclose(M.wasserstein_1d(a, b), scipy.stats.wasserstein_distance(a, b), rtol=1e-10)
    s, p = M.ks_2samp(a, b)
    ref = scipy.stats.ks_2samp(a, b)
    assert abs(s - ref.statistic) < 1e-12 and abs(p - ref.pvalue) < 1e-9 * max(ref.pvalue, 1e-300)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(M.wasserstein_1d(hepml.tensor(a32), b32),
                               scipy.stats.wasserstein_distance(a32.astype(np.float64), b32.astype(np.float64)),
                               rtol=1e-10)


def fd_reference(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_fgd_matches_numpy_scipy(shift):
    rng = np.random.default_rng(5)
    mix = rng.normal(size=(5, 5))
    a = gauss(3000, 5, 6) @ mix
    b = gauss(2500, 5, 7, shift=shift) @ (mix + 0.1 * np.eye(5))
    np.testing.assert_allclose(M.frechet_gaussian_distance(a, b), fd_reference(a, b), rtol=1e-7, atol=1e-10)
    s = 1 / np.abs(a).max(0)
    np.testing.assert_allclose(M.frechet_gaussian_distance(a, b, normalise=True), fd_reference(a * s, b * s),
                               rtol=1e-7, atol=1e-10)


def mmd_reference(a, b, degree):
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** degree  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    n, m = len(a), len(b)
    return ((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
            - 2 * kab.mean())


@pytest.mark.parametrize("degree", [1, 3, 4])
def test_mmd_poly_matches_numpy(degree):
    a, b = gauss(300, 4, 8), gauss(250, 4, 9, shift=0.2)
    ref = mmd_reference(a, b, degree)
    np.testing.assert_allclose(M.mmd_poly(a, b, degree), ref, rtol=1e-8, atol=1e-12)


def test_fgd_inf_and_kpd_reasonable():
    a, b = gauss(4000, 3, 10), gauss(4000, 3, 11)
    v, e = M.fgd_inf(a, b, 1000, 4000, num_batches=10)
    assert v >= 0 and e >= 0 and v < 0.01
    med, err = M.kpd(a, b, batch_size=1000)
    assert abs(med) < 5 * err + 1e-3
    c = gauss(4000, 3, 12, shift=0.5)
    assert M.fgd_inf(a, c, 1000, 4000)[0] > 0.05
    med2, err2 = M.kpd(a, c, batch_size=1000)
    assert med2 > 5 * err2
    # seeded: same seed, same value
    assert M.kpd(a, c, batch_size=500, seed=3) == M.kpd(a, c, batch_size=500, seed=3)


def test_jetnet_agreement():
    jetnet = pytest.importorskip("jetnet")
    a, b = gauss(20000, 3, 13), gauss(20000, 3, 14, shift=0.1)
    ref_v, ref_e = jetnet.evaluation.fpd(a, b, min_samples=5000, max_samples=20000)
    v, e = M.fgd_inf(a, b, 5000, 20000)
    assert abs(v - ref_v) < 5 * (e + ref_e) + 1e-4
    ref_m, ref_err = jetnet.evaluation.kpd(a, b, batch_size=2000)
    m, err = M.kpd(a, b, batch_size=2000)
    assert abs(m - ref_m) < 5 * (err + ref_err) + 1e-5


# ------------------------------------------------------------- permutations

@pytest.mark.parametrize("stat", ["sliced_w1", "sliced_ks", "fgd", "mmd"])
def test_permutation_pvalues_roughly_uniform_under_null(stat):
    ps = []
    for s in range(40):
        a, b = gauss(150, 2, 100 + 2 * s), gauss(120, 2, 101 + 2 * s)
        obs, p, null = M.permutation_test(a, b, stat, n_permutations=49, seed=s, n_slices=10)
        assert len(null) == 49 and 0 < p <= 1
        ps.append(p)
    ps = np.array(ps)
    # 40 p-values on the 1/50 grid: mean ~0.5, no pile-up at small values
    assert 0.3 < ps.mean() < 0.7
    assert (ps <= 0.1).mean() < 0.3
    assert scipy.stats.kstest(ps, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("stat", ["w1", "ks", "sliced_w1", "sliced_ks", "fgd", "mmd"])
def test_permutation_sensitive_to_shift(stat):
    a, b = gauss(1000, 3, 20), gauss(1000, 3, 21, shift=0.3)
    obs, p, null = M.permutation_test(a, b, stat, n_permutations=99, seed=1)
    assert np.all(np.asarray(p) <= 0.011)
    obs0, p0, _ = M.permutation_test(a, gauss(1000, 3, 22), stat, n_permutations=99, seed=1)
    assert np.all(np.asarray(obs) > np.asarray(obs0))


def test_permutation_deterministic_and_per_feature_shapes():
    a, b = gauss(200, 3, 30), gauss(210, 3, 31)
    r1 = M.permutation_test(a, b, "w1", n_permutations=20, seed=4)
    r2 = M.permutation_test(a, b, "w1", n_permutations=20, seed=4)
    assert r1[2].shape == (20, 3)
    np.testing.assert_array_equal(r1[2], r2[2])
    np.testing.assert_allclose(r1[0], M.wasserstein_1d(a, b), rtol=1e-12)
    # the null really is "W1 of a relabelled pool"
    assert np.all(r1[2] >= 0)


def test_sliced_statistics():
    a, b = gauss(500, 4, 40), gauss(500, 4, 41, shift=0.4)
    m, s = M.sliced_wasserstein(a, b, n_slices=30, seed=2)
    m0, _ = M.sliced_wasserstein(a, gauss(500, 4, 42), n_slices=30, seed=2)
    assert m > 3 * m0 and s > 0
    km, ks = M.sliced_ks(a, b, n_slices=30, seed=2)
    assert 0 < km <= 1 and ks >= 0
    obs, p, null = M.permutation_test(a, b, "sliced_w1", n_permutations=10, n_slices=30, seed=2)
    np.testing.assert_allclose(obs, m, rtol=1e-12)


def test_two_sample_table():
    a, b = gauss(800, 2, 50), gauss(700, 2, 51, shift=0.3)
    t = M.two_sample_table(a, b, names=["pt", "eta"], n_permutations=19)
    assert "W1[pt]" in t and "KS[eta]" in t and "FGD" in t and "KPD (jetnet kpd)" in t
    assert t["FGD"]["p_value"] == pytest.approx(0.05)
    text = str(t)
    assert "sliced W1" in text and "p-value" in text
    with pytest.raises(ValueError, match="names"):
        M.two_sample_table(a, b, names=["x"])


# ---------------------------------------------------------------- classifier

def test_roc_auc_matches_mann_whitney():
    rng = np.random.default_rng(60)
    s = np.round(rng.normal(size=500), 1)
    y = (rng.random(500) < 0.4).astype(np.float64)
    s = s + y * 0.5
    u = scipy.stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    np.testing.assert_allclose(M.roc_auc(s, y), u / ((y == 1).sum() * (y == 0).sum()), rtol=1e-12)
    assert M.roc_auc(np.zeros(10), np.arange(10) % 2) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        M.roc_auc(s, np.zeros(500))


def test_classifier_two_sample_test():
    a, b = gauss(1500, 3, 70), gauss(1500, 3, 71)
    r = M.classifier_two_sample_test(a, b, hidden=(32, 32), epochs=5, seed=0)
    assert 0.4 < r["auc"] < 0.6
    r = M.classifier_two_sample_test(a, gauss(1500, 3, 72, shift=1.5), hidden=(32, 32), epochs=5, seed=0)
    assert r["auc"] > 0.9
    assert r["train_loss"][-1] < r["train_loss"][0]


# ---------------------------------------------------------------- bad inputs

def test_bad_inputs():
    a = gauss(100, 3, 80)
    with pytest.raises(ValueError, match="same number of features"):
        M.wasserstein_1d(a, gauss(100, 2, 81))
    bad = a.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"argument 'b'.*nan.*event 7, feature 1"):
        M.ks_2samp(a, bad)
    bad[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"argument 'a'.*inf"):
        M.frechet_gaussian_distance(bad, a)
    with pytest.raises(ValueError, match=r"argument 'b'.*1 events.*at least 2"):
        M.frechet_gaussian_distance(a, a[:1])
    with pytest.raises(ValueError, match=r"argument 'a'.*0 events"):
        M.wasserstein_1d(a[:0], a)
    with pytest.raises(ValueError, match="shape"):
        M.sliced_wasserstein(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="n_slices"):
        M.sliced_ks(a, a, n_slices=0)
    with pytest.raises(ValueError, match="statistic"):
        M.permutation_test(a, a, "nope")
    with pytest.raises(ValueError, match="n_permutations"):
        M.permutation_test(a, a, "fgd", n_permutations=0)
    with pytest.raises(ValueError, match="degree"):
        M.mmd_poly(a, a, degree=0)
    with pytest.raises(TypeError, match="argument 'a'"):
        M.kpd("text", a)
    with pytest.raises(ValueError, match="too small"):
        M.classifier_two_sample_test(a[:3], a[:3])


@pytest.mark.parametrize("stat", ["w1", "ks"])
def test_per_feature_permutation_pvalues_uniform(stat):
    ps = []
    for s in range(30):
        a, b = gauss(120, 2, 300 + 2 * s), gauss(140, 2, 301 + 2 * s)
        ps.append(M.permutation_test(a, b, stat, n_permutations=39, seed=s)[1])
    ps = np.concatenate(ps)
    assert 0.3 < ps.mean() < 0.7
    assert scipy.stats.kstest(ps, "uniform").pvalue > 1e-3


def test_results_independent_of_thread_count():
    a, b = gauss(30000, 4, 90), gauss(30000, 4, 91, shift=0.02)
    old = hepml.get_num_threads()
    try:
        res = []
        for nt in (1, 2):
            hepml.set_num_threads(nt)
            res.append((M.permutation_test(a, b, "sliced_w1", 10, n_slices=8)[2],
                        M.permutation_test(a, b, "fgd", 10)[2], M.permutation_test(a, b, "mmd", 10)[2],
                        M.fgd_inf(a, b, 5000, 20000, num_batches=3, num_points=3), M.kpd(a, b, batch_size=2000)))
        for x, y in zip(*res):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    finally:
        hepml.set_num_threads(old)


def test_table_sliced_rows_match_functions():
    a, b = gauss(600, 3, 95), gauss(600, 3, 96, shift=0.2)
    t = M.two_sample_table(a, b, n_permutations=9, n_slices=20, seed=3)
    m, s = M.sliced_wasserstein(a, b, 20, 3)
    np.testing.assert_allclose([t["sliced W1"]["value"], t["sliced W1"]["error"]], [m, s], rtol=1e-12)
    km, _ = M.sliced_ks(a, b, 20, 3)
    np.testing.assert_allclose(t["sliced KS"]["value"], km, rtol=1e-12)
    assert t["sliced W1"]["p_value"] == pytest.approx(0.1)


def test_fgd_inf_fit_is_exact_least_squares():
    a, b = gauss(20000, 3, 97), gauss(20000, 3, 98, shift=0.1)
    v, e, sizes, means = M.fgd_inf(a, b, 4000, 20000, num_batches=5, num_points=6, return_details=True)
    np.testing.assert_array_equal(sizes, (1 / np.linspace(1 / 4000, 1 / 20000, 6)).astype(np.int32))
    X = np.stack([np.ones_like(sizes), 1 / sizes], 1)
    # bounded linear least squares, solved to convergence by scipy
    ref = scipy.optimize.lsq_linear(X, means, bounds=([0, 0], [np.inf, np.inf]), tol=1e-15).x
    np.testing.assert_allclose(v, ref[0], rtol=1e-6, atol=1e-12)
    slope, intercept = np.polyfit(1 / sizes, means, 1)
    if intercept > 0 and slope > 0:  # bounds inactive: curve_fit's error formula applies as is
        resid = means - X @ ref
        cov = np.linalg.inv(X.T @ X) * (resid @ resid) / (len(sizes) - 2)
        np.testing.assert_allclose(e, np.sqrt(cov[0, 0]), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fgd_inf_fit_both_branches(seed):
    a, b = gauss(20000, 3, 97), gauss(20000, 3, 98, shift=0.1)
    v, e, sizes, means = M.fgd_inf(a, b, 4000, 20000, num_batches=5, num_points=6, seed=seed, return_details=True)
    X = np.stack([np.ones_like(sizes), 1 / sizes], 1)
    ref = scipy.optimize.lsq_linear(X, means, bounds=([0, 0], [np.inf, np.inf]), tol=1e-15).x
    np.testing.assert_allclose(v, ref[0], rtol=1e-6, atol=1e-12)
