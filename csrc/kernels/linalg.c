/* Matrix products on top of OpenBLAS sgemm. See linalg.h. */
#include "linalg.h"
#include "blas.h"
#include <string.h>

/*
 * Threading policy. OpenBLAS runs an sgemm on one thread when m*n*k <=
 * 65536 * 4 (its SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD) and splits
 * larger ones among its own threads. Its results then depend on the thread
 * count (rows at the edge of a thread's range go through different micro
 * kernels), and a threaded call from inside one of our OpenMP regions would
 * oversubscribe the cores. So hepml never lets OpenBLAS thread: every sgemm
 * call is at most HM_GEMM_CALL multiply-adds, and the parallelism is ours,
 * over a partition of the work that depends on the sizes only.
 */
#define HM_GEMM_CALL ((int64_t)262144)
/* Fork only when there is enough arithmetic to pay for it (~3 us). */
#define HM_PAR_FLOPS ((int64_t)65536)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* One cblas call; the caller keeps it within int sizes. */
static inline void sgemm_call(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                              int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    hm_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                   (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* The tiles of C (see hm_gemm) for a product of these sizes. */
static void tile_sizes(int64_t m, int64_t n, int64_t k, int64_t *tm, int64_t *tn) {
    *tn = min64(n, 128);
    int64_t t = HM_GEMM_CALL / (*tn * min64(k, 64));
    *tm = min64(m, max64(16, t - t % 16));
}

/* How many k-slices of HM_GEMM_KCHUNK a product is split into (0: none).
 * Only when C has too few tiles to share out (the weight gradient of a
 * linear layer: small m and n, k = the batch) and k is long. */
#define HM_GEMM_KCHUNK ((int64_t)512)
static int64_t k_chunks(int64_t m, int64_t n, int64_t k) {
    if (m * n * k <= HM_GEMM_CALL || k < 2 * HM_GEMM_KCHUNK) return 0;
    int64_t tm, tn;
    tile_sizes(m, n, k, &tm, &tn);
    if (((m + tm - 1) / tm) * ((n + tn - 1) / tn) >= 4) return 0;
    return (k + HM_GEMM_KCHUNK - 1) / HM_GEMM_KCHUNK;
}

int64_t hm_gemm_scratch(int64_t m, int64_t n, int64_t k) { return k_chunks(m, n, k) * m * n; }

/* C[tm, tn] tile by tile, k in slices accumulated in order, on this thread. */
static void gemm_tile(int trans_a, int trans_b, int64_t i0, int64_t mi, int64_t j0, int64_t nj, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    int64_t tk = min64(k, max64(16, HM_GEMM_CALL / (mi * nj)));
    for (int64_t p0 = 0; p0 < k; p0 += tk) {
        int64_t kp = min64(tk, k - p0);
        const float *ap = trans_a ? a + p0 * lda + i0 : a + i0 * lda + p0;
        const float *bp = trans_b ? b + j0 * ldb + p0 : b + p0 * ldb + j0;
        sgemm_call(trans_a, trans_b, mi, nj, kp, alpha, ap, lda, bp, ldb, p0 == 0 ? beta : 1.0f, c + i0 * ldc + j0,
                   ldc);
    }
}

void hm_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
             const float *b, int64_t ldb, float beta, float *c, int64_t ldc, float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        /* An empty sum: cblas would reject lda = 0, and beta = 0 must clear C. */
        for (int64_t i = 0; i < m; i++) {
            float *row = c + i * ldc;
            if (beta == 0.0f) memset(row, 0, (size_t)n * sizeof(float));
            else if (beta != 1.0f)
                for (int64_t j = 0; j < n; j++) row[j] *= beta;
        }
        return;
    }
    if (m * n * k <= HM_GEMM_CALL) {
        sgemm_call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int64_t nch = scratch ? k_chunks(m, n, k) : 0;
    if (nch > 0) {
        /* Long k, small C: each k-slice's product goes to its own m x n
         * buffer (in parallel), and the buffers are added in slice order. */
        #pragma omp parallel for schedule(static)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t p0 = ch * HM_GEMM_KCHUNK, kp = min64(HM_GEMM_KCHUNK, k - p0);
            const float *ap = trans_a ? a + p0 * lda : a + p0;
            const float *bp = trans_b ? b + p0 : b + p0 * ldb;
            int64_t tm, tn;
            tile_sizes(m, n, kp, &tm, &tn);
            for (int64_t i0 = 0; i0 < m; i0 += tm)
                for (int64_t j0 = 0; j0 < n; j0 += tn)
                    gemm_tile(trans_a, trans_b, i0, min64(tm, m - i0), j0, min64(tn, n - j0), kp, 1.0f, ap, lda, bp,
                              ldb, 0.0f, scratch + ch * m * n, n);
        }
        #pragma omp parallel for schedule(static) if (m * n * nch > 65536)
        for (int64_t i = 0; i < m; i++) {
            float *crow = c + i * ldc;
            for (int64_t j = 0; j < n; j++) {
                float s = 0.0f;
                for (int64_t ch = 0; ch < nch; ch++) s += scratch[(ch * m + i) * n + j];
                crow[j] = beta == 0.0f ? alpha * s : alpha * s + beta * crow[j];
            }
        }
        return;
    }
    /*
     * Tiles of C: full width up to 128 columns, as many rows as fit in one
     * call with a 64-deep slice of k (a multiple of 16, OpenBLAS's row
     * blocking). A C that is a single tile is cut in 2 x 2 so both cores get
     * work. Each tile walks k in slices, accumulating in order (beta = 1
     * after the first): the sum order is fixed by the sizes alone.
     */
    int64_t tm, tn;
    tile_sizes(m, n, k, &tm, &tn);
    if (tm >= m && tn >= n && m >= 32 && n >= 32) {
        tm = (m + 1) / 2;
        tn = (n + 1) / 2;
    }
    int64_t mt = (m + tm - 1) / tm, nt = (n + tn - 1) / tn;
    #pragma omp parallel for schedule(static) if (mt * nt > 1)
    for (int64_t t = 0; t < mt * nt; t++) {
        int64_t i0 = (t / nt) * tm, j0 = (t % nt) * tn;
        gemm_tile(trans_a, trans_b, i0, min64(tm, m - i0), j0, min64(tn, n - j0), k, alpha, a, lda, b, ldb, beta, c,
                  ldc);
    }
}

