/*
 * Maximum mean discrepancy (MMD) between two samples, forward and backward,
 * computed in tiles: pairwise kernel values live in registers and are never
 * stored, so memory is O((N + M) D) whatever the sample sizes.
 *
 * Samples: x [N, D], y [M, D], float32, row-major. With K(a, b) the kernel,
 *
 *   biased (V-statistic, the course's formula):
 *     MMD = mean_{i,j} K(x_i, x_j) + mean_{i,j} K(y_i, y_j) - 2 mean_{i,j} K(x_i, y_j)
 *     (diagonals included; the course uses N == M, the kernel also accepts N != M)
 *   unbiased (U-statistic):
 *     MMD = sum_{i!=j} K(x_i, x_j) / (N (N-1)) + sum_{i!=j} K(y_i, y_j) / (M (M-1))
 *           - 2 mean_{i,j} K(x_i, y_j)            (N, M >= 2; N != M allowed)
 *
 * Kernels, with r2 = |a - b|^2 (bandwidths `bw`, `n_bw`; bw == NULL selects the
 * course's defaults where there are any):
 *   HM_MMD_MULTISCALE  sum_c c^2 / (c^2 + r2),   default c in {0.1, 0.2, 0.5, 0.9, 1.4, 2.0}
 *   HM_MMD_RBF         sum_c exp(-r2 / (2 c)),   default c in {10, 15, 20, 50}
 *                      (2c, not 2c^2: the course's formula)
 *   HM_MMD_GAUSSIAN    exp(-r2 / (2 sigma^2)),   sigma = bw[0], n_bw = 1 (no default;
 *                      see hm_mmd_median_distance for the median heuristic)
 *   HM_MMD_POLYNOMIAL  (a.b / D + 1)^degree,     bw unused (degree 3 = KID/KPD)
 *
 * Numerics: pair terms in float32 (the course's precision), every sum over pairs
 * accumulated in double, per tile, and tiles combined in a fixed order, so the
 * result does not depend on the OpenMP thread count. MMD(x, x) with the biased
 * estimator is zero up to double rounding (about 1e-15), not float rounding.
 *
 * Invalid arguments (N or M < 1, < 2 for unbiased, D < 1, unknown kernel,
 * n_bw outside [1, HM_MMD_MAX_BW], non-positive bandwidth, degree < 1, Gaussian
 * without sigma) give NaN values and zero gradients; the binding is expected to
 * raise before calling.
 */
#ifndef HM_MMD_H
#define HM_MMD_H

#include <stdint.h>

enum { HM_MMD_MULTISCALE = 0, HM_MMD_RBF = 1, HM_MMD_GAUSSIAN = 2, HM_MMD_POLYNOMIAL = 3 };

/* Largest accepted bandwidth list. */
#define HM_MMD_MAX_BW 64

/* ---- one MMD between x [N, D] and y [M, D] -------------------------------- */

double hm_mmd_forward(const float *x, const float *y, int64_t N, int64_t M, int64_t D,
                      int kernel, const float *bw, int n_bw, int degree, int unbiased);

/* dx [N, D], dy [M, D] = dloss * d MMD / d x, d y (overwritten). Recomputes the
 * pair terms: costs about one forward. */
void hm_mmd_backward(float *dx, float *dy, float dloss, const float *x, const float *y,
                     int64_t N, int64_t M, int64_t D, int kernel, const float *bw, int n_bw,
                     int degree, int unbiased);

/* Fused forward + gradient in one sweep over the pairs, for training: returns
 * MMD and writes gx = d MMD / d x, gy = d MMD / d y (overwritten, unscaled). A
 * backward is then dloss * gx, dloss * gy (hm_mmd_scale_grad), so forward +
 * backward costs one pass instead of two. */
double hm_mmd_forward_grad(float *gx, float *gy, const float *x, const float *y,
                           int64_t N, int64_t M, int64_t D, int kernel, const float *bw,
                           int n_bw, int degree, int unbiased);

/* ---- F independent one-dimensional MMDs, one per column -------------------- */
/* x [N, F], y [M, F]: column f of x against column f of y, out_F[f]. This is the
 * course's per-feature MMD loss (8 features: 2 W x 4). Column f gives exactly
 * (bitwise) what hm_mmd_forward gives for that column copied out with D = 1. */

void hm_mmd_columns_forward(double *out_F, const float *x, const float *y, int64_t N,
                            int64_t M, int64_t F, int kernel, const float *bw, int n_bw,
                            int degree, int unbiased);

/* dx [N, F], dy [M, F] (overwritten): column f scaled by dloss_F[f]. */
void hm_mmd_columns_backward(float *dx, float *dy, const float *dloss_F, const float *x,
                             const float *y, int64_t N, int64_t M, int64_t F, int kernel,
                             const float *bw, int n_bw, int degree, int unbiased);

/* Fused: out_F and the unscaled gradients gx[:, f] = d out_F[f] / d x[:, f]. */
void hm_mmd_columns_forward_grad(double *out_F, float *gx, float *gy, const float *x,
                                 const float *y, int64_t N, int64_t M, int64_t F,
                                 int kernel, const float *bw, int n_bw, int degree,
                                 int unbiased);

/* Backward of the fused variants: dx[i, f] = dloss_F[f] * gx[i, f] (F = 1 for the
 * single MMD with dloss_F = &dloss), same for dy. dx may alias gx, dy gy. */
void hm_mmd_scale_grad(float *dx, float *dy, const float *dloss_F, const float *gx,
                       const float *gy, int64_t N, int64_t M, int64_t F);

/* ---- median heuristic ------------------------------------------------------ */
/* Median of the Euclidean distances |z_a - z_b|, a < b, over a deterministic
 * subsample of the pooled sample z = [x; y]: n_sub points (clamped to N + M)
 * evenly spaced in z. numpy.median convention (mean of the two middle values for
 * an even count). `work` must hold hm_mmd_median_work_size(N, M, n_sub) floats.
 * Returns NaN when fewer than two points are available. */
int64_t hm_mmd_median_work_size(int64_t N, int64_t M, int64_t n_sub);
double hm_mmd_median_distance(float *work, const float *x, const float *y, int64_t N,
                              int64_t M, int64_t D, int64_t n_sub);

#endif
