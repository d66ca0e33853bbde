/*
 * Matrix products: an sgemm wrapper with int64 sizes and thread-count
 * independent threading, torch.matmul's batched and broadcast products, and
 * the fused linear layer (y = x W^T + b).
 *
 * Everything goes through OpenBLAS sgemm (blas.h). What this file adds on top:
 * - sizes are int64_t (cblas takes int) and zero-size products are handled
 *   here (cblas rejects leading dimensions of 0);
 * - the threading is hepml's, over a size-determined partition (see hm_gemm),
 *   so results do not depend on the thread count;
 * - batched products read their operands through batch strides, 0 on
 *   broadcast batch dimensions, so a broadcast operand is never copied;
 * - gradients of a broadcast operand are summed over the batches that share
 *   it in a fixed order (one task per distinct operand matrix), so results do
 *   not depend on the thread count.
 */
#ifndef HM_LINALG_H
#define HM_LINALG_H
#include <stdint.h>

/* At most this many batch dimensions in a matmul (tensors have <= 8 dims). */
#define HM_MATMUL_MAX_BATCH 8

/*
 * Row-major C[m, n] = alpha * op(A) op(B) + beta * C, where op(A) is A or A^T
 * (trans_a != 0): A is [m, k] (lda >= k) or [k, m] (lda >= m); likewise B.
 * k == 0 gives C = beta * C (C = 0 for beta == 0, even if C held NaN).
 * Large products are cut into tiles of C and slices of k that depend on
 * (m, n, k) only, run on OpenMP threads with single-threaded sgemm calls:
 * the result is the same for any thread count. Leading dimensions must fit
 * in an int (rows of up to 2^31 floats).
 */
void hm_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc, float *scratch);
/* Floats of scratch hm_gemm can use for these sizes (0 when it has no use for
 * any): a product with a small C and a long k (a weight gradient: k = the
 * batch) is split along k into fixed slices computed in parallel into
 * scratch, then added in slice order. With scratch == NULL hm_gemm still
 * works, on fewer threads for such shapes. */
int64_t hm_gemm_scratch(int64_t m, int64_t n, int64_t k);

/*
 * Batched matmul with broadcasting: for every batch index i of the output
 * batch shape `bshape` (nbd dims, row-major),
 *     out[i] (m x n) = A[i] (m x k) @ B[i] (k x n)
 * where A[i] starts at a + sum_d i_d * a_bstride[d] (in elements; stride 0 on
 * dimensions that A broadcasts), likewise B. out is contiguous [*bshape, m, n].
 * nbd == 0 is a single product.
 */
void hm_matmul_forward(float *out, const float *a, const float *b, int nbd, const int64_t *bshape,
                       const int64_t *a_bstride, const int64_t *b_bstride, int64_t m, int64_t k, int64_t n,
                       float *scratch);
/* Floats of scratch hm_matmul_forward can use (may be 0; scratch may be NULL:
 * see hm_gemm_scratch). */
int64_t hm_matmul_forward_scratch(int nbd, const int64_t *bshape, const int64_t *a_bstride,
                                  const int64_t *b_bstride, int64_t m, int64_t k, int64_t n);

/*
 * Gradients of hm_matmul_forward. da (may be NULL) is contiguous in A's own
 * layout (the layout a_bstride describes: A's batch dims, then m x k) and is
 * overwritten with sum over the batches i that read A's matrix j of
 * dout[i] @ B[i]^T; db likewise with A[i]^T @ dout[i]. a_bstride/b_bstride
 * must describe contiguous operands (as produced by hm_broadcast_strides
 * times the matrix size).
 */
void hm_matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b, int nbd,
                        const int64_t *bshape, const int64_t *a_bstride, const int64_t *b_bstride, int64_t m,
                        int64_t k, int64_t n, float *scratch);
/* Floats of scratch hm_matmul_backward can use (may be 0; scratch may be NULL). */
int64_t hm_matmul_backward_scratch(int nbd, const int64_t *bshape, const int64_t *a_bstride,
                                   const int64_t *b_bstride, int64_t m, int64_t k, int64_t n);

/*
 * Linear layer, torch.nn.functional.linear: inp [rows, in_f], weight
 * [out_f, in_f], bias [out_f] or NULL, out [rows, out_f] = inp @ weight^T + bias.
 */
void hm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t rows,
                       int64_t in_f, int64_t out_f);

/*
 * Its gradients; each output may be NULL (not needed) and is overwritten:
 *   dinp = dout @ weight, dweight = dout^T @ inp (a GEMM whose inner
 *   dimension is `rows`), dbias = column sums of dout (in double, row order).
 */
void hm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int64_t rows, int64_t in_f, int64_t out_f, float *scratch);
/* Floats of scratch hm_linear_backward can use (may be 0; scratch may be NULL). */
int64_t hm_linear_backward_scratch(int64_t rows, int64_t in_f, int64_t out_f);

/*
 * out[j] = sum over r of x[r * cols + j], accumulated in double in row order
 * (the columns are shared among threads, each sum stays sequential, so the
 * value does not depend on the thread count). Used for bias gradients.
 */
void hm_sum_rows(float *out, const float *x, int64_t rows, int64_t cols);

#endif