/* ------------------------------------------------------------------ matmul */

static int64_t prod(int nbd, const int64_t *shape) {
    int64_t p = 1;
    for (int d = 0; d < nbd; d++) p *= shape[d];
    return p;
}

/* Offset of batch i (row-major over shape) through strides. */
static int64_t batch_offset(int64_t i, int nbd, const int64_t *shape, const int64_t *stride) {
    int64_t off = 0;
    for (int d = nbd - 1; d >= 0; d--) {
        off += (i % shape[d]) * stride[d];
        i /= shape[d];
    }
    return off;
}

/* Is the operand laid out as [*shape, matrix] without broadcasting? */
static int is_full(int nbd, const int64_t *shape, const int64_t *stride, int64_t matsize) {
    int64_t s = matsize;
    for (int d = nbd - 1; d >= 0; d--) {
        if (shape[d] != 1 && stride[d] != s) return 0;
        s *= shape[d];
    }
    return 1;
}

/* Is the operand one matrix shared by every batch? */
static int is_shared(int nbd, const int64_t *shape, const int64_t *stride) {
    for (int d = 0; d < nbd; d++)
        if (shape[d] != 1 && stride[d] != 0) return 0;
    return 1;
}

int64_t hm_matmul_forward_scratch(int nbd, const int64_t *bshape, const int64_t *a_bstride,
                                  const int64_t *b_bstride, int64_t m, int64_t k, int64_t n) {
    int64_t nb = prod(nbd, bshape);
    if (is_full(nbd, bshape, a_bstride, m * k) && is_shared(nbd, bshape, b_bstride))
        return hm_gemm_scratch(nb * m, n, k);
    return nb == 1 ? hm_gemm_scratch(m, n, k) : 0;
}

