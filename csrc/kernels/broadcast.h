/*
 * Broadcasting helpers shared by the autograd engine and elementwise ops.
 *
 * Shapes are given as (ndim, dims[]) with at most 8 dims. "Broadcast strides"
 * are element strides into an operand, with 0 on dimensions where the operand
 * has size 1 (or is missing), indexed in the output's dimension order.
 */
#ifndef HM_BROADCAST_H
#define HM_BROADCAST_H
#include <stdint.h>

/* Element strides of operand `shape` (ndim_in dims, right-aligned) as seen from
 * an output of ndim_out dims: 0 where broadcast. */
void hm_broadcast_strides(int64_t *strides, int ndim_out, const int64_t *out_shape, int ndim_in, const int64_t *in_shape);

/* out (shape `shape`) = sum of g (shape g_shape, ndim_g >= ndim) over the
 * dimensions that `shape` broadcasts; out is overwritten. When the reduced
 * dimensions are all leading (bias gradients), each output element is summed in
 * double, in parallel over outputs; otherwise serially in float. Either way the
 * order of the terms is fixed, so the result does not depend on the thread count. */
void hm_sum_to_shape(float *out, const float *g, int ndim_g, const int64_t *g_shape, int ndim, const int64_t *shape);

/* a[i] += b[i] */
void hm_add_inplace(float *a, const float *b, int64_t n);

#endif
