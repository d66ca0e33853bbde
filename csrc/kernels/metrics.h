/*
 * Two-sample statistics for validating generative models (hepml.metrics).
 *
 * Everything here is forward-only and in double precision: the statistics are
 * differences of nearly equal quantities (CDFs, moments, kernel means), and a
 * metric is computed once per validation, not once per training step. float32
 * tensors are converted to double by the caller (the binding layer).
 *
 * Samples are row-major: a [n, d] and b [m, d]. Sizes are int64_t, but the
 * pooled size n + m must stay below 2^32 (pool indices are stored as uint32 to
 * halve the memory traffic of the permutation walks).
 *
 * Unlike the training kernels, these functions allocate their own scratch
 * (once per call, never per item): their scratch depends on the thread count
 * and on the method chosen inside, and a call is a one-shot reduction, not a
 * hot path. Every function that can fail returns an hm_metric status (0 = ok).
 * Input validation (NaN, shapes) is the binding layer's job; the kernels only
 * refuse sizes for which the statistic is undefined.
 *
 * Randomness (projection directions, permutations, subsamples) comes from
 * rng.h with one Philox stream per item (direction k, permutation p, batch b),
 * so every result is a pure function of (inputs, seed) and does not depend on
 * the number of OpenMP threads.
 *
 * Conventions matched (details at each function):
 *  - W1: scipy.stats.wasserstein_distance with unit weights.
 *  - KS: scipy.stats.ks_2samp(alternative='two-sided', method='auto').
 *  - FGD / FGD-infinity: jetnet.evaluation.fpd (JetNet >= 0.2.x).
 *  - KPD: jetnet.evaluation.kpd (polynomial kernel (x.y/d + 1)^degree; jetnet
 *    uses degree 4, the KID convention is degree 3: the degree is an argument).
 */
#ifndef HM_METRICS_H
#define HM_METRICS_H

#include <stdint.h>

/* Status codes. */
#define HM_METRIC_OK      0
#define HM_METRIC_EINVAL  1 /* sizes for which the statistic is undefined (n < 1 or < 2, ...) */
#define HM_METRIC_ENOMEM  2
#define HM_METRIC_ELAPACK 3 /* the symmetric eigensolver did not converge */

/* Philox streams used here (rng.h reserves 1..5 and 2^32 + event). Item i of a
 * family uses stream base + i. */
#define HM_METRIC_STREAM_DIR  (((uint64_t)0x4D45 << 48) | ((uint64_t)1 << 40))
#define HM_METRIC_STREAM_PERM (((uint64_t)0x4D45 << 48) | ((uint64_t)2 << 40))
#define HM_METRIC_STREAM_FGD  (((uint64_t)0x4D45 << 48) | ((uint64_t)3 << 40))
#define HM_METRIC_STREAM_KPD  (((uint64_t)0x4D45 << 48) | ((uint64_t)4 << 40))

/* ------------------------------------------------------------------------- */
/* One-dimensional statistics                                                */
/* ------------------------------------------------------------------------- */

/* Wasserstein-1 distance between the empirical distributions of a [n] and
 * b [m]: the integral of |F_a - F_b| over the merged sorted sample, as
 * scipy.stats.wasserstein_distance with unit weights. n, m >= 1. */
int hm_metric_w1(double *w1, const double *a, int64_t n, const double *b, int64_t m);

/* Two-sample Kolmogorov-Smirnov statistic D = sup |F_a - F_b| (CDFs evaluated
 * after ties, as scipy) and its two-sided p-value (see hm_metric_ks_pvalue).
 * pvalue may be NULL. n, m >= 1. */
int hm_metric_ks(double *stat, double *pvalue, const double *a, int64_t n, const double *b, int64_t m);

/* p-value of the two-sided two-sample KS test for statistic d, equal to
 * scipy.stats.ks_2samp(..., method='auto').pvalue:
 *  - max(n, m) <= 10000: exact. d is snapped to h / lcm(n, m) as scipy does;
 *    n == m uses the closed-form alternating series for paths leaving the band,
 *    n != m the "inside" lattice-path recursion computing 1 - p directly
 *    (Hodges 1958; Viehmann 2021). Falls back to the asymptotic branch if the
 *    recursion does not produce a probability.
 *  - otherwise: kstwo.sf(d, round(n m / (n + m))), the exact one-sample
 *    Kolmogorov distribution at the effective size (hm_metric_kstwo_sf).
 * Agreement with scipy 1.17: relative 1e-9 (typically 1e-13) for p > 1e-300. */
double hm_metric_ks_pvalue(double d, int64_t n, int64_t m);

