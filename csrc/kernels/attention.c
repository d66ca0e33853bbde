/* Fused multi-head attention forward/backward. Semantics and the saved state
 * are documented in attention.h; this file explains the implementation.
 *
 * One (batch, head) pair is one task, done start to finish by one thread with
 * its whole (L x S) tile in L1 (at L = S = 16, D = 16 a task touches ~6 KiB).
 *
 * Two implementations of a task, chosen once per call:
 *
 *  - AVX2 + FMA (x86-64 with GCC or Clang): the task is a handful of tiny
 *    GEMMs (scores = Q K^T, out = P V; in backward dP = dO V^T, dQ = dS K,
 *    dK = dS^T Q, dV = P^T dO) done by one register-blocked micro-kernel
 *    (4 rows x 16 columns = 8 accumulators, enough to hide the FMA latency),
 *    plus a vectorised softmax row stage and an 8-wide Philox for dropout.
 *    The kernel broadcasts elements of its A operand, so A is read through
 *    (row, column) strides and transposes of A are free (dK = dS^T Q reads dS
 *    by columns); B needs contiguous rows, so K and V are transposed once per
 *    task into [D][Sp] tiles (Sp = S rounded up to 8, padding = dead keys).
 *    The code is compiled with
 *    __attribute__((target("avx2,fma"))) and selected at run time
 *    (__builtin_cpu_supports), so it is used whatever flags the extension is
 *    built with; with -mavx2 -mfma the check folds away.
 *
 *  - Portable C (everything else, and the reference the tests compare the
 *    AVX2 path with): row by row, with loops written so that gcc vectorises
 *    them at -O2 (checked with -fopt-info-vec): `#pragma omp simd` lifts the
 *    -O2 "very cheap" cost model, and selects are done with bit masks instead
 *    of ?: on floats, because with the default -ftrapping-math gcc turns float
 *    ?: into branches (and duplicates the arithmetic into them), which blocks
 *    vectorisation. It is ~2.5x slower than the AVX2 path at the course's
 *    shapes: plain C at -O2 keeps the accumulators in memory, not registers.
 *
 * Defining HM_ATTN_PORTABLE_ONLY compiles the portable path alone (the C test
 * uses it to check that path too).
 */
#include "attention.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if !defined(HM_ATTN_PORTABLE_ONLY) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ATTN_HAVE_AVX2 1
#include <immintrin.h>
#define ATTN_AVX2 __attribute__((target("avx2,fma")))
#else
#define ATTN_HAVE_AVX2 0
#endif

/* Per-thread scratch on the stack (floats / 32-bit words); beyond it, one
 * heap block per call. */
#define ATTN_FCAP 8192
#define ATTN_UCAP 2048
/* Dropout words are generated for a group of rows at once so the Philox loop
 * has enough blocks to fill the vector lanes: about this many elements. */
#define ATTN_RNG_GROUP 256

typedef union { float f; uint32_t u; } attn_fu32;

#define ATTN_NEG_INF_BITS 0xFF800000u

/* exp(x) for the softmax, vectorisable (glibc's expf is a scalar call without
 * -ffast-math). Range reduction x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor
 * polynomial: max relative error ~1.7 ulp. x < -87 (including -inf) gives
 * exactly 0 (results below FLT_MIN are flushed: irrelevant next to the row
 * maximum's exp(0) = 1); x > 88 is clamped. NaN propagates. The AVX2 version
 * below is the same computation. */
#define ATTN_EXP_LN2_HI 0.693359375f     /* 9 significant bits: n * hi is exact */
#define ATTN_EXP_LN2_LO (-2.12194440e-4f) /* ln 2 - hi */
static inline float attn_exp(float x) {
    uint32_t lo = 0u - (uint32_t)isless(x, -87.0f);
    uint32_t hi = 0u - (uint32_t)isgreater(x, 88.0f);
    attn_fu32 a = {x}, cl = {-87.0f}, ch = {88.0f};
    a.u = (a.u & ~(lo | hi)) | (cl.u & lo) | (ch.u & hi);
    float xc = a.f;
    /* Round to nearest by the 1.5 * 2^23 trick (no rintf call needed). */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * ATTN_EXP_LN2_HI;
    r = r - n * ATTN_EXP_LN2_LO;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    attn_fu32 c;
    c.u = ((uint32_t)((int32_t)n + 127) << 23) & ~lo; /* 2^n, or +0 when x < -87 */
    return p * c.f;
}

/* ---- dropout words: Philox4x32-10, identical to hm_philox_block of rng.h,
 * for `nblk` consecutive blocks of stream HM_STREAM_DROPOUT starting at blk0.
 * Output is block-major (w[4t + lane]) so the word of counter g sits at
 * w[g - 4*blk0]. The rounds are spelled out (not a loop) so that the loop over
 * blocks vectorises. ---- */
#define ATTN_PHILOX_M0 0xD2511F53u
#define ATTN_PHILOX_M1 0xCD9E8D57u
#define ATTN_PHILOX_W0 0x9E3779B9u
#define ATTN_PHILOX_W1 0xBB67AE85u
#define ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1) do { \
    uint64_t p0_ = (uint64_t)ATTN_PHILOX_M0 * c0, p1_ = (uint64_t)ATTN_PHILOX_M1 * c2; \
    uint32_t n0_ = (uint32_t)(p1_ >> 32) ^ c1 ^ k0, n1_ = (uint32_t)p1_; \
    uint32_t n2_ = (uint32_t)(p0_ >> 32) ^ c3 ^ k1, n3_ = (uint32_t)p0_; \
    c0 = n0_; c1 = n1_; c2 = n2_; c3 = n3_; k0 += ATTN_PHILOX_W0; k1 += ATTN_PHILOX_W1; } while (0)

static void attn_philox_words(uint32_t *restrict w, uint64_t seed, uint64_t blk0, int64_t nblk) {
    const uint32_t s2 = (uint32_t)HM_STREAM_DROPOUT, s3 = (uint32_t)((uint64_t)HM_STREAM_DROPOUT >> 32);
    #pragma omp simd
    for (int64_t t = 0; t < nblk; t++) {
        uint64_t blk = blk0 + (uint64_t)t;
        uint32_t c0 = (uint32_t)blk, c1 = (uint32_t)(blk >> 32), c2 = s2, c3 = s3;
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
        ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
        ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
        ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
        ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); ATTN_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
        w[4 * t] = c0; w[4 * t + 1] = c1; w[4 * t + 2] = c2; w[4 * t + 3] = c3;
    }
}

