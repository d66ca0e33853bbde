/*
 * Reductions, scans and softmax along one axis.
 *
 * Every kernel sees its input as a contiguous [outer, r, inner] array and
 * reduces (or scans) the middle axis r; the output of a reduction is
 * [outer, inner]. The binding merges the reduced dims into r (permuting the
 * input first when they are not adjacent), so one kernel serves every dim
 * argument.
 *
 * Determinism: sums are accumulated in double in a fixed order that depends
 * only on the sizes (fixed chunks for long rows, column blocks otherwise);
 * threads only ever split independent outputs or whole chunks whose partial
 * sums are then added serially, so results do not depend on the thread count.
 *
 * Backward kernels overwrite dx (they never accumulate).
 */
#ifndef HM_REDUCE_H
#define HM_REDUCE_H
#include <stdint.h>

/* out[o, i] = sum_k x[o, k, i] / div  (div = 1 for sum, r for mean: 0/0 = nan
 * for the mean of nothing, as torch). */
void hm_sum_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, double div);
/* dx[o, k, i] = g[o, i] * scale */
void hm_sum_backward(float *dx, const float *g, int64_t outer, int64_t r, int64_t inner, float scale);
/* Integer sums (counting True entries of masks): int64 results. */
void hm_sum_i64_forward(int64_t *out, const int64_t *x, int64_t outer, int64_t r, int64_t inner);
void hm_sum_u8_forward(int64_t *out, const uint8_t *x, int64_t outer, int64_t r, int64_t inner);

/* Sum / mean of the non-NaN entries (mean: divided by their count). The
 * gradient is 0 at NaN entries. */
void hm_nansum_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, int mean);
void hm_nansum_backward(float *dx, const float *g, const float *x, int64_t outer, int64_t r, int64_t inner, int mean);

/* Product (accumulated in double). The gradient is the product of the other
 * entries, exact with zeros present (no division by zero). */
void hm_prod_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner);
void hm_prod_backward(float *dx, const float *g, const float *x, int64_t outer, int64_t r, int64_t inner);

/* Max (is_min = 0) or min along r, r >= 1. NaN wins (propagates as torch);
 * ties and repeated NaNs give the first position. idx may be NULL, val may be
 * NULL (argmax). */
void hm_maxmin_forward(float *val, int64_t *idx, const float *x, int64_t outer, int64_t r, int64_t inner, int is_min);
/* dx = 0 except dx[o, idx[o, i], i] = g[o, i] (max/min with a dim). */
void hm_select_backward(float *dx, const float *g, const int64_t *idx, int64_t outer, int64_t r, int64_t inner);
/* amax/amin: g[o, i] split evenly among the positions equal to val[o, i]
 * (NaN counts as equal to NaN). */
void hm_amax_backward(float *dx, const float *g, const float *x, const float *val, int64_t outer, int64_t r,
                      int64_t inner);

/* Variance with `correction` (1 = Bessel) in two passes in double; std when
 * take_sqrt. mean[o, i] receives the mean (for the backward). */
void hm_var_forward(float *out, float *mean, const float *x, int64_t outer, int64_t r, int64_t inner,
                    double correction, int take_sqrt);
/* var: dx = g * 2 (x - mean) / (r - correction); std: dx = g (x - mean) / ((r - correction) std),
 * 0 where std == 0. */
void hm_var_backward(float *dx, const float *g, const float *x, const float *mean, const float *out, int64_t outer,
                     int64_t r, int64_t inner, double correction, int is_std);

/* log sum exp, shifted by the max for stability; rows whose max is +-inf
 * give that max (all -inf -> -inf). dx = g exp(x - out). */
void hm_logsumexp_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner);
void hm_logsumexp_backward(float *dx, const float *g, const float *x, const float *out, int64_t outer, int64_t r,
                           int64_t inner);

/* softmax (log = 0) or log_softmax (log = 1) along r, max-shifted.
 * Backward from the output y: softmax dx = y (g - sum g y);
 * log_softmax dx = g - exp(y) sum g. */
void hm_softmax_forward(float *y, const float *x, int64_t outer, int64_t r, int64_t inner, int log);
void hm_softmax_backward(float *dx, const float *g, const float *y, int64_t outer, int64_t r, int64_t inner, int log);

/* Inclusive running sum along r in double; reverse = 1 runs from the end
 * (the gradient of cumsum is the reverse cumsum of g). */
void hm_cumsum(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, int reverse);

/* p-norm (p > 0, finite) along r: (sum |x|^p)^(1/p), in double.
 * dx = g sign(x) |x|^(p-1) / out^(p-1), 0 where out == 0. */
void hm_norm_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, double p);
void hm_norm_backward(float *dx, const float *g, const float *x, const float *out, int64_t outer, int64_t r,
                      int64_t inner, double p);

#endif