/* Survival function of the two-sided one-sample KS statistic D_n,
 * P(D_n >= x) = scipy.stats.kstwo.sf(x, n), following scipy's selection of
 * methods (Simard & L'Ecuyer 2011): Ruben-Gambino closed forms near the ends,
 * 2 x Smirnov's one-sided tail (Birnbaum-Tingey sum) for large n x^2 or
 * x >= 1/2, the Durbin matrix (Marsaglia-Tsang-Wang) for small n x^1.5, and the
 * Pelz-Good expansion otherwise. Difference from scipy: for n <= 140 and
 * 0.754693 < n x^2 <= 4 scipy uses Pomeranz's recursion; here the (equally
 * exact) Durbin matrix is used. */
double hm_metric_kstwo_sf(double x, int64_t n);

/* ------------------------------------------------------------------------- */
/* Per-feature and sliced statistics, with permutation nulls                 */
/* ------------------------------------------------------------------------- */

/* k random unit directions in R^d: standard normal vectors (rng.h, stream
 * HM_METRIC_STREAM_DIR + i for direction i) divided by their norm.
 * dirs: [k, d]. */
int hm_metric_random_directions(double *dirs, int64_t k, int64_t d, uint64_t seed);

/*
 * The engine behind the per-feature and sliced statistics. A "column" is either
 * feature j of the samples (dirs == NULL, then ncol must equal d) or the
 * projection x . dirs[j] (dirs [ncol, d]). For every column it computes
 *   w1[j], ks[j]     observed W1 and KS statistic,              [ncol]
 *   ks_p[j]          the scipy-convention KS p-value of ks[j],  [ncol]
 *   w1_null, ks_null the statistics after permutation p of the pooled events:
 *                    [n_perm, ncol], row p = permutation p.
 * Any output may be NULL (ks_p is then not computed). Pool event i is a[i]
 * for i < n, else b[i - n]. Permutation p assigns a uniformly random n-subset
 * of the pool to "a": a partial Fisher-Yates shuffle of 0..n+m-1 on Philox
 * stream HM_METRIC_STREAM_PERM + p drawing min(n, m) positions (32-bit Lemire
 * reduction with rejection); the drawn positions form "a" if n <= m, else "b".
 * The same relabelling serves every column and hm_metric_fgd_perm /
 * hm_metric_mmd_perm with the same seed.
 * Each column is sorted once (radix sort); a permutation then only relabels
 * the sorted pool, O(n + m) per column, 16 permutations per pass over it.
 * The running CDF difference is an exact integer (in a double), so n m must be
 * below 2^53 when n_perm > 0 (EINVAL otherwise).
 */
int hm_metric_columns(double *w1, double *ks, double *ks_p, double *w1_null, double *ks_null,
                      const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                      const double *dirs, int64_t ncol, int64_t n_perm, uint64_t seed);

/* Per-feature W1 [d] and KS statistic [d] with scipy p-values [d] (outputs may
 * be NULL). */
int hm_metric_features(double *w1, double *ks, double *ks_p,
                       const double *a, int64_t n, const double *b, int64_t m, int64_t d);

/* Sliced W1 and KS over k random directions (hm_metric_random_directions with
 * `seed`): mean and standard deviation over slices (ddof = 0, like np.std) and
 * optionally the per-slice values [k]. Outputs may be NULL. */
int hm_metric_sliced(double *w1_mean, double *w1_std, double *ks_mean, double *ks_std,
                     double *w1_slices, double *ks_slices,
                     const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                     int64_t k, uint64_t seed);

/* Permutation p-values p[j] = (1 + #{p' : null[p', j] >= observed[j]}) / (1 + n_perm)
 * for a null table [n_perm, ncol]. */
void hm_metric_perm_pvalues(double *pvalue, const double *observed, const double *null_,
                            int64_t n_perm, int64_t ncol);

/* Row-wise mean and standard deviation (ddof = 0) of x [rows, cols], summed in
 * column order (turns a [n_perm, k] sliced null into the null of the mean over
 * slices). Either output may be NULL. */
void hm_metric_row_mean_std(double *mean, double *std, const double *x, int64_t rows, int64_t cols);

/* ------------------------------------------------------------------------- */
/* Frechet Gaussian distance                                                 */
/* ------------------------------------------------------------------------- */

/* inv_scale[j] = 1 / max_i |x[i, j]| (1 where the column is all zero): passing it
 * as col_scale below reproduces jetnet's normalise=True (features divided by
 * the reference sample's maximum absolute value). */
void hm_metric_maxabs_inv(double *inv_scale, const double *x, int64_t n, int64_t d);

/* Mean [d] and covariance [d, d] (ddof = 1, like np.cov) of x [n, d]: two passes
 * (mean, then centred products) over fixed chunks of rows whose partial sums
 * are combined in chunk order, so the result does not depend on the thread
 * count. n >= 2. */
int hm_metric_mean_cov(double *mean, double *cov, const double *x, int64_t n, int64_t d);

/* Frechet distance between N(mu1, c1) and N(mu2, c2):
 * |mu1 - mu2|^2 + tr(c1 + c2 - 2 (c1^1/2 c2 c1^1/2)^1/2). Square roots from the
 * LAPACK symmetric eigendecomposition, eigenvalues clamped at 0 (covariances
 * of finite samples can have tiny negative rounding eigenvalues). */