/* ---- problem description shared by the per-(b, h) tasks ---- */
typedef struct {
    const float *q, *k, *v;
    const uint8_t *kpm, *bmask;
    const float *fmask;
    int mask_per_head, causal;
    int64_t B, H, L, S, D, E;
    int64_t sq, sk, sv;   /* row strides of q, k, v (and of dq, dk, dv); out and dout: E */
    int64_t Sp;           /* AVX2 path: S rounded up to a multiple of 8 */
    float scale;
    int dropout;          /* 0 < p */
    float keep_scale;     /* 1 / (1 - p), 0 when p >= 1 */
    uint32_t thresh;      /* keep iff word >= thresh */
    uint64_t seed, offset;
    int64_t grp;          /* rows per group of dropout words */
} attn_problem;

/* Per-thread scratch. Portable path: s, p, dp, z are single rows [S], kt/vt
 * are [D][S]. AVX2 path: s, p, dp are [L][Sp] tiles, kt/vt are [D][Sp], z
 * holds 2L floats. */
typedef struct {
    float *kt, *vt;
    float *s, *p, *dp, *z;
    uint32_t *kdead;  /* ~0 where the key is padded */
    uint32_t *words;  /* dropout words of the current row group */
} attn_ws;

static int64_t attn_rng_group_rows(int64_t L, int64_t S) {
    int64_t g = S > 0 ? ATTN_RNG_GROUP / S : L;
    if (g < 1) g = 1;
    if (g > L) g = L;
    return g;
}

static void attn_ws_sizes(const attn_problem *P, int avx2, size_t *nf, size_t *nu) {
    const int64_t L = P->L, S = P->S, D = P->D, Sp = P->Sp;
    if (avx2) {
        *nf = (size_t)(2 * D * Sp + 3 * L * Sp + 2 * L);
        /* words: 8-block rounding of the generator and 8-wide reads past the
         * group's last row both stay within grp * S + 64. */
        *nu = (size_t)(Sp + P->grp * S + 64);
    } else {
        *nf = (size_t)(2 * D * S + 4 * S);
        *nu = (size_t)(S + P->grp * S + 8);
    }
}

static void attn_ws_carve(const attn_problem *P, int avx2, attn_ws *ws, float *f, uint32_t *u) {
    const int64_t L = P->L, S = P->S, D = P->D;
    const int64_t w = avx2 ? P->Sp : S, rows = avx2 ? L : 1;
    ws->kt = f; f += D * w;
    ws->vt = f; f += D * w;
    ws->s = f; f += rows * w;
    ws->p = f; f += rows * w;
    ws->dp = f; f += rows * w;
    ws->z = f; /* portable: [S] row; AVX2: [2][L] row maxima and sums */
    ws->kdead = u; u += w;
    ws->words = u;
}

/* [n][D] rows with stride E -> [D][w] contiguous, columns n..w-1 zero. */
static void attn_transpose(float *restrict dst, const float *restrict src, int64_t n, int64_t w, int64_t D,
                           int64_t E) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t d = 0; d < D; d++) dst[d * w + j] = src[j * E + d];
    for (int64_t d = 0; d < D; d++)
        for (int64_t j = n; j < w; j++) dst[d * w + j] = 0.0f;
}

/* Dead-key bits of batch b: ~0 for padded keys and for the padding columns
 * S..w-1 (so they can never win a max or get a probability). */
static void attn_kdead_setup(const attn_problem *P, attn_ws *ws, int64_t b, int64_t w) {
    const int64_t S = P->S;
    const uint8_t *kp = P->kpm ? P->kpm + b * S : NULL;
    for (int64_t j = 0; j < S; j++) ws->kdead[j] = kp ? 0u - (uint32_t)(kp[j] != 0) : 0u;
    for (int64_t j = S; j < w; j++) ws->kdead[j] = ~0u;
}

/* Portable per-task setup: transposed keys (and values), dead-key bits. */
static void attn_task_setup(const attn_problem *P, attn_ws *ws, int64_t b, int64_t h, int with_v, int64_t w) {
    const int64_t S = P->S, D = P->D, sk = P->sk, sv = P->sv;
    attn_transpose(ws->kt, P->k + b * S * sk + h * D, S, w, D, sk);
    if (with_v) attn_transpose(ws->vt, P->v + b * S * sv + h * D, S, w, D, sv);
    attn_kdead_setup(P, ws, b, w);
}

/* Dropout counter of element (row i0, key 0) of task bh. */
static uint64_t attn_group_first_counter(const attn_problem *P, int64_t bh, int64_t i0) {
    return P->offset + (uint64_t)((bh * P->L + i0) * P->S);
}

/* ======================= portable path ======================= */

/* Scores of query row i into ws->s: scale * q.k (+ float mask), -inf where
 * masked. Returns the row maximum (-inf when the whole row is masked). The
 * backward pass calls the same function so its scores match the forward's. */
static float attn_score_row(const attn_problem *P, attn_ws *ws, int64_t bh, int64_t b, int64_t h, int64_t i) {
    const int64_t S = P->S, D = P->D, L = P->L;
    const float *qi = P->q + (b * L + i) * P->sq + h * D;
    float *restrict s = ws->s;
    const float *restrict kt = ws->kt;
    const uint32_t *restrict kdead = ws->kdead;
    for (int64_t j = 0; j < S; j++) s[j] = 0.0f;
    for (int64_t d = 0; d < D; d++) {
        /* scale is applied to q first, as PyTorch does. */
        const float a = qi[d] * P->scale;
        const float *restrict kr = kt + d * S;
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) s[j] += a * kr[j];
    }
    const int64_t slab = P->mask_per_head ? bh * L * S : 0;
    if (P->fmask) {
        const float *restrict fm = P->fmask + slab + i * S;
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) s[j] += fm[j];
    }
    /* Padded keys and the boolean mask are OR-ed into one bit mask per key;
     * the select is done on the bits (see the top of the file). */
    if (P->bmask) {
        const uint8_t *restrict bm = P->bmask + slab + i * S;
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) {
            uint32_t dead = kdead[j] | (0u - (uint32_t)(bm[j] != 0));
            attn_fu32 x = {s[j]};
            x.u = (x.u & ~dead) | (ATTN_NEG_INF_BITS & dead);
            s[j] = x.f;
        }
    } else if (P->kpm) {
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) {
            attn_fu32 x = {s[j]};
            x.u = (x.u & ~kdead[j]) | (ATTN_NEG_INF_BITS & kdead[j]);
            s[j] = x.f;
        }
    }
    if (P->causal)
        for (int64_t j = i + 1; j < S; j++) s[j] = -INFINITY;
    float m = -INFINITY;
    #pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < S; j++) m = m > s[j] ? m : s[j];
    return m;
}

