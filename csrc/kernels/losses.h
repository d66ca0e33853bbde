/*
 * Pointwise regression losses between an input and a target of the same
 * shape: MSE, L1, Huber and smooth L1, with torch's reductions
 * ('none' / 'mean' / 'sum') and gradients for both arguments.
 *
 * Reduced values are accumulated in double over fixed chunks of
 * HM_LOSS_CHUNK elements (eight interleaved accumulators per chunk, combined
 * in a fixed order) and the chunk sums are then added in chunk order, so the
 * value depends on n only, never on the thread count.
 */
#ifndef HM_LOSSES_H
#define HM_LOSSES_H
#include <stdint.h>

enum hm_loss_kind { HM_LOSS_MSE = 0, HM_LOSS_L1 = 1, HM_LOSS_HUBER = 2, HM_LOSS_SMOOTH_L1 = 3 };
enum hm_reduction { HM_REDUCTION_NONE = 0, HM_REDUCTION_MEAN = 1, HM_REDUCTION_SUM = 2 };

#define HM_LOSS_CHUNK 8192

/* Scratch (in doubles) that hm_loss_forward needs for n elements. */
int64_t hm_loss_partials(int64_t n);

/*
 * With d = inp - target and param = delta (Huber) or beta (smooth L1):
 *   MSE        d^2
 *   L1         |d|
 *   Huber      |d| < delta ? d^2 / 2 : delta (|d| - delta / 2)
 *   smooth L1  |d| < beta ? d^2 / (2 beta) : |d| - beta / 2   (beta > 0; use L1 for beta = 0)
 * reduction NONE: out[i] = loss_i (n entries); MEAN / SUM: out[0] = the mean
 * (NaN for n = 0, as torch) or sum, using `partials` (hm_loss_partials(n)
 * doubles) as scratch.
 */
void hm_loss_forward(float *out, double *partials, const float *inp, const float *target, int64_t n, int kind,
                     float param, int reduction);

/*
 * Gradients, overwritten (either may be NULL): dinp[i] = w_i * dloss/dd(d_i),
 * dtarget[i] = -dinp[i], where w_i = dout[i] (NONE), dout[0] / n (MEAN) or
 * dout[0] (SUM). At the kinks torch's conventions hold: the L1 gradient is
 * sign(d) with sign(0) = 0 (and 0 for NaN, as torch's sign), Huber/smooth L1
 * use the quadratic branch at |d| = delta/beta.
 */
void hm_loss_backward(float *dinp, float *dtarget, const float *dout, const float *inp, const float *target,
                      int64_t n, int kind, float param, int reduction);

#endif