int hm_metric_frechet(double *fd, const double *mu1, const double *c1,
                      const double *mu2, const double *c2, int64_t d);

/* Frechet Gaussian distance of the samples (mean_cov of each, then frechet).
 * col_scale [d] (may be NULL) multiplies the features first. n, m >= 2. */
int hm_metric_fgd(double *fd, const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                  const double *col_scale);

/*
 * FGD-infinity as jetnet.evaluation.fpd: subsample sizes
 * N_i = (int)(1 / linspace(1/min_samples, 1/max_samples, num_points)[i]); for
 * each size, num_batches pairs of subsamples drawn with replacement (item
 * (i, j) uses stream HM_METRIC_STREAM_FGD + i * num_batches + j), FD averaged
 * over the batches; then a least-squares fit FD(N) = value + slope / N with
 * value >= 0 and slope >= 0 (scipy curve_fit with those bounds, solved here
 * exactly), err = sqrt of the intercept's variance with the residual variance
 * SSR / (num_points - 2) (curve_fit's pcov with absolute_sigma=False; infinite
 * for num_points = 2). jetnet defaults: 20000, 50000, 20 batches, 10 points.
 * Outputs sizes [num_points] and fd_means [num_points] may be NULL.
 * A subsample is kept as multiplicities per event, and its mean and covariance
 * are computed in two weighted passes (exactly those of the drawn rows).
 * The subsamples are not numpy's, so values agree with jetnet statistically,
 * not digit for digit. Means/covariances run in parallel over the items; the
 * eigendecompositions run afterwards on the calling thread.
 */
int hm_metric_fgd_inf(double *value, double *err, double *sizes, double *fd_means,
                      const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                      const double *col_scale, int64_t min_samples, int64_t max_samples,
                      int64_t num_batches, int64_t num_points, uint64_t seed);

/* Permutation test of the FGD: observed FGD, null [n_perm] (may be NULL) and
 * p-value (may be NULL). Relabellings as in hm_metric_columns; each relabelled
 * sample's mean and covariance are two-pass, over its events in pool order.
 * With n_perm = 0 only the observed value is computed (p-value 1). */
int hm_metric_fgd_perm(double *observed, double *pvalue, double *null_,
                       const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                       const double *col_scale, int64_t n_perm, uint64_t seed);

/* ------------------------------------------------------------------------- */
/* Kernel MMD with the polynomial kernel (KPD)                               */
/* ------------------------------------------------------------------------- */

/*
 * Unbiased MMD^2 with k(x, y) = (x . y / d + 1)^degree (jetnet's
 * _mmd_poly_quadratic_unbiased: off-diagonal means of k(a, a) and k(b, b) minus
 * twice the mean of k(a, b)). col_scale [d] may be NULL. n, m >= 2, degree >= 1.
 *
 * The polynomial kernel is an inner product of explicit monomial features
 * (C(d + degree, degree) of them: 210 for d = 6, degree 4), so the statistic is
 * computed in O((n + m) F) instead of O((n + m)^2 d), and in a form without
 * cancellation: sum_f w_f (mean_a f - mean_b f)^2 minus the two diagonal
 * corrections. When F is large compared with the batch the direct pairwise sum
 * (hm_metric_mmd_poly_pairwise) is used instead.
 */
int hm_metric_mmd_poly(double *mmd, const double *a, int64_t n, const double *b, int64_t m,
                       int64_t d, int degree, const double *col_scale);

/* The same statistic by direct pairwise kernel sums (tiled, O((n + m)^2 d)).
 * The reference for tests and the fallback for very many features. */
int hm_metric_mmd_poly_pairwise(double *mmd, const double *a, int64_t n, const double *b, int64_t m,
                                int64_t d, int degree, const double *col_scale);

/* KPD as jetnet.evaluation.kpd: num_batches batches of batch_size events drawn
 * with replacement from each sample (batch i uses stream HM_METRIC_STREAM_KPD + i),
 * the unbiased MMD of each; returns the median and half the 16.275-83.725
 * percentile range (numpy linear interpolation). vals [num_batches] may be
 * NULL. jetnet defaults: 10 batches of 5000, degree 4. */
int hm_metric_kpd(double *median, double *err, double *vals,
                  const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                  int degree, const double *col_scale, int64_t num_batches, int64_t batch_size,
                  uint64_t seed);

/* Permutation test of the full-sample unbiased MMD (hm_metric_mmd_poly):
 * observed value, null [n_perm] (may be NULL) and p-value (may be NULL).
 * Relabellings as in hm_metric_columns. On the monomial route only the smaller
 * relabelled sample is summed; the other's sums are the pool's minus it. */
int hm_metric_mmd_perm(double *observed, double *pvalue, double *null_,
                       const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                       int degree, const double *col_scale, int64_t n_perm, uint64_t seed);

#endif