/* Dropout multipliers of row i (z[j] = keep ? 1/(1-p) : 0) from the words of
 * the current row group; (re)generates the group's words when i starts one.
 * Must be called for every row in order. */
static void attn_dropout_row(const attn_problem *P, attn_ws *ws, int64_t bh, int64_t i) {
    const int64_t L = P->L, S = P->S, grp = P->grp;
    const int64_t i0 = i - i % grp;
    const uint64_t g0 = attn_group_first_counter(P, bh, i0);
    if (i == i0) {
        int64_t rows = L - i0 < grp ? L - i0 : grp;
        uint64_t last = g0 + (uint64_t)(rows * S) - 1;
        attn_philox_words(ws->words, P->seed, g0 >> 2, (int64_t)((last >> 2) - (g0 >> 2) + 1));
    }
    const uint32_t *restrict w = ws->words + (g0 & 3) + (i - i0) * S;
    float *restrict z = ws->z;
    const uint32_t thresh = P->thresh;
    attn_fu32 ks = {P->keep_scale};
    #pragma omp simd
    for (int64_t j = 0; j < S; j++) {
        attn_fu32 x;
        x.u = ks.u & (0u - (uint32_t)(w[j] >= thresh));
        z[j] = x.f;
    }
}

static void attn_forward_task(const attn_problem *P, attn_ws *ws, float *out, float *probs, float *lse,
                              int64_t bh) {
    const int64_t H = P->H, L = P->L, S = P->S, D = P->D, E = P->E, sv = P->sv;
    const int64_t b = bh / H, h = bh % H;
    attn_task_setup(P, ws, b, h, 0, S);
    const float *vb = P->v + b * S * sv + h * D;
    float *restrict s = ws->s;
    for (int64_t i = 0; i < L; i++) {
        float *restrict o = out + (b * L + i) * E + h * D;
        float *pr = probs ? probs + (bh * L + i) * S : NULL;
        if (P->dropout) attn_dropout_row(P, ws, bh, i);
        const float m = attn_score_row(P, ws, bh, b, h, i);
        if (m == -INFINITY) {
            /* Fully masked row: defined as zero attention (see attention.h). */
            lse[bh * L + i] = -INFINITY;
            for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
            if (pr) memset(pr, 0, (size_t)S * sizeof(float));
            continue;
        }
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < S; j++) {
            s[j] = attn_exp(s[j] - m);
            sum += s[j];
        }
        lse[bh * L + i] = m + logf(sum);
        const float inv = 1.0f / sum;
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) s[j] *= inv;
        if (pr) memcpy(pr, s, (size_t)S * sizeof(float));
        if (P->dropout) {
            const float *restrict z = ws->z;
            #pragma omp simd
            for (int64_t j = 0; j < S; j++) s[j] *= z[j];
        }
        /* Causal rows see keys 0..i only; the rest are exact zeros. */
        const int64_t jend = P->causal && i + 1 < S ? i + 1 : S;
        for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
        for (int64_t j = 0; j < jend; j++) {
            const float pj = s[j];
            if (pj == 0.0f) continue; /* masked or dropped: skip the whole v row */
            const float *restrict vr = vb + j * sv;
            #pragma omp simd
            for (int64_t d = 0; d < D; d++) o[d] += pj * vr[d];
        }
    }
}

/* Backward of one (b, h), row by row, with the forward's p recomputed from lse:
 *   p = exp(s - lse), pz = p * z, dP = z * (dout_i . v_j)
 *   dS = p * (dP - sum_j p dP)          (softmax backward)
 *   dq_i = scale * sum_j dS_j k_j,  dk_j += scale * dS_j q_i,  dv_j += pz_j dout_i
 * The (b, h) pair owns its columns of dk and dv, so they are zeroed and
 * accumulated in place without any cross-thread interaction. */
static void attn_backward_task(const attn_problem *P, attn_ws *ws, float *dq, float *dk, float *dv,
                               const float *dout, const float *lse, int64_t bh) {
    const int64_t H = P->H, L = P->L, S = P->S, D = P->D, E = P->E, sq = P->sq, sk = P->sk, sv = P->sv;
    const int64_t b = bh / H, h = bh % H;
    attn_task_setup(P, ws, b, h, 1, S);
    const float *kb = P->k + b * S * sk + h * D;
    float *dkb = dk + b * S * sk + h * D, *dvb = dv + b * S * sv + h * D;
    for (int64_t j = 0; j < S; j++) {
        memset(dkb + j * sk, 0, (size_t)D * sizeof(float));
        memset(dvb + j * sv, 0, (size_t)D * sizeof(float));
    }
    float *restrict s = ws->s, *restrict p = ws->p, *restrict dp = ws->dp;
    const float *restrict vt = ws->vt;
    for (int64_t i = 0; i < L; i++) {
        const float *restrict go = dout + (b * L + i) * E + h * D;
        const float *restrict qi = P->q + (b * L + i) * sq + h * D;
        float *restrict gq = dq + (b * L + i) * sq + h * D;
        if (P->dropout) attn_dropout_row(P, ws, bh, i);
        const float li = lse[bh * L + i];
        if (li == -INFINITY) {
            for (int64_t d = 0; d < D; d++) gq[d] = 0.0f;
            continue;
        }
        attn_score_row(P, ws, bh, b, h, i);
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) p[j] = attn_exp(s[j] - li);
        /* dP_j = dout_i . v_j, over the transposed V tile like the scores. */
        for (int64_t j = 0; j < S; j++) dp[j] = 0.0f;
        for (int64_t d = 0; d < D; d++) {
            const float a = go[d];
            const float *restrict vr = vt + d * S;
            #pragma omp simd
            for (int64_t j = 0; j < S; j++) dp[j] += a * vr[j];
        }
        /* s is free now: it holds pz = p * z, the weights that multiplied v. */
        if (P->dropout) {
            const float *restrict z = ws->z;
            #pragma omp simd
            for (int64_t j = 0; j < S; j++) {
                s[j] = p[j] * z[j];
                dp[j] *= z[j];
            }
        } else {
            memcpy(s, p, (size_t)S * sizeof(float));
        }
        float delta = 0.0f;
        #pragma omp simd reduction(+ : delta)
        for (int64_t j = 0; j < S; j++) delta += p[j] * dp[j];
        const float sc = P->scale;
        #pragma omp simd
        for (int64_t j = 0; j < S; j++) dp[j] = sc * p[j] * (dp[j] - delta); /* dp := scale * dS */
        const int64_t jend = P->causal && i + 1 < S ? i + 1 : S;
        for (int64_t d = 0; d < D; d++) gq[d] = 0.0f;
        for (int64_t j = 0; j < jend; j++) {
            const float ds = dp[j], pz = s[j];
            if (p[j] == 0.0f) continue; /* masked key (or underflow): contributes nothing */
            const float *restrict kr = kb + j * sk;
            float *restrict gk = dkb + j * sk, *restrict gv = dvb + j * sv;
            #pragma omp simd
            for (int64_t d = 0; d < D; d++) {
                gq[d] += ds * kr[d];
                gk[d] += ds * qi[d];
                gv[d] += pz * go[d];
            }
        }
    }
}

