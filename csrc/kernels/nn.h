/*
 * Neural-network kernels: layer normalisation, activation functions and the
 * dropout product. Forward/backward pairs over contiguous float32 arrays.
 *
 * Conventions: backward kernels overwrite their outputs (never accumulate);
 * an output pointer may be NULL when that gradient is not needed. Activations
 * follow torch's definitions, including at NaN (a NaN input gives a NaN
 * output) and at the branch points (relu'(0) = 0, elu'(0) uses the x <= 0
 * branch, softplus switches to the identity above `threshold`).
 *
 * The exponentials here use hm_expf_vec, a polynomial exp written so that gcc
 * vectorises the loops that call it (libm's expf is a scalar call): it is
 * within 2 ulp of expf over the whole float range and propagates NaN/inf.
 */
#ifndef HM_NN_H
#define HM_NN_H
#include <stdint.h>

/* ---------------------------------------------------------------- layernorm */

/*
 * Row-wise layer normalisation of inp [rows, cols]:
 *   out = (inp - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)
 * with the biased variance (divide by cols), as torch.nn.functional.layer_norm.
 * w and b ([cols]) may be NULL (no affine transform / no bias). mean and rstd
 * ([rows]) are written for the backward pass.
 */
void hm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                          int64_t rows, int64_t cols, float eps);

/*
 * Gradients: dinp [rows, cols], dw and db [cols] (each may be NULL; w may be
 * NULL meaning w = 1). dw and db are overwritten with sums over rows that are
 * accumulated in double over a fixed partition of the rows, so they do not
 * depend on the thread count.
 */
void hm_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int64_t rows, int64_t cols);

/* -------------------------------------------------------------- activations */

/* relu(x) = max(x, 0) (NaN stays NaN). Backward reads the forward's output, as
 * torch does: dx = (y <= 0) ? 0 : dout, so a NaN output passes dout through. */
void hm_relu_forward(float *out, const float *x, int64_t n);
void hm_relu_backward(float *dx, const float *dout, const float *y, int64_t n);

/* leaky_relu(x) = x > 0 ? x : slope * x */
void hm_leaky_relu_forward(float *out, const float *x, int64_t n, float slope);
void hm_leaky_relu_backward(float *dx, const float *dout, const float *x, int64_t n, float slope);

/* elu(x) = scale * (x > 0 ? x : alpha * expm1(x)); selu is elu with torch's
 * constants (HM_SELU_ALPHA, HM_SELU_SCALE), plain elu has scale 1. */
void hm_elu_forward(float *out, const float *x, int64_t n, float alpha, float scale);
void hm_elu_backward(float *dx, const float *dout, const float *x, int64_t n, float alpha, float scale);
#define HM_SELU_ALPHA 1.6732632423543772848170429916717f
#define HM_SELU_SCALE 1.0507009873554804934193349852946f

/* gelu: approximate == 0: x * Phi(x) (Phi evaluated so that the left tail
 * keeps its relative precision, see nn.c); approximate == 1: torch's tanh form
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated as
 * x * sigmoid(2 u), which is the same function without the cancellation. */
void hm_gelu_forward(float *out, const float *x, int64_t n, int approximate);
void hm_gelu_backward(float *dx, const float *dout, const float *x, int64_t n, int approximate);

/* softplus(x) = x if beta x > threshold else log1p(exp(beta x)) / beta */
void hm_softplus_forward(float *out, const float *x, int64_t n, float beta, float threshold);
void hm_softplus_backward(float *dx, const float *dout, const float *x, int64_t n, float beta, float threshold);

/* silu(x) = x * sigmoid(x) */
void hm_silu_forward(float *out, const float *x, int64_t n);
void hm_silu_backward(float *dx, const float *dout, const float *x, int64_t n);

/* ------------------------------------------------------------------ dropout */

/* out = x * mask, where mask holds 0 or 1 / (1 - p) (hm_rand_dropout_mask of
 * rng.h). The backward pass is the same product with dout in place of x. */
void hm_dropout_apply(float *out, const float *x, const float *mask, int64_t n);

/* ------------------------------------------------------------------ helpers */

/* exp(x) for every x[i], vectorised (see above); exposed for tests. */
void hm_expf_array(float *out, const float *x, int64_t n);

#endif
