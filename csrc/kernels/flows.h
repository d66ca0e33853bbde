/*
 * Normalizing-flow kernels: the element-wise monotonic transforms of zuko
 * (MonotonicAffineTransform, MonotonicRQSTransform, CircularShiftTransform), the
 * masked linear layer and mask construction of zuko's MaskedMLP (MADE), and the
 * whole autoregressive inversion (sampling) of a MaskedAutoregressiveTransform.
 *
 * Conventions (zuko 1.x, checked against zuko/transforms.py, zuko/nn.py and
 * zuko/flows/autoregressive.py):
 *
 *  - `slope` is zuko's "minimum slope" (default 1e-3; zuko < 1.0 used 1e-4). With
 *    L = log(slope) < 0, the raw network outputs are soft-clipped as
 *        affine log-scale   a  = raw / (1 + |raw / L|)        in (-|L|, |L|)
 *        spline widths      w' = raw / (1 + |2 raw / L|)      in (-|L|/2, |L|/2)
 *        spline heights     h' = raw / (1 + |2 raw / L|)
 *        spline derivatives d' = raw / (1 + |raw / L|),  derivative = exp(d')
 *    so no bin is narrower than ~slope/K of the range and no slope leaves
 *    [slope, 1/slope].
 *  - Spline on [-B, B] with K bins: knot_j = B (2 cumsum(softmax(w'))_j - 1),
 *    j = 0..K (knot_0 = -B), the same for the heights; boundary derivatives are 1
 *    (zuko pads the K-1 raw derivatives with zeros), so outside [-B, B] the
 *    transform is the identity with log-det 0 and the join is C1. A value v is in
 *    bin k = #{j : knot_j < v} - 1 (zuko's searchsorted); k outside [0, K) means
 *    identity. Raw parameters per value are contiguous, zuko's order:
 *    widths[K], heights[K], derivatives[K-1] (3K-1 floats), which is exactly the
 *    layout of a MADE output [batch, features, 3K-1].
 *  - Circular splines (zuko's NCSF): CircularShift(B) followed by the spline on
 *    [-B, B] (B = pi in NCSF). The shift is f(x) = remainder(x, 2B) - B (torch's
 *    remainder: fmod, then + 2B when the sign differs), its own inverse on
 *    [-B, B), log-det 0 and derivative 1. Equal derivatives at both ends of the
 *    circle come for free: both boundary derivatives are 1.
 *  - "ladj" is the log absolute determinant of the Jacobian of the direction that
 *    was computed: forward kernels give log f'(x), inverse kernels give
 *    log (f^{-1})'(y) = -log f'(x).
 *
 * Backward kernels overwrite their outputs (no accumulation). Upstream gradients
 * that are NULL count as zero; output gradients that are NULL are not computed.
 * Nothing is saved between forward and backward: backward recomputes the softmax,
 * knots and bin from the inputs (the 3K-1 parameters must be read anyway, and the
 * bin search is a few compares, so a saved bin index would save nothing worth a
 * buffer). Everything is deterministic and independent of the thread count.
 *
 * Speed: on x86-64 with AVX2 + FMA (checked at run time) the spline kernels work
 * on 8 values at a time (one per lane; ~35 ns per value forward or inverse, ~60 ns
 * backward, against ~200-250 ns scalar) with polynomial exp/log within a few ulp
 * of libm; elsewhere, and for bins > 64, a scalar path with libm. The two agree
 * to a few ulp of the knots (~1e-6 typically; more where f' or 1/f' amplifies it).
 * Compiling with -DHM_FLOWS_PORTABLE forces the portable code (to test it).
 */
#ifndef HM_FLOWS_H
#define HM_FLOWS_H

#include <stdint.h>

/* Largest number of spline bins the kernels accept (per-value work arrays live
 * on the stack). Functions with a `bins` argument return -1 for bins outside
 * [1, HM_RQS_MAX_BINS] and do nothing. */
#define HM_RQS_MAX_BINS 256

/* Activation ids (applied after every MADE layer but the last). zuko's MaskedMLP
 * default is ReLU; ELU has alpha = 1 as torch.nn.ELU(). */
enum { HM_ACT_IDENTITY = 0, HM_ACT_RELU = 1, HM_ACT_ELU = 2, HM_ACT_SILU = 3, HM_ACT_TANH = 4 };

/* Univariate transforms of an autoregressive transform. Parameters per feature:
 * AFFINE: (shift, raw log-scale), 2 floats; RQS and CIRCULAR_RQS: 3*bins - 1. */
enum { HM_UNIVARIATE_AFFINE = 0, HM_UNIVARIATE_RQS = 1, HM_UNIVARIATE_CIRCULAR_RQS = 2 };