/* ======================= AVX2 + FMA path ======================= */
#if ATTN_HAVE_AVX2

/* ---- micro-kernels: C[m][n] = alpha * sum_k A(m, k) * B[k][n] with
 * A(m, k) = A[m * rsa + k * csa] (broadcast, so any layout/transpose is free),
 * B rows at stride ldb, C rows at stride ldc (C is overwritten). ---- */

ATTN_AVX2 static void attn_mk_4x16(float *C, int64_t ldc, const float *A, int64_t rsa, int64_t csa,
                                   const float *B, int64_t ldb, int64_t K, float alpha) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
    __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const float *a0 = A, *a1 = A + rsa, *a2 = A + 2 * rsa, *a3 = A + 3 * rsa;
    for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        const int64_t o = k * csa;
        __m256 x = _mm256_broadcast_ss(a0 + o);
        c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + o);
        c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + o);
        c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + o);
        c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
    }
    const __m256 va = _mm256_set1_ps(alpha);
    _mm256_storeu_ps(C, _mm256_mul_ps(va, c00)); _mm256_storeu_ps(C + 8, _mm256_mul_ps(va, c01));
    C += ldc;
    _mm256_storeu_ps(C, _mm256_mul_ps(va, c10)); _mm256_storeu_ps(C + 8, _mm256_mul_ps(va, c11));
    C += ldc;
    _mm256_storeu_ps(C, _mm256_mul_ps(va, c20)); _mm256_storeu_ps(C + 8, _mm256_mul_ps(va, c21));
    C += ldc;
    _mm256_storeu_ps(C, _mm256_mul_ps(va, c30)); _mm256_storeu_ps(C + 8, _mm256_mul_ps(va, c31));
}

/* One row x 16 columns; even/odd k in separate accumulators for latency. */
ATTN_AVX2 static void attn_mk_1x16(float *C, const float *A, int64_t csa, const float *B, int64_t ldb,
                                   int64_t K, float alpha) {
    __m256 e0 = _mm256_setzero_ps(), e1 = e0, o0 = e0, o1 = e0;
    int64_t k = 0;
    for (; k + 1 < K; k += 2) {
        const float *b = B + k * ldb;
        __m256 x = _mm256_broadcast_ss(A + k * csa), y = _mm256_broadcast_ss(A + (k + 1) * csa);
        e0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), e0);
        e1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), e1);
        o0 = _mm256_fmadd_ps(y, _mm256_loadu_ps(b + ldb), o0);
        o1 = _mm256_fmadd_ps(y, _mm256_loadu_ps(b + ldb + 8), o1);
    }
    if (k < K) {
        const float *b = B + k * ldb;
        __m256 x = _mm256_broadcast_ss(A + k * csa);
        e0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), e0);
        e1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), e1);
    }
    const __m256 va = _mm256_set1_ps(alpha);
    _mm256_storeu_ps(C, _mm256_mul_ps(va, _mm256_add_ps(e0, o0)));
    _mm256_storeu_ps(C + 8, _mm256_mul_ps(va, _mm256_add_ps(e1, o1)));
}

/* 8-column kernels; `mask` selects the valid columns when fewer than 8 remain
 * (masked loads never touch the other columns, masked stores never write
 * them: neighbouring columns belong to other heads, i.e. other threads). */
#define ATTN_LD8(p) (masked ? _mm256_maskload_ps((p), mask) : _mm256_loadu_ps(p))
#define ATTN_ST8(p, x) do { if (masked) _mm256_maskstore_ps((p), mask, (x)); else _mm256_storeu_ps((p), (x)); } while (0)

ATTN_AVX2 static void attn_mk_8x8(float *C, int64_t ldc, const float *A, int64_t rsa, int64_t csa,
                                  const float *B, int64_t ldb, int64_t K, float alpha, __m256i mask, int masked) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (int64_t k = 0; k < K; k++) {
        const __m256 b = ATTN_LD8(B + k * ldb);
        const float *a = A + k * csa;
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), b, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + rsa), b, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * rsa), b, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * rsa), b, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4 * rsa), b, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5 * rsa), b, c5);
        c6 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 6 * rsa), b, c6);
        c7 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 7 * rsa), b, c7);
    }
    const __m256 va = _mm256_set1_ps(alpha);
    ATTN_ST8(C, _mm256_mul_ps(va, c0)); ATTN_ST8(C + ldc, _mm256_mul_ps(va, c1));
    ATTN_ST8(C + 2 * ldc, _mm256_mul_ps(va, c2)); ATTN_ST8(C + 3 * ldc, _mm256_mul_ps(va, c3));
    ATTN_ST8(C + 4 * ldc, _mm256_mul_ps(va, c4)); ATTN_ST8(C + 5 * ldc, _mm256_mul_ps(va, c5));
    ATTN_ST8(C + 6 * ldc, _mm256_mul_ps(va, c6)); ATTN_ST8(C + 7 * ldc, _mm256_mul_ps(va, c7));
}

ATTN_AVX2 static void attn_mk_1x8(float *C, const float *A, int64_t csa, const float *B, int64_t ldb, int64_t K,
                                  float alpha, __m256i mask, int masked) {
    __m256 e = _mm256_setzero_ps(), o = e;
    int64_t k = 0;
    for (; k + 1 < K; k += 2) {
        e = _mm256_fmadd_ps(_mm256_broadcast_ss(A + k * csa), ATTN_LD8(B + k * ldb), e);
        o = _mm256_fmadd_ps(_mm256_broadcast_ss(A + (k + 1) * csa), ATTN_LD8(B + (k + 1) * ldb), o);
    }
    if (k < K) e = _mm256_fmadd_ps(_mm256_broadcast_ss(A + k * csa), ATTN_LD8(B + k * ldb), e);
    ATTN_ST8(C, _mm256_mul_ps(_mm256_set1_ps(alpha), _mm256_add_ps(e, o)));
}
#undef ATTN_LD8
#undef ATTN_ST8

/* Lanes 0..w-1 set (w in 0..8). */
ATTN_AVX2 static inline __m256i attn_lanes_below(int64_t w) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), idx);
}

