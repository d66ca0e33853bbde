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
    /* Below ~2 MFLOP a second thread saves a few microseconds on an idle
     * machine but, on a loaded one (a lab machine, a notebook next to a test
     * run), the barrier waits for a descheduled thread for milliseconds: keep
     * such products on one core. The tiles (and so the result) do not change. */
    #pragma omp parallel for schedule(static) if (mt * nt > 1 && m * n * k > 4 * HM_GEMM_CALL)
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

/* --------------------------------------------------- small-GEMM fast path */

/*
 * The linear layers of the course's models are tall and thin: rows = batch x
 * tokens (16384), in/out features 32..512. OpenBLAS spends a good part of
 * such products packing A (every row of x is packed once per 128-column
 * block, for only 2 x out_f flops per element) and in per-call overhead (a
 * call covers at most HM_GEMM_CALL multiply-adds, i.e. a few hundred rows).
 * The kernels below skip both: a 6 x 16 register tile (12 accumulators)
 * broadcasts the elements of A straight from memory, in any layout (row and
 * column strides, so A^T is free), and streams the rows of a B whose columns
 * are contiguous. Measured on the course's shapes, one core: 85-92 GFLOP/s
 * against OpenBLAS's 55-65 (K = N = 32..64), and 60-75 against 45-50 for the
 * 512-wide feed-forward products.
 *
 * Every element of C is one accumulator summed over k in order, with one
 * FMA per term, then added to its initial value (bias or C): the value does
 * not depend on how rows are shared among threads.
 *
 * Compiled with __attribute__((target("avx2,fma"))) and chosen at run time
 * (__builtin_cpu_supports), like attention.c; without AVX2 the OpenBLAS path
 * below them runs. Define HM_LINALG_NO_FAST to compile the OpenBLAS path only.
 */
#if !defined(HM_LINALG_NO_FAST) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LA_FAST 1
#include <immintrin.h>
#define LA_AVX2 __attribute__((target("avx2,fma")))
#define LA_INLINE __attribute__((always_inline)) inline
#else
#define LA_FAST 0
#endif

/* W^T of the forward pass is packed on the stack: at most this many floats
 * (128 KiB: 512 x 64, 192 x 128, ...); larger layers take the OpenBLAS path. */
#define LA_PACK_MAX ((int64_t)32768)
/* Rows per parallel task of the row-split products. */
#define LA_ROW_TASK ((int64_t)96)
/* dW = dY^T X sums over the rows: they are cut into at most LA_DW_CHUNKS
 * fixed chunks of at least LA_DW_MIN_ROWS (a function of `rows` only), each
 * chunk's partial product is computed on one thread, and the partials are
 * added in chunk order, so the result does not depend on the thread count.
 * The chunks are also the parallel tasks of dX in the same pass. */
#define LA_DW_CHUNKS ((int64_t)16)
#define LA_DW_MIN_ROWS ((int64_t)256)

#if LA_FAST

static LA_AVX2 LA_INLINE __m256i la_lanes_below(int64_t w) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(w < 0 ? 0 : w > 8 ? 8 : w)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Initial values of C in la_tile. */
enum { LA_SET = 0, LA_BIAS = 1, LA_ADD = 2 };

#define LA_ROW_FMA(i)                                                                                                 \
    if (MR > i) {                                                                                                     \
        const __m256 x = _mm256_broadcast_ss(a + i * ars);                                                            \
        c##i##0 = _mm256_fmadd_ps(x, b0, c##i##0);                                                                    \
        c##i##1 = _mm256_fmadd_ps(x, b1, c##i##1);                                                                    \
    }
#define LA_LOAD2(p, r0, r1)                                                                                           \
    do {                                                                                                              \
        if (FULL) { r0 = _mm256_loadu_ps(p); r1 = _mm256_loadu_ps((p) + 8); }                                         \
        else { r0 = _mm256_maskload_ps((p), m0); r1 = _mm256_maskload_ps((p) + 8, m1); }                              \
    } while (0)
#define LA_ROW_STORE(i)                                                                                               \
    if (MR > i) {                                                                                                     \
        float *c = C + i * ldc;                                                                                       \
        __m256 r0 = c##i##0, r1 = c##i##1;                                                                            \
        if (mode == LA_ADD) {                                                                                         \
            __m256 o0, o1;                                                                                            \
            LA_LOAD2(c, o0, o1);                                                                                      \
            r0 = _mm256_add_ps(o0, r0); r1 = _mm256_add_ps(o1, r1);                                                   \
        } else if (mode == LA_BIAS) {                                                                                 \
            r0 = _mm256_add_ps(v0, r0); r1 = _mm256_add_ps(v1, r1);                                                   \
        }                                                                                                             \
        if (FULL) { _mm256_storeu_ps(c, r0); _mm256_storeu_ps(c + 8, r1); }                                           \
        else { _mm256_maskstore_ps(c, m0, r0); _mm256_maskstore_ps(c + 8, m1, r1); }                                  \
    }

