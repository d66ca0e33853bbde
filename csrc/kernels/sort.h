/*
 * Sorting along one axis, and the order statistics built on it (quantile,
 * median), with PyTorch's semantics.
 *
 * Every kernel sees its input as a contiguous [outer, n, inner] array and works
 * on the "rows" x[o, :, i] (rows = outer * inner, ordered (o, i)); sorted
 * outputs have the input's layout, reductions the layout [nq, outer, inner].
 * Reading the rows with stride `inner` in the kernel is the transpose: the
 * binding never permutes.
 *
 * Order: an LSD radix sort of order-preserving integer keys with an int32
 * index payload. It is stable, so equal values keep their input order (as
 * torch's stable=True); descending order inverts the keys, which keeps ties in
 * input order too. As in torch, NaN compares above +inf (last in ascending,
 * first in descending order) and -0.0 equals +0.0.
 *
 * Parallelism: whole rows per thread; every row's result depends only on that
 * row, so results do not depend on the thread count.
 *
 * Scratch: the binding asks hm_sort_slots() how many rows are sorted at once
 * and passes hm_sort_scratch_bytes(n, slots) bytes; nothing is allocated here.
 * Rows are limited to n <= INT32_MAX (the payload is int32).
 */
#ifndef HM_SORT_H
#define HM_SORT_H
#include <stddef.h>
#include <stdint.h>

/* Interpolation modes of hm_quantile_forward (the torch names), plus the
 * median's integer rank (m - 1) / 2, which never goes through float ranks. */
enum { HM_Q_LINEAR = 0, HM_Q_LOWER = 1, HM_Q_HIGHER = 2, HM_Q_MIDPOINT = 3, HM_Q_NEAREST = 4, HM_Q_MEDIAN = 5 };

/* How many rows to sort concurrently (>= 1; 1 for small work). */
int hm_sort_slots(int64_t rows, int64_t n);
/* Scratch bytes for `slots` rows of length n in flight. */
size_t hm_sort_scratch_bytes(int64_t n, int slots);

/* vals/idx (both [outer, n, inner], may be NULL when not wanted) = the rows of
 * x sorted ascending (descending != 0: descending), idx the positions along n. */
void hm_sort_f32_forward(float *vals, int64_t *idx, const float *x, int64_t outer, int64_t n, int64_t inner,
                         int descending, int slots, void *scratch);
void hm_sort_i64_forward(int64_t *vals, int64_t *idx, const int64_t *x, int64_t outer, int64_t n, int64_t inner,
                         int descending, int slots, void *scratch);
/* dx[o, idx[o, j, i], i] = g[o, j, i]: the gradient of the sorted values (and of
 * any gather along n by a permutation). Overwrites dx. */
void hm_sort_backward(float *dx, const float *g, const int64_t *idx, int64_t outer, int64_t n, int64_t inner);

/* Quantiles of every row for nq levels q[k] in [0, 1]:
 *   out[k, o, i] = lerp(s[lo], s[hi], w)   (s: the row sorted ascending)
 * where lo/hi/w follow torch.quantile exactly: rank = q * (m - 1) in float32
 * (m = n, or the number of non-NaN entries when ignore_nan), floored / ceiled
 * / rounded half-to-even per mode; w = rank - lo (linear), 0.5 (midpoint),
 * else 0. Without ignore_nan a row holding NaN gives NaN (rank = n - 1; the
 * median picks the first NaN in input order, as torch); with
 * it, a row of NaNs gives NaN. HM_Q_MEDIAN uses the integer rank (m - 1) / 2
 * (torch.median: the lower of the two middle values).
 * lo/hi ([nq, outer, inner], may be NULL) receive the positions along n of the
 * two order statistics and w ([nq, outer, inner], may be NULL) the weight of hi,
 * for the backward pass. Needs n >= 1. */
void hm_quantile_forward(float *out, int64_t *lo, int64_t *hi, float *w, const float *x, const float *q, int64_t nq,
                         int64_t outer, int64_t n, int64_t inner, int mode, int ignore_nan, int slots, void *scratch);
/* dx = sum over k of g[k, o, i] * ((1 - w) at lo, w at hi), zero elsewhere.
 * Overwrites dx. */
void hm_quantile_backward(float *dx, const float *g, const int64_t *lo, const int64_t *hi, const float *w,
                          int64_t nq, int64_t outer, int64_t n, int64_t inner);

/* The gradient of median() / nanmedian() over the whole tensor (x flat, n
 * entries): g shared evenly among the entries equal to the median `value` (the
 * NaN entries when it is NaN), as torch does. Overwrites dx. */
void hm_median_all_backward(float *dx, const float *x, int64_t n, float value, float g);

#endif