/* C [M][N] = alpha * A(M x K) B(K x N); see the micro-kernels for the layouts. */
ATTN_AVX2 static void attn_gemm(float *C, int64_t ldc, const float *A, int64_t rsa, int64_t csa,
                                const float *B, int64_t ldb, int64_t M, int64_t N, int64_t K, float alpha) {
    int64_t n = 0;
    for (; n + 16 <= N; n += 16) {
        int64_t m = 0;
        for (; m + 4 <= M; m += 4) attn_mk_4x16(C + m * ldc + n, ldc, A + m * rsa, rsa, csa, B + n, ldb, K, alpha);
        for (; m < M; m++) attn_mk_1x16(C + m * ldc + n, A + m * rsa, csa, B + n, ldb, K, alpha);
    }
    for (; n < N; n += 8) {
        const int64_t w = N - n < 8 ? N - n : 8;
        const __m256i mask = attn_lanes_below(w);
        const int masked = w < 8;
        int64_t m = 0;
        for (; m + 8 <= M; m += 8)
            attn_mk_8x8(C + m * ldc + n, ldc, A + m * rsa, rsa, csa, B + n, ldb, K, alpha, mask, masked);
        for (; m < M; m++) attn_mk_1x8(C + m * ldc + n, A + m * rsa, csa, B + n, ldb, K, alpha, mask, masked);
    }
}

ATTN_AVX2 static inline float attn_hmax8(__m256 x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
ATTN_AVX2 static inline float attn_hsum8(__m256 x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* attn_exp on 8 lanes (same reduction and polynomial, with FMAs). */
ATTN_AVX2 static inline __m256 attn_exp8(__m256 x) {
    const __m256i lo = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ));
    /* max/min return their second operand on NaN: NaN propagates. */
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.0f), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ATTN_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(ATTN_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    e = _mm256_andnot_si256(lo, e); /* +0 below -87 (and for -inf) */
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* log(x) on 8 lanes for x in [1, 2^126] (softmax sums lie in [1, S]): x =
 * 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(t), t = (m-1)/(m+1),
 * |t| < 0.172, odd series to t^9: relative error below 1e-7. NaN propagates.
 * (logf per row was 5% of the forward.) */
ATTN_AVX2 static inline __m256 attn_log8(__m256 x) {
    const __m256i xi = _mm256_castps_si256(x);
    /* Split so the mantissa lands in [sqrt(1/2), sqrt(2)): bias the bits by
     * (1 - sqrt(1/2)) in mantissa units before taking the exponent. */
    const __m256i off = _mm256_set1_epi32(0x3F3504F3); /* bits of sqrt(1/2) */
    const __m256i d = _mm256_sub_epi32(xi, off);
    const __m256i e = _mm256_srai_epi32(d, 23);
    const __m256 m = _mm256_castsi256_ps(_mm256_sub_epi32(xi, _mm256_slli_epi32(e, 23)));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 t = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
    const __m256 t2 = _mm256_mul_ps(t, t);
    __m256 p = _mm256_set1_ps(2.0f / 9.0f);
    p = _mm256_fmadd_ps(p, t2, _mm256_set1_ps(2.0f / 7.0f));
    p = _mm256_fmadd_ps(p, t2, _mm256_set1_ps(2.0f / 5.0f));
    p = _mm256_fmadd_ps(p, t2, _mm256_set1_ps(2.0f / 3.0f));
    p = _mm256_fmadd_ps(p, t2, _mm256_set1_ps(2.0f));
    const __m256 lm = _mm256_mul_ps(p, t);
    const __m256 r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(e), _mm256_set1_ps(0.693147180559945309f), lm);
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* 32x32 -> 64-bit products of 8 lanes, split into high and low 32-bit halves. */
ATTN_AVX2 static inline void attn_mulhilo8(__m256i a, __m256i m, __m256i *hi, __m256i *lo) {
    const __m256i pe = _mm256_mul_epu32(a, m);                        /* lanes 0,2,4,6 */
    const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m); /* lanes 1,3,5,7 */
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
}

/* attn_philox_words for 8 blocks per step; writes round_up(nblk, 8) blocks. */
ATTN_AVX2 static void attn_philox_words_avx2(uint32_t *w, uint64_t seed, uint64_t blk0, int64_t nblk) {
    const __m256i m0 = _mm256_set1_epi32((int)ATTN_PHILOX_M0), m1 = _mm256_set1_epi32((int)ATTN_PHILOX_M1);
    const __m256i s2 = _mm256_set1_epi32((int)(uint32_t)HM_STREAM_DROPOUT);
    const __m256i s3 = _mm256_set1_epi32((int)(uint32_t)((uint64_t)HM_STREAM_DROPOUT >> 32));
    for (int64_t t = 0; t < nblk; t += 8) {
        uint32_t clo[8], chi[8];
        for (int l = 0; l < 8; l++) {
            uint64_t blk = blk0 + (uint64_t)(t + l);
            clo[l] = (uint32_t)blk;
            chi[l] = (uint32_t)(blk >> 32);
        }
        __m256i c0 = _mm256_loadu_si256((const __m256i *)clo), c1 = _mm256_loadu_si256((const __m256i *)chi);
        __m256i c2 = s2, c3 = s3;
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        for (int round = 0; round < 10; round++) {
            __m256i hi0, lo0, hi1, lo1;
            attn_mulhilo8(c0, m0, &hi0, &lo0);
            attn_mulhilo8(c2, m1, &hi1, &lo1);
            c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
            c1 = lo1;
            c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
            c3 = lo0;
            k0 += ATTN_PHILOX_W0;
            k1 += ATTN_PHILOX_W1;
        }
        /* 4 x 8 (word, block) -> block-major: w[4 * block + word]. */
        const __m256i a = _mm256_unpacklo_epi32(c0, c1), b = _mm256_unpackhi_epi32(c0, c1);
        const __m256i c = _mm256_unpacklo_epi32(c2, c3), d = _mm256_unpackhi_epi32(c2, c3);
        const __m256i r0 = _mm256_unpacklo_epi64(a, c), r1 = _mm256_unpackhi_epi64(a, c); /* blocks 0,4 / 1,5 */
        const __m256i r2 = _mm256_unpacklo_epi64(b, d), r3 = _mm256_unpackhi_epi64(b, d); /* blocks 2,6 / 3,7 */
        __m256i *o = (__m256i *)(w + 4 * t);
        _mm256_storeu_si256(o, _mm256_permute2x128_si256(r0, r1, 0x20));
        _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(r2, r3, 0x20));
        _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(r0, r1, 0x31));
        _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(r2, r3, 0x31));
    }
}

/* Masks score row i of the tile in place (padded columns count as dead) and
 * returns its maximum. Same masking rules as attn_score_row. */
