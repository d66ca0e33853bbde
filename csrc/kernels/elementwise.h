/*
 * Elementwise kernels. Binary ops broadcast: each operand is read through
 * broadcast strides (0 on broadcast dimensions, see broadcast.h) over the
 * output's shape, so no operand is ever materialised at the output's size.
 */
#ifndef HM_ELEMENTWISE_H
#define HM_ELEMENTWISE_H
#include <stdint.h>

enum hm_binary_op { HM_ADD = 0, HM_SUB = 1, HM_MUL = 2, HM_DIV = 3 };

/* out[idx] = a[idx . sa] (op) b[idx . sb] over the output shape. */
void hm_binary_forward(float *out, const float *a, const float *b, int ndim, const int64_t *shape,
                       const int64_t *sa, const int64_t *sb, int op);

/* Gradients in the output's shape (the engine sums them down to each operand's
 * shape): da = dout * d(out)/da, db likewise. Either may be NULL. */
void hm_binary_backward(float *da, float *db, const float *dout, const float *a, const float *b, int ndim,
                        const int64_t *shape, const int64_t *sa, const int64_t *sb, int op);
#endif