/* ---- Monotonic affine: y = x exp(a) + shift, a = softclip(raw) --------------
 * shift and scale (raw log-scale) of value i are read at index i * pstride:
 * pstride = 1 for separate arrays, 2 for zuko's packed [..., 2] network output
 * (shift = phi, scale = phi + 1). The parameter gradients are written with the
 * same stride. ladj may be NULL. */
void hm_monotonic_affine_forward(float *y, float *ladj, const float *x, const float *shift,
                                 const float *scale, int64_t n, int64_t pstride, float slope);
/* x = (y - shift) / exp(a), ladj = -a. */
void hm_monotonic_affine_inverse(float *x, float *ladj, const float *y, const float *shift,
                                 const float *scale, int64_t n, int64_t pstride, float slope);
/* Gradients of (y, ladj) = forward(x, shift, scale) given dy and dladj. */
void hm_monotonic_affine_backward(float *dx, float *dshift, float *dscale, const float *dy,
                                  const float *dladj, const float *x, const float *shift,
                                  const float *scale, int64_t n, int64_t pstride, float slope);
/* Gradients of (x, ladj) = inverse(y, shift, scale) given dx and dladj (rsample). */
void hm_monotonic_affine_inverse_backward(float *dy, float *dshift, float *dscale,
                                          const float *dx, const float *dladj, const float *y,
                                          const float *shift, const float *scale, int64_t n,
                                          int64_t pstride, float slope);

/* ---- Monotonic rational-quadratic spline (Durkan et al. 2019, zuko's form) ----
 * params: [n, 3*bins - 1] raw (widths, heights, derivatives) per value.
 * circular != 0: zuko's CircularRQSTransform (shift first, then spline).
 * All return 0, or -1 for invalid bins / bound <= 0. */
int hm_rqs_forward(float *y, float *ladj, const float *x, const float *params, int64_t n,
                   int64_t bins, float bound, float slope, int circular);
/* Inverse by the numerically stable root z = 2c / (-b - sqrt(b^2 - 4ac)). */
int hm_rqs_inverse(float *x, float *ladj, const float *y, const float *params, int64_t n,
                   int64_t bins, float bound, float slope, int circular);
/* Gradients of (y, ladj) = forward(x, params): dx [n], dparams [n, 3*bins - 1]. */
int hm_rqs_backward(float *dx, float *dparams, const float *dy, const float *dladj,
                    const float *x, const float *params, int64_t n, int64_t bins, float bound,
                    float slope, int circular);
/* Gradients of (x, ladj) = inverse(y, params) given dx and dladj: dy, dparams.
 * Implicit differentiation of y = f(x; theta): dy = g/f'(x) and
 * dtheta = -(g/f'(x)) df/dtheta - dladj dlogf'/dtheta, where g = dx - dladj * dlogf'/dx. */
int hm_rqs_inverse_backward(float *dy, float *dparams, const float *dx, const float *dladj,
                            const float *y, const float *params, int64_t n, int64_t bins,
                            float bound, float slope, int circular);

/* ---- Circular shift: y = remainder(x, 2B) - B (zuko's CircularShiftTransform) ----
 * Its own inverse on [-B, B); log-det 0; derivative 1 (backward copies dy). */
void hm_circular_shift_forward(float *y, const float *x, int64_t n, float bound);
void hm_circular_shift_inverse(float *x, const float *y, int64_t n, float bound);
void hm_circular_shift_backward(float *dx, const float *dy, int64_t n);

/* ---- Masked linear (MADE layer): out = inp (W * mask)^T + bias ----------------
 * inp [rows, in], weight [out, in], mask [out, in] (1 = keep), bias [out] or NULL,
 * out [rows, out]. wmasked [out, in] is caller scratch: forward writes W * mask
 * there and runs one sgemm on it; backward recomputes it (no saved state). */
void hm_masked_linear_forward(float *out, float *wmasked, const float *inp, const float *weight,
                              const uint8_t *mask, const float *bias, int64_t rows,
                              int64_t in_features, int64_t out_features);
/* dinp [rows, in] = dout (W * mask); dweight [out, in] = (dout^T inp) * mask;
 * dbias [out] = column sums of dout (double accumulation). Any output may be NULL.
 * All overwrite. */
void hm_masked_linear_backward(float *dinp, float *dweight, float *dbias, float *wmasked,
                               const float *dout, const float *inp, const float *weight,
                               const uint8_t *mask, int64_t rows, int64_t in_features,
                               int64_t out_features);