ATTN_AVX2 static float attn_mask_row_avx2(const attn_problem *P, const attn_ws *ws, float *s, int64_t bh,
                                          int64_t i) {
    const int64_t S = P->S, Sp = P->Sp, L = P->L;
    const int64_t slab = P->mask_per_head ? bh * L * S : 0;
    const float *fm = P->fmask ? P->fmask + slab + i * S : NULL;
    const uint8_t *bm = P->bmask ? P->bmask + slab + i * S : NULL;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* Causal: key j dead iff j > i; i >= Sp masks nothing (also keeps i in int). */
    const __m256i vi = _mm256_set1_epi32((int)(i < Sp ? i : Sp));
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    for (int64_t j0 = 0; j0 < Sp; j0 += 8) {
        const int64_t w = S - j0; /* valid lanes, >= 1 */
        __m256 x = _mm256_loadu_ps(s + j0);
        __m256i dead = _mm256_loadu_si256((const __m256i *)(ws->kdead + j0));
        if (fm) x = _mm256_add_ps(x, w >= 8 ? _mm256_loadu_ps(fm + j0) : _mm256_maskload_ps(fm + j0, attn_lanes_below(w)));
        if (bm) {
            uint64_t bytes = 0;
            memcpy(&bytes, bm + j0, (size_t)(w >= 8 ? 8 : w));
            const __m256i b32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)bytes));
            dead = _mm256_or_si256(dead, _mm256_andnot_si256(_mm256_cmpeq_epi32(b32, _mm256_setzero_si256()),
                                                             _mm256_set1_epi32(-1)));
        }
        if (P->causal)
            dead = _mm256_or_si256(dead, _mm256_cmpgt_epi32(_mm256_add_epi32(_mm256_set1_epi32((int)j0), lane), vi));
        x = _mm256_blendv_ps(x, ninf, _mm256_castsi256_ps(dead));
        _mm256_storeu_ps(s + j0, x);
        m = _mm256_max_ps(m, x);
    }
    return attn_hmax8(m);
}

/* Row i's dropout multipliers, 8 at a time, multiplied into the rows x (and
 * y if not NULL). Regenerates the group's words at the group's first row. */
ATTN_AVX2 static void attn_dropout_row_avx2(const attn_problem *P, attn_ws *ws, int64_t bh, int64_t i,
                                            float *x, float *y) {
    const int64_t L = P->L, S = P->S, Sp = P->Sp, grp = P->grp;
    const int64_t i0 = i - i % grp;
    const uint64_t g0 = attn_group_first_counter(P, bh, i0);
    if (i == i0) {
        int64_t rows = L - i0 < grp ? L - i0 : grp;
        uint64_t last = g0 + (uint64_t)(rows * S) - 1;
        attn_philox_words_avx2(ws->words, P->seed, g0 >> 2, (int64_t)((last >> 2) - (g0 >> 2) + 1));
    }
    const uint32_t *w = ws->words + (g0 & 3) + (i - i0) * S;
    /* Unsigned w >= thresh as a signed compare after flipping the sign bits. */
    const __m256i flip = _mm256_set1_epi32((int)0x80000000u);
    const __m256i th = _mm256_xor_si256(_mm256_set1_epi32((int)P->thresh), flip);
    const __m256 ks = _mm256_set1_ps(P->keep_scale);
    for (int64_t j0 = 0; j0 < Sp; j0 += 8) {
        /* Lanes past S read the next row's (or spare) words: harmless, they
         * multiply probabilities that are exactly 0. */
        const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + j0)), flip);
        const __m256 z = _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(th, wv)), ks);
        _mm256_storeu_ps(x + j0, _mm256_mul_ps(_mm256_loadu_ps(x + j0), z));
        if (y) _mm256_storeu_ps(y + j0, _mm256_mul_ps(_mm256_loadu_ps(y + j0), z));
    }
}

/* attn_transpose with 8 x 8 blocks in registers (the scalar version is a
 * quarter of the task's time at D = 16). */