/*
 * One MR x 16 tile (MR <= 6; only the first nc <= 16 columns when !FULL):
 *   C[i][j] = init + sum_p A[i * ars + p * acs] * B[p * ldb + j]
 * init: 0 (LA_SET), bias[j] (LA_BIAS) or C[i][j] itself (LA_ADD). Masked
 * loads and stores never touch columns >= nc. MR and FULL are constants
 * after inlining, so the accumulators are registers, not an array.
 */
static LA_AVX2 LA_INLINE void la_tile(const int MR, const int FULL, float *C, int64_t ldc, const float *A,
                                      int64_t ars, int64_t acs, const float *B, int64_t ldb, int64_t k, int64_t nc,
                                      const float *bias, int mode) {
    const __m256i m0 = la_lanes_below(nc), m1 = la_lanes_below(nc - 8);
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t p = 0; p < k; p++) {
        __m256 b0, b1;
        LA_LOAD2(B + p * ldb, b0, b1);
        const float *a = A + p * acs;
        LA_ROW_FMA(0) LA_ROW_FMA(1) LA_ROW_FMA(2) LA_ROW_FMA(3) LA_ROW_FMA(4) LA_ROW_FMA(5)
    }
    __m256 v0 = _mm256_setzero_ps(), v1 = v0;
    if (mode == LA_BIAS) LA_LOAD2(bias, v0, v1);
    LA_ROW_STORE(0) LA_ROW_STORE(1) LA_ROW_STORE(2) LA_ROW_STORE(3) LA_ROW_STORE(4) LA_ROW_STORE(5)
}
#undef LA_ROW_FMA
#undef LA_LOAD2
#undef LA_ROW_STORE

typedef void (*la_tile_fn)(float *, int64_t, const float *, int64_t, int64_t, const float *, int64_t, int64_t,
                           int64_t, const float *, int);
#define LA_TILE_DEF(R)                                                                                                \
    static LA_AVX2 void la_tile_##R(float *C, int64_t ldc, const float *A, int64_t ars, int64_t acs,                  \
                                    const float *B, int64_t ldb, int64_t k, int64_t nc, const float *bias,            \
                                    int mode) {                                                                       \
        if (nc == 16) la_tile(R, 1, C, ldc, A, ars, acs, B, ldb, k, nc, bias, mode);                                  \
        else la_tile(R, 0, C, ldc, A, ars, acs, B, ldb, k, nc, bias, mode);                                           \
    }
LA_TILE_DEF(1)
LA_TILE_DEF(2)
LA_TILE_DEF(3)
LA_TILE_DEF(4)
LA_TILE_DEF(5)
LA_TILE_DEF(6)
#undef LA_TILE_DEF
static const la_tile_fn la_tiles[7] = {NULL, la_tile_1, la_tile_2, la_tile_3, la_tile_4, la_tile_5, la_tile_6};

/* C[m][n] (row stride ldc) = init + A(m x k) B(k x n), A(i, p) = A[i * ars + p * acs],
 * B(p, j) = B[p * ldb + j]; on the calling thread. Row blocks of 6 outer, so
 * the 6 rows of A are reused from L1 across the column tiles. */
static LA_AVX2 void la_gemm(float *C, int64_t ldc, const float *A, int64_t ars, int64_t acs, const float *B,
                            int64_t ldb, int64_t m, int64_t n, int64_t k, const float *bias, int mode) {
    for (int64_t i = 0; i < m; i += 6) {
        const int64_t mr = m - i < 6 ? m - i : 6;
        for (int64_t j = 0; j < n; j += 16)
            la_tiles[mr](C + i * ldc + j, ldc, A + i * ars, ars, acs, B + j, ldb, k, n - j < 16 ? n - j : 16,
                         bias ? bias + j : NULL, mode);
    }
}

/* C[rows][n] = init + A[rows][k] (row stride lda) B[k][n], rows split into
 * fixed tasks over the threads. (Blocking B for L1 was tried and measured
 * slower at the course's shapes: B is at most LA_PACK_MAX floats, in L2, and
 * streams well; re-reading A per block costs more.) */