void hm_matmul_forward(float *out, const float *a, const float *b, int nbd, const int64_t *bshape,
                       const int64_t *a_bstride, const int64_t *b_bstride, int64_t m, int64_t k, int64_t n,
                       float *scratch) {
    int64_t nb = prod(nbd, bshape);
    if (nb == 0 || m == 0 || n == 0) return;
    if (is_full(nbd, bshape, a_bstride, m * k) && is_shared(nbd, bshape, b_bstride)) {
        /* [*, m, k] @ [k, n]: the batch folds into the rows of one large GEMM,
         * which is what the course's feed-forward layers and projections do. */
        hm_gemm(0, 0, nb * m, n, k, 1.0f, a, k, b, n, 0.0f, out, n, scratch);
        return;
    }
    if (nb == 1) {
        hm_gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, out, n, scratch);
        return;
    }
    /* Products small enough for one call run in parallel across the batch;
     * larger ones one after the other, each parallel inside hm_gemm. */
    int small = m * n * k <= HM_GEMM_CALL;
    #pragma omp parallel for schedule(static) if (small && nb > 1 && nb * m * n * k > HM_PAR_FLOPS)
    for (int64_t i = 0; i < nb; i++) {
        const float *ai = a + batch_offset(i, nbd, bshape, a_bstride);
        const float *bi = b + batch_offset(i, nbd, bshape, b_bstride);
        hm_gemm(0, 0, m, n, k, 1.0f, ai, k, bi, n, 0.0f, out + i * m * n, n, NULL);
    }
}

/*
 * Gradient of one operand X (A when which == 0, B when which == 1), written
 * in X's own contiguous layout. The output batch dims split into X's own dims
 * (X has them, or they have size 1) and the dims X is broadcast over. Each
 * distinct matrix of X (a "group") is one task: it sums its products over the
 * broadcast dims sequentially, in batch order, so no two threads write the
 * same memory and the sum order is fixed.
 */
static void operand_grad(float *dx, int which, const float *dout, const float *other, int nbd, const int64_t *bshape,
                         const int64_t *x_bstride, const int64_t *o_bstride, int64_t m, int64_t k, int64_t n) {
    int own[HM_MATMUL_MAX_BATCH];
    int64_t ngroups = 1, ninner = 1;
    for (int d = 0; d < nbd; d++) {
        own[d] = bshape[d] == 1 || x_bstride[d] != 0;
        if (own[d]) ngroups *= bshape[d];
        else ninner *= bshape[d];
    }
    int64_t xsize = which == 0 ? m * k : k * n;
    int small = m * n * k <= HM_GEMM_CALL;
    #pragma omp parallel for schedule(static) if (small && ngroups > 1 && ngroups * ninner * m * n * k > HM_PAR_FLOPS)
    for (int64_t g = 0; g < ngroups; g++) {
        int64_t coord[HM_MATMUL_MAX_BATCH];
        int64_t rest = g;
        for (int d = nbd - 1; d >= 0; d--)
            if (own[d]) { coord[d] = rest % bshape[d]; rest /= bshape[d]; }
        float *dxg = NULL;
        for (int64_t r = 0; r < ninner; r++) {
            rest = r;
            for (int d = nbd - 1; d >= 0; d--)
                if (!own[d]) { coord[d] = rest % bshape[d]; rest /= bshape[d]; }
            int64_t i = 0, xoff = 0, ooff = 0;
            for (int d = 0; d < nbd; d++) {
                i = i * bshape[d] + coord[d];
                xoff += coord[d] * x_bstride[d];
                ooff += coord[d] * o_bstride[d];
            }
            dxg = dx + xoff;
            float beta = r == 0 ? 0.0f : 1.0f;
            const float *gi = dout + i * m * n;
            if (which == 0) /* dA[m, k] (+)= dC[m, n] @ B[k, n]^T */
                hm_gemm(0, 1, m, k, n, 1.0f, gi, n, other + ooff, n, beta, dxg, k, NULL);
            else /* dB[k, n] (+)= A[m, k]^T @ dC[m, n] */
                hm_gemm(1, 0, k, n, m, 1.0f, other + ooff, k, gi, n, beta, dxg, n, NULL);
        }
        if (ninner == 0) {
            /* broadcast against an empty batch: nothing read this matrix */
            int64_t xoff = 0;
            for (int d = 0; d < nbd; d++)
                if (own[d]) xoff += coord[d] * x_bstride[d];
            memset(dx + xoff, 0, (size_t)xsize * sizeof(float));
        }
    }
}

