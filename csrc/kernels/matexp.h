/*
 * Matrix exponential of a batch of square matrices, and its gradient.
 *
 * exp(A) by scaling and squaring: B = A / 2^s with ||B||_1 <= 1/2, a Taylor
 * polynomial of degree 10 for exp(B), then s squarings. Everything inside is
 * computed in double and rounded to float32 once at the end.
 *
 * The gradient of a loss through R = exp(A) is dA = L(A^T, dR), the Fréchet
 * derivative of exp at A^T in the direction dR. It is the upper-right block of
 * exp([[A^T, dR], [0, A^T]]); the backward kernel runs the same scaling and
 * squaring on that block matrix, keeping only its two distinct n x n blocks.
 */
#ifndef HM_MATEXP_H
#define HM_MATEXP_H

#include <stdint.h>

/* Doubles of scratch one thread needs for matrices of size n x n. */
int64_t hm_matrix_exp_scratch_doubles(int64_t n, int backward);

/* Threads the kernels may use (the scratch holds one slice per thread). */
int hm_matrix_exp_max_threads(void);

/* out[b] = exp(a[b]) for b < batch; a, out: [batch, n, n] row-major.
 * scratch: nthreads * hm_matrix_exp_scratch_doubles(n, 0) doubles. */
void hm_matrix_exp_forward(float *out, const float *a, double *scratch, int64_t batch, int64_t n, int nthreads);

/* da[b] = L(a[b]^T, dout[b]) (overwritten, not accumulated).
 * scratch: nthreads * hm_matrix_exp_scratch_doubles(n, 1) doubles. */
void hm_matrix_exp_backward(float *da, const float *dout, const float *a, double *scratch, int64_t batch,
                            int64_t n, int nthreads);

#endif