static LA_AVX2 void la_rows_product(float *C, const float *A, int64_t lda, const float *B, int64_t rows, int64_t n,
                                    int64_t k, const float *bias, int mode) {
    const int64_t ntask = (rows + LA_ROW_TASK - 1) / LA_ROW_TASK;
    #pragma omp parallel for schedule(static) if (ntask > 1 && rows * n * k > HM_PAR_FLOPS * 4)
    for (int64_t t = 0; t < ntask; t++) {
        const int64_t r0 = t * LA_ROW_TASK;
        la_gemm(C + r0 * n, n, A + r0 * lda, lda, 1, B, n, min64(LA_ROW_TASK, rows - r0), n, k, bias, mode);
    }
}

/* Rows are handled in sub-blocks of LA_SUB rows (a multiple of the tile's 6
 * rows, so dX has no short tiles). */
#define LA_SUB ((int64_t)96)

/* Rows of chunk ch out of nch for a reduction over `rows` (chunks are whole
 * sub-blocks; trailing chunks may be short or empty). */
static void la_chunk(int64_t rows, int64_t nch, int64_t ch, int64_t *r0, int64_t *r1) {
    const int64_t rc = ((rows + nch - 1) / nch + LA_SUB - 1) / LA_SUB * LA_SUB;
    *r0 = min64(rows, ch * rc);
    *r1 = min64(rows, *r0 + rc);
}

static int64_t la_dw_chunks(int64_t rows) {
    return max64(1, min64(LA_DW_CHUNKS, rows / LA_DW_MIN_ROWS));
}

/*
 * The backward pass of the rows [r0, r1) of a linear layer, on this thread:
 *   dX[r] = G[r] W                        (when dinp != NULL)
 *   P[n][j] = sum_r G[r][n] X[r][j]        (when P != NULL; G = dY [rows][N], X [rows][K])
 *           or its transpose P[j][n] when trans (see la_dw_trans)
 *   pb[n]   = sum_r G[r][n] in double, row order (when pb != NULL)
 * All three are done one sub-block of rows at a time, so each row of G is
 * read from memory once for all of them (G is the largest operand: reading
 * it once for dX and once more for dW cost ~30% at 16384 x 192). P is
 * written by the first sub-block and accumulated by the next ones, in row
 * order; it stays in L2 (at most LA_PACK_MAX floats).
 */
static LA_AVX2 void la_backward_rows(float *dinp, float *P, int trans, double *pb, const float *G, const float *X,
                                     const float *W, int64_t r0, int64_t r1, int64_t N, int64_t K) {
    const int64_t SB = LA_SUB;
    if (pb)
        for (int64_t n = 0; n < N; n++) pb[n] = 0.0;
    if (P && r1 <= r0) memset(P, 0, (size_t)(N * K) * sizeof(float));
    for (int64_t s = r0; s < r1; s += SB) {
        const int64_t sb = min64(SB, r1 - s);
        if (dinp) la_gemm(dinp + s * K, K, G + s * N, N, 1, W, K, sb, K, N, NULL, LA_SET);
        if (P && !trans) la_gemm(P, K, G + s * N, 1, N, X + s * K, K, N, K, sb, NULL, s == r0 ? LA_SET : LA_ADD);
        if (P && trans) la_gemm(P, N, X + s * K, 1, K, G + s * N, N, K, N, sb, NULL, s == r0 ? LA_SET : LA_ADD);
        if (pb) {
            for (int64_t r = s; r < s + sb; r++) {
                const float *restrict g = G + r * N;
                #pragma omp simd
                for (int64_t n = 0; n < N; n++) pb[n] += (double)g[n];
            }
        }
    }
}

/* The tiles of P broadcast one operand and load rows of 16 from the other,
 * which every row block of P reads again: that one should be the narrower of
 * G and X, so its sub-block stays in L1. With K > N (a 512 -> 32 layer) that
 * means computing P^T = X^T G (then dW is transposed back while the chunks
 * are summed). */
static int la_dw_trans(int64_t in_f, int64_t out_f) { return in_f > out_f; }

static int la_cpu_ok(void) {
#if defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
}

/* Does a linear layer of these sizes take the fast path? A function of the
 * sizes and the CPU only (never of the thread count). */
static int la_linear_fast(int64_t rows, int64_t in_f, int64_t out_f) {
    return rows > 0 && in_f > 0 && out_f > 0 && in_f * out_f <= LA_PACK_MAX && in_f <= 2048 && out_f <= 2048 &&
           la_cpu_ok();
}