int64_t hm_matmul_backward_scratch(int nbd, const int64_t *bshape, const int64_t *a_bstride,
                                   const int64_t *b_bstride, int64_t m, int64_t k, int64_t n) {
    if (is_full(nbd, bshape, a_bstride, m * k) && is_shared(nbd, bshape, b_bstride))
        return hm_gemm_scratch(k, n, prod(nbd, bshape) * m);
    return 0;
}

void hm_matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b, int nbd,
                        const int64_t *bshape, const int64_t *a_bstride, const int64_t *b_bstride, int64_t m,
                        int64_t k, int64_t n, float *scratch) {
    int64_t nb = prod(nbd, bshape);
    if (is_full(nbd, bshape, a_bstride, m * k) && is_shared(nbd, bshape, b_bstride)) {
        /* The folded case of the forward: both gradients are single GEMMs over
         * nb * m rows (dB's sum over the batch becomes the GEMM's inner
         * dimension). */
        if (da) hm_gemm(0, 1, nb * m, k, n, 1.0f, dout, n, b, n, 0.0f, da, k, NULL);
        if (db) hm_gemm(1, 0, k, n, nb * m, 1.0f, a, k, dout, n, 0.0f, db, n, scratch);
        return;
    }
    if (da) operand_grad(da, 0, dout, b, nbd, bshape, a_bstride, b_bstride, m, k, n);
    if (db) operand_grad(db, 1, dout, a, nbd, bshape, b_bstride, a_bstride, m, k, n);
}

/* ------------------------------------------------------------------ linear */

void hm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t rows,
                       int64_t in_f, int64_t out_f) {
    if (rows == 0 || out_f == 0) return;
    if (bias) {
        /* Start C at the bias and let the GEMM add to it (beta = 1): the bias
         * costs one write pass instead of a second read-modify-write pass. */
        #pragma omp parallel for schedule(static) if (rows * out_f > 262144)
        for (int64_t r = 0; r < rows; r++) memcpy(out + r * out_f, bias, (size_t)out_f * sizeof(float));
    }
    hm_gemm(0, 1, rows, out_f, in_f, 1.0f, inp, in_f, weight, in_f, bias ? 1.0f : 0.0f, out, out_f, NULL);
}

void hm_sum_rows(float *out, const float *x, int64_t rows, int64_t cols) {
    /* Columns in tiles of 32 (128 bytes, two cache lines): a tile's 32
     * running sums live in registers while the rows stream past. */
    enum { TILE = 32 };
    int64_t ntiles = (cols + TILE - 1) / TILE;
    #pragma omp parallel for schedule(static) if (ntiles > 1 && rows * cols > 65536)
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t c0 = t * TILE, w = min64(TILE, cols - c0);
        double acc[TILE] = {0};
        if (w == TILE) {
            for (int64_t r = 0; r < rows; r++) {
                const float *row = x + r * cols + c0;
                for (int j = 0; j < TILE; j++) acc[j] += (double)row[j];
            }
        } else {
            for (int64_t r = 0; r < rows; r++) {
                const float *row = x + r * cols + c0;
                for (int64_t j = 0; j < w; j++) acc[j] += (double)row[j];
            }
        }
        for (int64_t j = 0; j < w; j++) out[c0 + j] = (float)acc[j];
    }
}

int64_t hm_linear_backward_scratch(int64_t rows, int64_t in_f, int64_t out_f) {
    return hm_gemm_scratch(out_f, in_f, rows);
}

void hm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int64_t rows, int64_t in_f, int64_t out_f, float *scratch) {
    if (dinp) hm_gemm(0, 0, rows, in_f, out_f, 1.0f, dout, out_f, weight, in_f, 0.0f, dinp, in_f, NULL);
    if (dweight) hm_gemm(1, 0, out_f, in_f, rows, 1.0f, dout, out_f, inp, in_f, 0.0f, dweight, in_f, scratch);
    if (dbias) hm_sum_rows(dbias, dout, rows, out_f);
}