ATTN_AVX2 static void attn_transpose_avx2(float *restrict dst, const float *restrict src, int64_t n, int64_t w,
                                          int64_t D, int64_t E) {
    int64_t j0 = 0;
    for (; j0 + 8 <= n; j0 += 8) {
        int64_t d0 = 0;
        for (; d0 + 8 <= D; d0 += 8) {
            const float *s = src + j0 * E + d0;
            const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + E);
            const __m256 r2 = _mm256_loadu_ps(s + 2 * E), r3 = _mm256_loadu_ps(s + 3 * E);
            const __m256 r4 = _mm256_loadu_ps(s + 4 * E), r5 = _mm256_loadu_ps(s + 5 * E);
            const __m256 r6 = _mm256_loadu_ps(s + 6 * E), r7 = _mm256_loadu_ps(s + 7 * E);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *o = dst + d0 * w + j0;
            _mm256_storeu_ps(o, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(o + w, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(o + 2 * w, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(o + 3 * w, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(o + 4 * w, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(o + 5 * w, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(o + 6 * w, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(o + 7 * w, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int64_t j = j0; j < j0 + 8; j++)
            for (int64_t d = d0; d < D; d++) dst[d * w + j] = src[j * E + d];
    }
    for (int64_t j = j0; j < n; j++)
        for (int64_t d = 0; d < D; d++) dst[d * w + j] = src[j * E + d];
    for (int64_t d = 0; d < D; d++)
        for (int64_t j = n; j < w; j++) dst[d * w + j] = 0.0f;
}

/* Forward of one (b, h):  S = scale Q K^T (GEMM), masks + softmax per row,
 * out = P V (GEMM). */
ATTN_AVX2 static void attn_forward_task_avx2(const attn_problem *P, attn_ws *ws, float *out, float *probs,
                                             float *lse, int64_t bh) {
    const int64_t H = P->H, L = P->L, S = P->S, Sp = P->Sp, D = P->D, E = P->E;
    const int64_t sq = P->sq, sk = P->sk, sv = P->sv;
    const int64_t b = bh / H, h = bh % H;
    attn_transpose_avx2(ws->kt, P->k + b * S * sk + h * D, S, Sp, D, sk);
    attn_kdead_setup(P, ws, b, Sp);
    float *sc = ws->s;
    attn_gemm(sc, Sp, P->q + b * L * sq + h * D, sq, 1, ws->kt, Sp, L, Sp, D, P->scale);
    const int64_t ntail = S - (Sp - 8); /* valid lanes of the last chunk */
    float *rmax = ws->z, *rsum = ws->z + L; /* lse = rmax + log(rsum), 8 rows at a time below */
    /* Row stage in three passes over the tile: masks and maxima, exponentials
     * and sums, normalisation (+ probabilities out, dropout). */
    for (int64_t i = 0; i < L; i++) rmax[i] = attn_mask_row_avx2(P, ws, sc + i * Sp, bh, i);
    for (int64_t i = 0; i < L; i++) {
        float *s = sc + i * Sp;
        if (rmax[i] == -INFINITY) {
            /* Fully masked row: defined as zero attention (see attention.h). */
            memset(s, 0, (size_t)Sp * sizeof(float));
            rsum[i] = 1.0f;
            continue;
        }
        const __m256 vm = _mm256_set1_ps(rmax[i]);
        __m256 vs = _mm256_setzero_ps();
        for (int64_t j0 = 0; j0 < Sp; j0 += 8) {
            const __m256 e = attn_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j0), vm));
            _mm256_storeu_ps(s + j0, e);
            vs = _mm256_add_ps(vs, e);
        }
        rsum[i] = attn_hsum8(vs);
    }
    for (int64_t i = 0; i < L; i++) {
        float *s = sc + i * Sp;
        float *pr = probs ? probs + (bh * L + i) * S : NULL;
        const __m256 inv = _mm256_set1_ps(1.0f / rsum[i]); /* masked rows: 0 * 1 */
        for (int64_t j0 = 0; j0 < Sp; j0 += 8) {
            const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(s + j0), inv);
            _mm256_storeu_ps(s + j0, p);
            if (pr) {
                if (j0 + 8 <= S) _mm256_storeu_ps(pr + j0, p);
                else _mm256_maskstore_ps(pr + j0, attn_lanes_below(ntail), p);
            }
        }
        /* In row order: each row group's words are generated at its first row. */
        if (P->dropout) attn_dropout_row_avx2(P, ws, bh, i, s, NULL);
    }
    float *lr = lse + bh * L;
    int64_t i = 0;
    for (; i + 8 <= L; i += 8)
        _mm256_storeu_ps(lr + i, _mm256_add_ps(_mm256_loadu_ps(rmax + i), attn_log8(_mm256_loadu_ps(rsum + i))));
    for (; i < L; i++) lr[i] = rmax[i] + logf(rsum[i]); /* -inf + 0 for masked rows */
    attn_gemm(out + b * L * E + h * D, E, sc, Sp, 1, P->v + b * S * sv + h * D, sv, L, D, S, 1.0f);
}

/* Backward of one (b, h) as GEMMs over the tile (same formulas as the
 * portable path):  S = scale Q K^T, P = exp(S - lse);  dPz = dO V^T;
 * dP = z dPz;  dS = scale P (dP - rowsum(P dP));  dQ = dS K;  dK = dS^T Q;
 * dV = (P z)^T dO. dq, dk and dv columns of this head are overwritten. */
ATTN_AVX2 static void attn_backward_task_avx2(const attn_problem *P, attn_ws *ws, float *dq, float *dk, float *dv,
                                              const float *dout, const float *lse, int64_t bh) {
    const int64_t H = P->H, L = P->L, S = P->S, Sp = P->Sp, D = P->D, E = P->E;
    const int64_t sq = P->sq, sk = P->sk, sv = P->sv;
    const int64_t b = bh / H, h = bh % H;
    attn_transpose_avx2(ws->kt, P->k + b * S * sk + h * D, S, Sp, D, sk);
    attn_transpose_avx2(ws->vt, P->v + b * S * sv + h * D, S, Sp, D, sv);
    attn_kdead_setup(P, ws, b, Sp);
    const float *qb = P->q + b * L * sq + h * D, *kb = P->k + b * S * sk + h * D;
    const float *gob = dout + b * L * E + h * D;
    float *sc = ws->s, *pz = ws->p, *dp = ws->dp;
    attn_gemm(sc, Sp, qb, sq, 1, ws->kt, Sp, L, Sp, D, P->scale);
    attn_gemm(dp, Sp, gob, E, 1, ws->vt, Sp, L, Sp, D, 1.0f);
    const __m256 vscale = _mm256_set1_ps(P->scale);
    for (int64_t i = 0; i < L; i++) {
        float *s = sc + i * Sp, *g = dp + i * Sp, *pzr = pz + i * Sp;
        const float li = lse[bh * L + i];
        if (li == -INFINITY) {
            memset(s, 0, (size_t)Sp * sizeof(float));
            memset(g, 0, (size_t)Sp * sizeof(float));
            if (P->dropout) {
                memset(pzr, 0, (size_t)Sp * sizeof(float));
                attn_dropout_row_avx2(P, ws, bh, i, pzr, NULL); /* keeps the group's words in step */
            }
            continue;
        }
        attn_mask_row_avx2(P, ws, s, bh, i);
        const __m256 vl = _mm256_set1_ps(li);
        for (int64_t j0 = 0; j0 < Sp; j0 += 8) {
            const __m256 p = attn_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j0), vl));
            _mm256_storeu_ps(s + j0, p);
            if (P->dropout) _mm256_storeu_ps(pzr + j0, p);
        }
        if (P->dropout) attn_dropout_row_avx2(P, ws, bh, i, pzr, g); /* pz = p z, dP = z dPz */
        __m256 vd = _mm256_setzero_ps();
        for (int64_t j0 = 0; j0 < Sp; j0 += 8)
            vd = _mm256_fmadd_ps(_mm256_loadu_ps(s + j0), _mm256_loadu_ps(g + j0), vd);
        const __m256 delta = _mm256_set1_ps(attn_hsum8(vd));
        for (int64_t j0 = 0; j0 < Sp; j0 += 8) {
            const __m256 p = _mm256_loadu_ps(s + j0);
            const __m256 ds = _mm256_mul_ps(_mm256_mul_ps(vscale, p), _mm256_sub_ps(_mm256_loadu_ps(g + j0), delta));
            _mm256_storeu_ps(g + j0, ds);
        }
    }
    const float *pw = P->dropout ? pz : sc;
    attn_gemm(dq + b * L * sq + h * D, sq, dp, Sp, 1, kb, sk, L, D, S, 1.0f);
    attn_gemm(dk + b * S * sk + h * D, sk, dp, 1, Sp, qb, sq, S, D, L, 1.0f);
    attn_gemm(dv + b * S * sv + h * D, sv, pw, 1, Sp, gob, E, S, D, L, 1.0f);
}

static int attn_cpu_has_avx2(void) {
#if defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
}
#endif /* ATTN_HAVE_AVX2 */

/* ======================= drivers ======================= */