static LA_AVX2 void la_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                                      int64_t rows, int64_t in_f, int64_t out_f) {
    /* B = W^T, so the tiles read contiguous rows of out_f columns. */
    _Alignas(64) float wt[LA_PACK_MAX];
    for (int64_t j = 0; j < out_f; j++)
        for (int64_t p = 0; p < in_f; p++) wt[p * out_f + j] = weight[j * in_f + p];
    la_rows_product(out, inp, in_f, wt, rows, out_f, in_f, bias, bias ? LA_BIAS : LA_SET);
}

static LA_AVX2 void la_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                       const float *inp, const float *weight, int64_t rows, int64_t in_f,
                                       int64_t out_f, float *scratch) {
    if (!dweight) {
        /* No reduction over rows for the weight: dX alone, split like the forward. */
        if (dinp) la_rows_product(dinp, dout, out_f, weight, rows, in_f, out_f, NULL, LA_SET);
        if (dbias) hm_sum_rows(dbias, dout, rows, out_f);
        return;
    }
    const int64_t nch = la_dw_chunks(rows), wsize = out_f * in_f;
    const int trans = la_dw_trans(in_f, out_f);
    /* scratch: nch bias partials (double), then the partial products of the
     * chunks (chunk 0 goes straight to dweight unless transposed) */
    double *pbias = dbias ? (double *)scratch : NULL;
    float *parts = scratch + 2 * nch * out_f;
    const int64_t first = trans ? 0 : 1;
    #pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t r0, r1;
        la_chunk(rows, nch, ch, &r0, &r1);
        la_backward_rows(dinp, ch < first ? dweight : parts + (ch - first) * wsize, trans,
                         pbias ? pbias + ch * out_f : NULL, dout, inp, weight, r0, r1, out_f, in_f);
    }
    if (trans) {
        /* dW[n][j] = sum over chunks of P_ch[j][n], in chunk order */
        #pragma omp parallel for schedule(static) if (wsize * nch > 65536)
        for (int64_t n = 0; n < out_f; n++)
            for (int64_t j = 0; j < in_f; j++) {
                float s = parts[j * out_f + n];
                for (int64_t ch = 1; ch < nch; ch++) s += parts[(ch * in_f + j) * out_f + n];
                dweight[n * in_f + j] = s;
            }
    } else if (nch > 1) {
        #pragma omp parallel for schedule(static) if (wsize * nch > 65536)
        for (int64_t i = 0; i < wsize; i++) {
            float s = dweight[i];
            for (int64_t ch = 1; ch < nch; ch++) s += parts[(ch - 1) * wsize + i];
            dweight[i] = s;
        }
    }
    if (dbias)
        for (int64_t n = 0; n < out_f; n++) {
            double s = 0.0;
            for (int64_t ch = 0; ch < nch; ch++) s += pbias[ch * out_f + n];
            dbias[n] = (float)s;
        }
}
#endif /* LA_FAST */

/* ------------------------------------------------------------------ linear */

void hm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t rows,
                       int64_t in_f, int64_t out_f) {
    if (rows == 0 || out_f == 0) return;
#if LA_FAST
    if (la_linear_fast(rows, in_f, out_f)) {
        la_linear_forward(out, inp, weight, bias, rows, in_f, out_f);
        return;
    }
#endif
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
#if LA_FAST
    if (la_linear_fast(rows, in_f, out_f)) {
        const int64_t nch = la_dw_chunks(rows);
        return 2 * nch * out_f + (la_dw_trans(in_f, out_f) ? nch : nch - 1) * out_f * in_f;
    }
#endif
    return hm_gemm_scratch(out_f, in_f, rows);
}

void hm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int64_t rows, int64_t in_f, int64_t out_f, float *scratch) {
#if LA_FAST
    /* The fast path needs its chunk partials (hm_linear_backward_scratch);
     * without scratch the OpenBLAS path runs. */
    if (la_linear_fast(rows, in_f, out_f) && (scratch || !dweight)) {
        la_linear_backward(dinp, dweight, dbias, dout, inp, weight, rows, in_f, out_f, scratch);
        return;
    }
#endif
    if (dinp) hm_gemm(0, 0, rows, in_f, out_f, 1.0f, dout, out_f, weight, in_f, 0.0f, dinp, in_f, NULL);
    if (dweight) hm_gemm(1, 0, out_f, in_f, rows, 1.0f, dout, out_f, inp, in_f, 0.0f, dweight, in_f, scratch);
    if (dbias) hm_sum_rows(dbias, dout, rows, out_f);
}