/* ---- MADE masks exactly as zuko's MaskedMLP(adjacency, hidden_features) ------
 * adjacency [out, in] (nonzero = output i may depend on input j). Rows with equal
 * dependencies are merged (sorted lexicographically, like torch.unique(dim=0));
 * hidden unit h of a layer copies the dependency set of the h % R-th reachable
 * merged row (R = number of reachable ones); a unit connects to a unit of the
 * previous layer when the previous unit's set is a subset of its own; the last
 * layer gives every output its merged row's connections.
 * masks receives the n_hidden + 1 masks back to back: [hidden[0], in],
 * [hidden[1], hidden[0]], ..., [out, hidden[n_hidden - 1]] (uint8 0/1).
 * Returns 0; -1 if some layer would have no connection at all (zuko's "The
 * adjacency matrix leads to a null Jacobian."); -2 on allocation failure (this is
 * a setup routine: it allocates its own O(out^2 + out * in) work space). */
int64_t hm_made_masks_size(int64_t out_features, int64_t in_features, const int64_t *hidden,
                           int64_t n_hidden);
int hm_made_masks(uint8_t *masks, const uint8_t *adjacency, int64_t out_features,
                  int64_t in_features, const int64_t *hidden, int64_t n_hidden);

/* The adjacency of zuko's MaskedAutoregressiveTransform with an order (not a
 * general DAG): adj [features * total, features + context]; row i * total + t
 * (parameter t of feature i) allows input x_j iff order[i] > order[j] and every
 * context column. `order` is zuko's self.order, i.e. the given ordering already
 * divided by ceil(features / passes) (= the pass in which feature i is inverted). */
void hm_maf_adjacency(uint8_t *adj, const int64_t *order, int64_t features, int64_t context,
                      int64_t total);

/* ---- A MADE network and autoregressive sampling -------------------------------- */
typedef struct {
    int64_t in_features, out_features;
    const float *weight; /* [out, in], already multiplied by the mask */
    const float *bias;   /* [out] or NULL */
    int activation;      /* HM_ACT_*, applied after this layer unless it is the last */
} hm_made_layer;

/* out [batch, layers[n-1].out] = MADE(x), x [batch, layers[0].in] (for an
 * autoregressive transform: x then context, as zuko concatenates them).
 * One sgemm per layer; scratch: hm_made_forward_scratch_floats() floats. */
int64_t hm_made_forward_scratch_floats(const hm_made_layer *layers, int n_layers, int64_t batch);
void hm_made_forward(float *out, float *scratch, const hm_made_layer *layers, int n_layers,
                     const float *x, int64_t batch);

/*
 * Inverse of one MaskedAutoregressiveTransform: x = f^{-1}(z | context), all passes
 * in C. The network's input is [x (features), context (context_features)] as in
 * zuko (the context columns are always allowed), its output [features, total]
 * per row (total = 2 for AFFINE, 3*bins - 1 for the splines).
 *
 * order[i] in [0, passes) is the pass in which feature i is inverted (zuko's
 * self.order). Pass p runs the network on the current x and inverts the features
 * with order p; x starts at zero. zuko re-inverts every feature in every pass;
 * the values it keeps are the ones computed here, because the masks make a
 * feature's parameters independent of the features not yet final.
 *
 * Work saved relative to zuko, exactly (up to float summation order):
 *  - the context part of the first layer (and its bias) is computed once per row,
 *    not once per pass;
 *  - each pass evaluates only the hidden units that reach the outputs it needs:
 *    from the nonzero pattern of the (masked) weights, each unit gets the first
 *    pass that needs it, units are reordered by that pass, and pass p evaluates
 *    a prefix of each layer (about (p+1)/passes of it for a MADE);
 *  - a unit only has nonzero weights from units needed no later than itself, so
 *    each 8-column block of a layer reads only the prefix of inputs it can
 *    depend on (the MADE's triangular structure is skipped);
 *  - the last layer computes only the parameters of the features being inverted.
 * Rows are processed in blocks of 48 (all passes per block, so activations stay
 * in L1/L2), blocks round-robin over the threads; the matrix products use AVX2+FMA
 * micro-kernels (6x16 and 12x8 register tiles) when the CPU has them (run-time
 * check) and portable C otherwise. The packed weights are rebuilt on each call
 * (O(network size)). A scratch buffer must not be shared by concurrent calls.
 *
 * ladj [batch] (may be NULL) receives sum_i log |dx_i/dz_i|, the log-det of the
 * inverse, so that for samples log_prob(x) = base_log_prob(z) - ladj (the forward
 * log-det is -ladj).
 * scratch: hm_maf_inverse_scratch_floats() floats (independent of thread count).
 * Returns 0, or -1 for inconsistent sizes / order / bins.
 */
int64_t hm_maf_inverse_scratch_floats(const hm_made_layer *layers, int n_layers, int64_t batch,
                                      int64_t features, int64_t context_features, int kind,
                                      int64_t bins);
int hm_maf_inverse(float *x, float *ladj, float *scratch, const hm_made_layer *layers,
                   int n_layers, const float *z, const float *context, int64_t batch,
                   int64_t features, int64_t context_features, const int64_t *order,
                   int64_t passes, int kind, int64_t bins, float bound, float slope);

#endif