static void attn_problem_init(attn_problem *P, const float *q, int64_t ldq, const float *k, int64_t ldk,
                              const float *v, int64_t ldv, const uint8_t *kpm, const uint8_t *bmask, const float *fmask,
                              int mask_per_head, int causal, int64_t B, int64_t H, int64_t L, int64_t S,
                              int64_t D, float scale, float dropout_p, uint64_t seed, uint64_t offset) {
    P->q = q; P->k = k; P->v = v;
    P->kpm = kpm; P->bmask = bmask; P->fmask = fmask;
    P->mask_per_head = mask_per_head; P->causal = causal;
    P->B = B; P->H = H; P->L = L; P->S = S; P->D = D; P->E = H * D;
    P->sq = ldq; P->sk = ldk; P->sv = ldv;
    P->Sp = (S + 7) / 8 * 8;
    P->scale = scale;
    P->seed = seed; P->offset = offset;
    P->grp = attn_rng_group_rows(L, S);
    P->dropout = dropout_p > 0.0f && S > 0; /* no keys: nothing to drop */
    if (dropout_p >= 1.0f) {
        P->keep_scale = 0.0f;
        P->thresh = 0u;
    } else if (P->dropout) {
        P->keep_scale = 1.0f / (1.0f - dropout_p);
        /* Same threshold as hm_rand_dropout_mask: p * 2^32 in double, truncated;
         * for float p < 1 it is below 2^32. */
        P->thresh = (uint32_t)(uint64_t)((double)dropout_p * 4294967296.0);
    } else {
        P->keep_scale = 1.0f;
        P->thresh = 0u;
    }
}

/* Runs forward (backward == 0) or backward tasks over all (b, h) pairs. */
static int attn_run(const attn_problem *P, int backward, float *o0, float *o1, float *o2,
                    const float *dout, const float *lse_in) {
    const int64_t BH = P->B * P->H;
    if (BH <= 0) return 0;
    int avx2 = 0;
#if ATTN_HAVE_AVX2
    avx2 = attn_cpu_has_avx2();
#endif
    size_t nf, nu;
    attn_ws_sizes(P, avx2, &nf, &nu);
    const int on_heap = nf > ATTN_FCAP || nu > ATTN_UCAP;
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    float *hf = NULL;
    uint32_t *hu = NULL;
    if (on_heap) {
        hf = (float *)malloc(nf * (size_t)nthreads * sizeof(float));
        hu = (uint32_t *)malloc(nu * (size_t)nthreads * sizeof(uint32_t));
        if (!hf || !hu) {
            free(hf);
            free(hu);
            return -1;
        }
    }
    /* Fork/join costs ~3 us; a 16x16x16 task well under 1 us: only split real batches. */
    const int64_t work = BH * P->L * (P->S > 0 ? P->S : 1) * (P->D > 0 ? P->D : 1);
    #pragma omp parallel if (work > 65536)
    {
        _Alignas(64) float fst[ATTN_FCAP];
        _Alignas(64) uint32_t ust[ATTN_UCAP];
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        attn_ws ws;
        if (on_heap) attn_ws_carve(P, avx2, &ws, hf + nf * (size_t)tid, hu + nu * (size_t)tid);
        else attn_ws_carve(P, avx2, &ws, fst, ust);
        #pragma omp for schedule(static)
        for (int64_t bh = 0; bh < BH; bh++) {
#if ATTN_HAVE_AVX2
            if (avx2) {
                if (backward) attn_backward_task_avx2(P, &ws, o0, o1, o2, dout, lse_in, bh);
                else attn_forward_task_avx2(P, &ws, o0, o1, o2, bh);
                continue;
            }
#endif
            if (backward) attn_backward_task(P, &ws, o0, o1, o2, dout, lse_in, bh);
            else attn_forward_task(P, &ws, o0, o1, o2, bh);
        }
    }
    free(hf);
    free(hu);
    return 0;
}

int hm_attention_forward_strided(float *out, float *probs, float *lse,
                                 const float *q, int64_t ldq, const float *k, int64_t ldk,
                                 const float *v, int64_t ldv,
                                 const uint8_t *key_padding_mask, const uint8_t *bool_mask,
                                 const float *float_mask, int mask_per_head, int causal,
                                 int64_t B, int64_t H, int64_t L, int64_t S, int64_t D,
                                 float scale, float dropout_p, uint64_t seed, uint64_t offset) {
    attn_problem P;
    attn_problem_init(&P, q, ldq, k, ldk, v, ldv, key_padding_mask, bool_mask, float_mask, mask_per_head, causal,
                      B, H, L, S, D, scale, dropout_p, seed, offset);
    return attn_run(&P, 0, out, probs, lse, NULL, NULL);
}

int hm_attention_backward_strided(float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, int64_t ldq, const float *k, int64_t ldk,
                                  const float *v, int64_t ldv, const float *lse,
                                  const uint8_t *key_padding_mask, const uint8_t *bool_mask,
                                  const float *float_mask, int mask_per_head, int causal,
                                  int64_t B, int64_t H, int64_t L, int64_t S, int64_t D,
                                  float scale, float dropout_p, uint64_t seed, uint64_t offset) {
    attn_problem P;
    attn_problem_init(&P, q, ldq, k, ldk, v, ldv, key_padding_mask, bool_mask, float_mask, mask_per_head, causal,
                      B, H, L, S, D, scale, dropout_p, seed, offset);
    return attn_run(&P, 1, dq, dk, dv, dout, lse);
}

int hm_attention_forward(float *out, float *probs, float *lse,
                         const float *q, const float *k, const float *v,
                         const uint8_t *key_padding_mask, const uint8_t *bool_mask,
                         const float *float_mask, int mask_per_head, int causal,
                         int64_t B, int64_t H, int64_t L, int64_t S, int64_t D,
                         float scale, float dropout_p, uint64_t seed, uint64_t offset) {
    const int64_t E = H * D;
    return hm_attention_forward_strided(out, probs, lse, q, E, k, E, v, E, key_padding_mask, bool_mask, float_mask,
                                        mask_per_head, causal, B, H, L, S, D, scale, dropout_p, seed, offset);
}

int hm_attention_backward(float *dq, float *dk, float *dv,
                          const float *dout, const float *q, const float *k, const float *v,
                          const float *lse,
                          const uint8_t *key_padding_mask, const uint8_t *bool_mask,
                          const float *float_mask, int mask_per_head, int causal,
                          int64_t B, int64_t H, int64_t L, int64_t S, int64_t D,
                          float scale, float dropout_p, uint64_t seed, uint64_t offset) {
    const int64_t E = H * D;
    return hm_attention_backward_strided(dq, dk, dv, dout, q, E, k, E, v, E, lse, key_padding_mask, bool_mask,
                                         float_mask, mask_per_head, causal, B, H, L, S, D, scale, dropout_p, seed,
                                         offset);
}
