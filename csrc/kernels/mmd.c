/*
 * Tiled MMD: see mmd.h for the estimators and kernels.
 *
 * How the work is laid out, and why:
 *
 * - Pool the samples, z = [x; y] (L = N + M points), and write the MMD as one
 *   symmetric sum over ordered pairs a != b of W(a, b) K(z_a, z_b), with
 *   W = 1/N^2 (or 1/(N(N-1))) inside x, 1/M^2 (1/(M(M-1))) inside y and -1/(NM)
 *   across, plus the diagonal terms of the biased estimator. By symmetry only
 *   the pairs a < b are evaluated (L^2 / 2 pairs instead of L^2), each counted
 *   twice, and one evaluation of K and dK gives the value and the gradient with
 *   respect to both points.
 *
 * - z is cut into tiles that never straddle x and y, so every tile pair has a
 *   single weight W. A task is one tile pair (I, J), I <= J. Its pair terms are
 *   computed in registers (one row of I against a contiguous copy of J) and
 *   reduced on the spot; nothing of size N x M is ever stored.
 *
 * - Determinism without atomics or per-thread gradient copies: the tile pairs
 *   I < J are scheduled as a round-robin tournament (the circle method). In one
 *   round every tile appears in at most one pair, so the tasks of a round touch
 *   disjoint gradient rows and disjoint forward accumulators and can run on any
 *   thread; rounds run one after the other. Every accumulator therefore receives
 *   its contributions in round order, which depends on the tile geometry only
 *   (itself a function of N, M, D), never on the number of threads. The pairs
 *   inside a tile (I, I) form a last round.
 *
 * - Precision: pair terms in float (the course computes in float32); sums over
 *   pairs accumulate in double (per row, then per tile, then over tiles in a
 *   fixed order). The gradient of a point is accumulated in float, one addition
 *   per round of a tile part that was itself summed first.
 *
 * - Speed: the course's hot case is eight 1-D features with the 6-bandwidth
 *   multiscale kernel, a division per bandwidth per pair. Bandwidths are taken in
 *   pairs, ca/(ca+r) + cb/(cb+r) = (ca pb + cb pa)/(pa pb), one division for two,
 *   and the same reciprocal gives the derivative. Inner loops are written so the
 *   compiler vectorises them (exp included), and on x86-64 they are built twice,
 *   baseline and AVX2 + FMA, picked at run time. Measured on the Zen 3 machine
 *   with AVX2: ~0.6 ns per pair forward, ~0.95 ns per pair for the value and the
 *   gradient together, per core; the loops are bound by the latency of the
 *   division / exp chain against the out-of-order window rather than by
 *   arithmetic throughput (splitting the divisions differently, unrolling and
 *   two rows per sweep all measured within a few percent).
 */
#include "mmd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Runtime dispatch on x86-64: the hot loops are compiled twice, for the baseline
 * ISA and for AVX2 + FMA, and the second is used when the CPU has it (the build
 * need not pass -march). FMAs are written explicitly (fmaf) where they help,
 * because ISO C mode does not contract a*b+c; they are only emitted where the
 * target has the instruction, never as a libm call. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(__AVX2__)
#define HM_MMD_DISPATCH 1
#define HM_MMD_V3 __attribute__((target("avx2,fma")))
#else
#define HM_MMD_DISPATCH 0
#endif
#if defined(__FMA__) || defined(__aarch64__)
#define HM_MMD_BASE_FMA 1
#else
#define HM_MMD_BASE_FMA 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define HM_MMD_INLINE static inline __attribute__((always_inline))
#else
#define HM_MMD_INLINE static inline
#endif

/* a * b + c, fused when FMA is a compile-time constant 1 */
#define HM_FMA(FMA, a, b, c) ((FMA) ? fmaf((a), (b), (c)) : (a) * (b) + (c))

/* Internal kernel kinds: RBF and Gaussian share the exponential. */
enum { KT_MS = 0, KT_EXP = 1, KT_POLY = 2 };

/* Bandwidths per specialised inner loop; longer lists run in chunks. */
#define HM_MMD_CHUNK 6
/* 1-D tiles: at least T1_MIN points (long rows amortise the per-row work), at
 * most T1_MAX (stack buffers), at most TILES_MAX tiles per sample otherwise.
 * D-dimensional tiles: at least TND_MIN points, walked in micro-blocks of RB rows
 * x CB columns whose r2 (or a.b) stays in L1. Fewer tiles mean fewer rounds;
 * 256-point tiles still give 4 tasks per round for N = M = 1024. */
#define T1_MIN 256
#define T1_MAX 512
#define TND_MIN 256
#define TILES_MAX 64
#define RB 32
#define CB 128

/* ------------------------------------------------------------------------- */
static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* exp(x) for x <= 0 in float, written so that it vectorises (libm's expf does
 * not without -ffast-math). Cody-Waite reduction x = n ln2 + f, |f| <= ln2/2,
 * degree-7 Taylor polynomial (truncation < 1e-8; measured max error 9.4e-8
 * relative over [-87, 0]), 2^n built in the exponent bits. Below -87 the result
 * is flushed to 0 so no denormal reaches the sums. The clamp and the flush are
 * done on the bit patterns: a float compare-and-select is not if-converted under
 * the default -ftrapping-math, and would stop the vectoriser. A NaN argument
 * still gives NaN (the final + (x - x)). */
HM_MMD_INLINE float hm_mmd_expf_nonpos(const int FMA, float x) {
    const uint32_t xb = f2u(x), lim = 0xC2AE0000u; /* -87.0f; larger bits = more negative */
    const uint32_t big = xb > lim ? 0xFFFFFFFFu : 0u;
    const float xc = u2f((xb & ~big) | (lim & big));
    /* 1.5 * 2^23: adding it rounds to an integer, which lands in the low bits */
    const float t = HM_FMA(FMA, xc, 1.44269504088896341f, 12582912.0f);
    const float n = t - 12582912.0f;
    float f = HM_FMA(FMA, n, -0.693359375f, xc); /* ln2 split: n * hi is exact */
    f = HM_FMA(FMA, n, 2.12194440e-4f, f);
    float p = 1.0f / 5040.0f;
    p = HM_FMA(FMA, p, f, 1.0f / 720.0f);
    p = HM_FMA(FMA, p, f, 1.0f / 120.0f);
    p = HM_FMA(FMA, p, f, 1.0f / 24.0f);
    p = HM_FMA(FMA, p, f, 1.0f / 6.0f);
    p = HM_FMA(FMA, p, f, 0.5f);
    p = HM_FMA(FMA, p, f, 1.0f);
    p = HM_FMA(FMA, p, f, 1.0f);
    const float scale = u2f((f2u(t) - 0x4B400000u + 127u) << 23); /* 2^n */
    const float e = u2f(f2u(p * scale) & ~big);
    return e + (x - x);
}

/* k(v) and dk/dv for one pair. v = r2 for the distance kernels, v = a.b for the
 * polynomial one. NB is a compile-time constant at every call site (chunk size,
 * or the degree for KT_POLY with 0 = runtime `deg`). k does not depend on GRAD,
 * so the forward and the fused forward + gradient give the same value. */
HM_MMD_INLINE void kern_eval(const int KT, const int NB, const int GRAD, const int FMA,
                             const float *cc, float invd, int deg, float v, float *k_out,
                             float *kp_out) {
    float k = 0.0f, kp = 0.0f;
    if (KT == KT_MS) {
        /* Two bandwidths per division: with pa = ca + r, pb = cb + r (ca = c^2),
         * ca/pa + cb/pb = (ca pb + cb pa) / (pa pb) and the derivative
         * -(ca/pa^2 + cb/pb^2) = -(ca pb pb + cb pa pa) / (pa pb)^2. */
#pragma GCC unroll 8
        for (int b = 0; b + 1 < NB; b += 2) {
            const float pa = cc[b] + v, pb = cc[b + 1] + v;
            const float inv = 1.0f / (pa * pb);
            const float A = cc[b] * pb, B = cc[b + 1] * pa;
            k = HM_FMA(FMA, A + B, inv, k);
            if (GRAD) {
                const float num = HM_FMA(FMA, A, pb, B * pa);
                kp = HM_FMA(FMA, -(num * inv), inv, kp);
            }
        }
        if (NB & 1) {
            const float u = 1.0f / (cc[NB - 1] + v);
            const float m = cc[NB - 1] * u;
            k += m;
            if (GRAD) kp = HM_FMA(FMA, -m, u, kp);
        }
    } else if (KT == KT_EXP) {
        /* cc[b] = -1/(2c): k = exp(cc r), dk/dr = cc k */
#pragma GCC unroll 8
        for (int b = 0; b < NB; b++) {
            const float e = hm_mmd_expf_nonpos(FMA, cc[b] * v);
            k += e;
            if (GRAD) kp = HM_FMA(FMA, cc[b], e, kp);
        }
    } else {
        const float s = HM_FMA(FMA, v, invd, 1.0f);
        const int p = NB > 0 ? NB : deg;
        float pw = 1.0f; /* s^(p-1) */
        if (NB > 0) {
#pragma GCC unroll 8
            for (int q = 1; q < NB; q++) pw *= s;
        } else {
            for (int q = 1; q < p; q++) pw *= s;
        }
        k = pw * s;
        kp = (float)p * pw;
    }
    *k_out = k;
    *kp_out = kp;
}

/* One pair of the 1-D loop: k, and the gradient term t (distance kernels:
 * dk/dr2 (a - b), the row and the column get +t and -t up to the weight; the
 * polynomial kernel: row term k'(s) b, column term k'(s) a). */
HM_MMD_INLINE void pair1d(const int KT, const int NB, const int GRAD, const int FMA,
                          const float *cc, float invd, int deg, float a, float b, float *k,
                          float *trow, float *tcol) {
    float kp;
    if (KT == KT_POLY) {
        kern_eval(KT, NB, GRAD, FMA, cc, invd, deg, a * b, k, &kp);
        *trow = kp * b;
        *tcol = kp * a;
    } else {
        const float d = a - b;
        kern_eval(KT, NB, GRAD, FMA, cc, invd, deg, d * d, k, &kp);
        *trow = kp * d;
        *tcol = *trow;
    }
}

/* Row a against columns zc[j0, j1). */
HM_MMD_INLINE double row1d(const int KT, const int NB, const int GRAD, const int FMA,
                           const float *cc, float invd, int deg, float a,
                           const float *restrict zc, int64_t j0, int64_t j1,
                           float *restrict cg, float *st_out) {
    double sk = 0.0;
    float st = 0.0f;
#pragma omp simd reduction(+ : sk, st)
    for (int64_t j = j0; j < j1; j++) {
        float k, tr, tc;
        pair1d(KT, NB, GRAD, FMA, cc, invd, deg, a, zc[j], &k, &tr, &tc);
        sk += (double)k;
        if (GRAD) {
            st += tr;
            cg[j] += tc;
        }
    }
    *st_out = st;
    return sk;
}

/* One-dimensional tile pair: rows zr[0, nr) against columns zc[0, nc) (contiguous
 * copies), only j > i when `tri` (then zr == zc). Returns the sum of k in double.
 * With GRAD, rowt[i] += sum_j trow_ij and cg[j] += sum_i tcol_ij; the caller
 * applies the weight. (Two rows per sweep, sharing the column loads, measured
 * only ~2% faster: the loop is bound by the latency of the division chain.) */
HM_MMD_INLINE double block1d(const int KT, const int NB, const int GRAD, const int FMA,
                             const float *c, float invd, int deg, const float *restrict zr,
                             int64_t nr, const float *restrict zc, int64_t nc, int tri,
                             float *restrict rowt, float *restrict cg) {
    float cc[HM_MMD_CHUNK];
    for (int b = 0; b < NB && b < HM_MMD_CHUNK; b++) cc[b] = c[b];
    double total = 0.0;
    for (int64_t i = 0; i < nr; i++) {
        float st;
        total += row1d(KT, NB, GRAD, FMA, cc, invd, deg, zr[i], zc, tri ? i + 1 : 0, nc, cg, &st);
        if (GRAD) rowt[i] += st;
    }
    return total;
}

/* D-dimensional micro-block row: k and dk/dv of precomputed v[j0, n); returns the
 * sum of k, adds dk/dv to kp[j]. */
HM_MMD_INLINE double evalrow(const int KT, const int NB, const int FMA, const float *c, float invd,
                             int deg, const float *restrict v, float *restrict kp, int64_t j0,
                             int64_t n) {
    float cc[HM_MMD_CHUNK];
    for (int b = 0; b < NB && b < HM_MMD_CHUNK; b++) cc[b] = c[b];
    double sk = 0.0;
#pragma omp simd reduction(+ : sk)
    for (int64_t j = j0; j < n; j++) {
        float k, d;
        kern_eval(KT, NB, 1, FMA, cc, invd, deg, v[j], &k, &d);
        kp[j] += d;
        sk += (double)k;
    }
    return sk;
}

/* D-dimensional helpers: v[i][j] += (a_i - b_j)^2 or a_i b_j for one coordinate,
 * and the gradient pass over one coordinate. */
HM_MMD_INLINE void nd_accum_impl(const int FMA, int poly, float *restrict v,
                                 const float *restrict xr, int64_t nr,
                                 const float *restrict xc, int64_t nc) {
    for (int64_t i = 0; i < nr; i++) {
        const float a = xr[i];
        float *vi = v + i * CB;
        if (poly) {
#pragma omp simd
            for (int64_t j = 0; j < nc; j++) vi[j] = HM_FMA(FMA, a, xc[j], vi[j]);
        } else {
#pragma omp simd
            for (int64_t j = 0; j < nc; j++) {
                const float d = a - xc[j];
                vi[j] = HM_FMA(FMA, d, d, vi[j]);
            }
        }
    }
}

HM_MMD_INLINE void nd_grad_impl(const int FMA, int poly, const float *restrict kp,
                                const float *restrict xr, int64_t nr,
                                const float *restrict xc, int64_t nc,
                                float *restrict rowt, float *restrict colt) {
    for (int64_t j = 0; j < nc; j++) colt[j] = 0.0f;
    for (int64_t i = 0; i < nr; i++) {
        const float a = xr[i];
        const float *w = kp + i * CB;
        float st = 0.0f;
        if (poly) {
#pragma omp simd reduction(+ : st)
            for (int64_t j = 0; j < nc; j++) {
                st = HM_FMA(FMA, w[j], xc[j], st);
                colt[j] = HM_FMA(FMA, w[j], a, colt[j]);
            }
        } else {
#pragma omp simd reduction(+ : st)
            for (int64_t j = 0; j < nc; j++) {
                const float t = w[j] * (a - xc[j]);
                st += t;
                colt[j] += t;
            }
        }
        rowt[i] = st;
    }
}

/* One specialisation per (kind, chunk size): the bandwidth loop is unrolled and
 * the coefficients broadcast once per row. SUFFIX/ATTR/FMA select the ISA. */
#define HM_MMD_SPEC(NAME, KT, NB, SUFFIX, ATTR, FMA)                                           \
    static ATTR double b1g_##NAME##SUFFIX(const float *c, float invd, int deg, const float *zr, \
                                          int64_t nr, const float *zc, int64_t nc, int tri,     \
                                          float *rowt, float *cg) {                             \
        return block1d(KT, NB, 1, FMA, c, invd, deg, zr, nr, zc, nc, tri, rowt, cg);           \
    }                                                                                          \
    static ATTR double b1f_##NAME##SUFFIX(const float *c, float invd, int deg, const float *zr, \
                                          int64_t nr, const float *zc, int64_t nc, int tri) {   \
        return block1d(KT, NB, 0, FMA, c, invd, deg, zr, nr, zc, nc, tri, NULL, NULL);         \
    }                                                                                          \
    static ATTR double ev_##NAME##SUFFIX(const float *c, float invd, int deg, const float *v,  \
                                         float *kp, int64_t j0, int64_t n) {                   \
        return evalrow(KT, NB, FMA, c, invd, deg, v, kp, j0, n);                               \
    }

#define HM_MMD_SPECS(SUFFIX, ATTR, FMA)                 \
    HM_MMD_SPEC(ms1, KT_MS, 1, SUFFIX, ATTR, FMA)       \
    HM_MMD_SPEC(ms2, KT_MS, 2, SUFFIX, ATTR, FMA)       \
    HM_MMD_SPEC(ms3, KT_MS, 3, SUFFIX, ATTR, FMA)       \
    HM_MMD_SPEC(ms4, KT_MS, 4, SUFFIX, ATTR, FMA)       \
    HM_MMD_SPEC(ms5, KT_MS, 5, SUFFIX, ATTR, FMA)       \
    HM_MMD_SPEC(ms6, KT_MS, 6, SUFFIX, ATTR, FMA)       \
    HM_MMD_SPEC(ex1, KT_EXP, 1, SUFFIX, ATTR, FMA)      \
    HM_MMD_SPEC(ex2, KT_EXP, 2, SUFFIX, ATTR, FMA)      \
    HM_MMD_SPEC(ex3, KT_EXP, 3, SUFFIX, ATTR, FMA)      \
    HM_MMD_SPEC(ex4, KT_EXP, 4, SUFFIX, ATTR, FMA)      \
    HM_MMD_SPEC(ex5, KT_EXP, 5, SUFFIX, ATTR, FMA)      \
    HM_MMD_SPEC(ex6, KT_EXP, 6, SUFFIX, ATTR, FMA)      \
    HM_MMD_SPEC(po1, KT_POLY, 1, SUFFIX, ATTR, FMA)     \
    HM_MMD_SPEC(po2, KT_POLY, 2, SUFFIX, ATTR, FMA)     \
    HM_MMD_SPEC(po3, KT_POLY, 3, SUFFIX, ATTR, FMA)     \
    HM_MMD_SPEC(po4, KT_POLY, 4, SUFFIX, ATTR, FMA)     \
    HM_MMD_SPEC(pon, KT_POLY, 0, SUFFIX, ATTR, FMA)     \
    static ATTR void nd_accum##SUFFIX(int poly, float *v, const float *xr, int64_t nr,         \
                                      const float *xc, int64_t nc) {                           \
        nd_accum_impl(FMA, poly, v, xr, nr, xc, nc);                                           \
    }                                                                                          \
    static ATTR void nd_grad##SUFFIX(int poly, const float *kp, const float *xr, int64_t nr,   \
                                     const float *xc, int64_t nc, float *rowt, float *colt) {  \
        nd_grad_impl(FMA, poly, kp, xr, nr, xc, nc, rowt, colt);                               \
    }

HM_MMD_SPECS(_base, , HM_MMD_BASE_FMA)
#if HM_MMD_DISPATCH
HM_MMD_SPECS(_v3, HM_MMD_V3, 1)
#endif

#define HM_MMD_SPEC_LIST(X) \
    X(0, ms1) X(1, ms2) X(2, ms3) X(3, ms4) X(4, ms5) X(5, ms6) X(6, ex1) X(7, ex2) X(8, ex3) \
    X(9, ex4) X(10, ex5) X(11, ex6) X(12, po1) X(13, po2) X(14, po3) X(15, po4) X(16, pon)

static int have_v3(void) {
#if HM_MMD_DISPATCH
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if HM_MMD_DISPATCH
#define HM_MMD_PICK(v3, CALL_V3, CALL_BASE) ((v3) ? (CALL_V3) : (CALL_BASE))
#else
#define HM_MMD_PICK(v3, CALL_V3, CALL_BASE) ((void)(v3), (CALL_BASE))
#endif

static double call_b1g(int v3, int spec, const float *c, float invd, int deg, const float *zr,
                       int64_t nr, const float *zc, int64_t nc, int tri, float *rowt, float *cg) {
    switch (spec) {
#define X(I, NAME)                                                                   \
    case I:                                                                          \
        return HM_MMD_PICK(v3, b1g_##NAME##_v3(c, invd, deg, zr, nr, zc, nc, tri, rowt, cg), \
                           b1g_##NAME##_base(c, invd, deg, zr, nr, zc, nc, tri, rowt, cg));
        HM_MMD_SPEC_LIST(X)
#undef X
    }
    return NAN;
}

static double call_b1f(int v3, int spec, const float *c, float invd, int deg, const float *zr,
                       int64_t nr, const float *zc, int64_t nc, int tri) {
    switch (spec) {
#define X(I, NAME)                                                                   \
    case I:                                                                          \
        return HM_MMD_PICK(v3, b1f_##NAME##_v3(c, invd, deg, zr, nr, zc, nc, tri),   \
                           b1f_##NAME##_base(c, invd, deg, zr, nr, zc, nc, tri));
        HM_MMD_SPEC_LIST(X)
#undef X
    }
    return NAN;
}

static double call_ev(int v3, int spec, const float *c, float invd, int deg, const float *v,
                      float *kp, int64_t j0, int64_t n) {
    switch (spec) {
#define X(I, NAME)                                                          \
    case I:                                                                 \
        return HM_MMD_PICK(v3, ev_##NAME##_v3(c, invd, deg, v, kp, j0, n),  \
                           ev_##NAME##_base(c, invd, deg, v, kp, j0, n));
        HM_MMD_SPEC_LIST(X)
#undef X
    }
    return NAN;
}

static void call_nd_accum(int v3, int poly, float *v, const float *xr, int64_t nr,
                          const float *xc, int64_t nc) {
#if HM_MMD_DISPATCH
    if (v3) {
        nd_accum_v3(poly, v, xr, nr, xc, nc);
        return;
    }
#endif
    (void)v3;
    nd_accum_base(poly, v, xr, nr, xc, nc);
}

static void call_nd_grad(int v3, int poly, const float *kp, const float *xr, int64_t nr,
                         const float *xc, int64_t nc, float *rowt, float *colt) {
#if HM_MMD_DISPATCH
    if (v3) {
        nd_grad_v3(poly, kp, xr, nr, xc, nc, rowt, colt);
        return;
    }
#endif
    (void)v3;
    nd_grad_base(poly, kp, xr, nr, xc, nc, rowt, colt);
}

/* ------------------------------------------------------------------------- */
/* Kernel parameters, prepared once per call. */
typedef struct {
    int spec, off, nb;
} chunk_t;

typedef struct {
    int kind, degree, nchunk, v3;
    float invd;
    float c[HM_MMD_MAX_BW];
    chunk_t chunk[HM_MMD_MAX_BW];
    double kself; /* k(a, a) of the distance kernels, evaluated as the pairs are */
} kparams;

static int prepare(kparams *kp, int kernel, const float *bw, int n_bw, int degree, int64_t D) {
    static const float ms_default[6] = {0.1f, 0.2f, 0.5f, 0.9f, 1.4f, 2.0f};
    static const float rbf_default[4] = {10.0f, 15.0f, 20.0f, 50.0f};
    memset(kp, 0, sizeof *kp);
    kp->v3 = have_v3();
    kp->invd = (float)(1.0 / (double)D);
    kp->degree = degree;
    if (kernel == HM_MMD_POLYNOMIAL) {
        if (degree < 1) return 0;
        kp->kind = KT_POLY;
        kp->nchunk = 1;
        kp->chunk[0].spec = degree <= 4 ? 11 + degree : 16;
        kp->chunk[0].nb = degree <= 4 ? degree : 0;
        return 1;
    }
    if (kernel == HM_MMD_MULTISCALE) {
        if (!bw) { bw = ms_default; n_bw = 6; }
    } else if (kernel == HM_MMD_RBF) {
        if (!bw) { bw = rbf_default; n_bw = 4; }
    } else if (kernel == HM_MMD_GAUSSIAN) {
        if (!bw || n_bw < 1) return 0;
        n_bw = 1;
    } else {
        return 0;
    }
    if (n_bw < 1 || n_bw > HM_MMD_MAX_BW) return 0;
    int paired = 1;
    for (int b = 0; b < n_bw; b++) {
        const double w = (double)bw[b];
        if (!(w > 0.0) || !isfinite(w)) return 0;
        if (kernel == HM_MMD_MULTISCALE) {
            kp->c[b] = (float)(w * w);
            /* the paired division forms (c1^2 + r)(c2^2 + r): keep it a normal
             * float at r = 0 and finite for any representable r2 */
            if (w * w < 1e-18 || w * w > 1e18) paired = 0;
        } else if (kernel == HM_MMD_RBF) {
            kp->c[b] = (float)(-1.0 / (2.0 * w));
        } else {
            kp->c[b] = (float)(-1.0 / (2.0 * w * w));
        }
    }
    kp->kind = kernel == HM_MMD_MULTISCALE ? KT_MS : KT_EXP;
    const int step = paired ? HM_MMD_CHUNK : 1;
    const float zero = 0.0f;
    for (int b = 0; b < n_bw; b += step) {
        const int nb = n_bw - b < step ? n_bw - b : step;
        chunk_t *ch = &kp->chunk[kp->nchunk++];
        ch->off = b;
        ch->nb = nb;
        ch->spec = (kp->kind == KT_MS ? 0 : 6) + nb - 1;
        /* k(a, a) through the very code that evaluates the pairs, so that the
         * biased MMD(x, x) cancels to double rounding */
        kp->kself += call_b1f(kp->v3, ch->spec, kp->c + b, 1.0f, 0, &zero, 1, &zero, 1, 0);
    }
    return 1;
}

/* ------------------------------------------------------------------------- */
/* One MMD problem: element (i, d) of x at x[i * sx + d] (the columns variant
 * uses sx = F, D = 1); gradients, when wanted, have the same layout. */
typedef struct {
    const float *x, *y;
    float *gx, *gy;
    double gscale;
} prob_t;

typedef struct {
    int64_t N, M, D, sx, sy;
    int nx, ny, nt, grad, unbiased;
    double W[2][2];
    const kparams *kp;
} geom_t;

typedef struct {
    const float *z;
    float *gz;
    int64_t start, len, s;
    int grp;
} tile_t;

/* Tile t of a sample of n points cut into k: [t n / k, (t + 1) n / k), lengths
 * differing by at most one, never empty. */
static void tile_of(const geom_t *g, const prob_t *p, int t, tile_t *o) {
    const int x = t < g->nx;
    const int64_t n = x ? g->N : g->M, k = x ? g->nx : g->ny, u = x ? t : t - g->nx;
    o->start = u * n / k;
    o->len = (u + 1) * n / k - o->start;
    o->z = x ? p->x : p->y;
    o->gz = x ? p->gx : p->gy;
    o->s = x ? g->sx : g->sy;
    o->grp = !x;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Tiles per sample: a function of the sizes only (never of the thread count),
 * since the tiling fixes the order of every accumulation. The longest tile has
 * ceil(n / k) points, at most T1_MAX in 1-D. */
static int64_t n_tiles(int64_t n, int64_t D) {
    if (D == 1) {
        int64_t k = ceil_div(n, T1_MIN);
        if (k > TILES_MAX) k = TILES_MAX;
        if (ceil_div(n, k) > T1_MAX) k = ceil_div(n, T1_MAX);
        return k;
    }
    int64_t k = ceil_div(n, TND_MIN);
    return k > TILES_MAX ? TILES_MAX : k;
}

static int setup_geom(geom_t *g, const kparams *kp, int64_t N, int64_t M, int64_t D, int64_t sx,
                      int64_t sy, int unbiased, int grad) {
    if (N < 1 || M < 1 || D < 1) return 0;
    if (unbiased && (N < 2 || M < 2)) return 0;
    memset(g, 0, sizeof *g);
    g->N = N; g->M = M; g->D = D; g->sx = sx; g->sy = sy;
    g->nx = (int)n_tiles(N, D);
    g->ny = (int)n_tiles(M, D);
    g->nt = g->nx + g->ny;
    g->grad = grad;
    g->unbiased = unbiased;
    g->kp = kp;
    const double n = (double)N, m = (double)M;
    g->W[0][0] = unbiased ? 1.0 / (n * (n - 1.0)) : 1.0 / (n * n);
    g->W[1][1] = unbiased ? 1.0 / (m * (m - 1.0)) : 1.0 / (m * m);
    g->W[0][1] = g->W[1][0] = -1.0 / (n * m);
    return 1;
}

/* Polynomial kernel, biased estimator: the diagonal terms K(a, a) of one tile,
 * computed through the same dispatched code as the pairs (a.a as in nd_accum,
 * then the kernel as in evalrow), so that MMD(x, x) cancels. */
static double poly_self(const geom_t *g, const prob_t *p, const tile_t *ti, double W) {
    const kparams *kp = g->kp;
    const int64_t D = g->D;
    double val = 0.0;
    for (int64_t i = 0; i < ti->len; i++) {
        const float *a = ti->z + (ti->start + i) * ti->s;
        float dot = 0.0f, kq = 0.0f;
        for (int64_t d = 0; d < D; d++) call_nd_accum(kp->v3, 1, &dot, a + d, 1, a + d, 1);
        val += W * call_ev(kp->v3, kp->chunk[0].spec, kp->c, kp->invd, kp->degree, &dot, &kq, 0, 1);
        if (g->grad) {
            /* d/da (a.a/D + 1)^p = 2 p s^(p-1) a / D */
            const double cf = 2.0 * W * p->gscale * (double)kq * (double)kp->invd;
            float *ga = ti->gz + (ti->start + i) * ti->s;
            for (int64_t d = 0; d < D; d++) ga[d] += (float)(cf * (double)a[d]);
        }
    }
    return val;
}

/* Row / column gradient coefficients of a tile pair with weight W: each pair a < b
 * stands for the two ordered pairs, 2 W K; d/da of that is 4 W K'(r2) (a - b) for
 * the distance kernels and 2 W K'(s) b / D for the polynomial one. */
static void grad_coefs(const geom_t *g, const prob_t *p, double W, double *cr, double *cc) {
    if (g->kp->kind == KT_POLY) {
        *cr = *cc = 2.0 * W * p->gscale * (double)g->kp->invd;
    } else {
        *cr = 4.0 * W * p->gscale;
        *cc = -*cr;
    }
}

static double task_1d(const geom_t *g, const prob_t *p, int I, int J) {
    float zr[T1_MAX], zc[T1_MAX], rowt[T1_MAX], cg[T1_MAX];
    tile_t ti, tj;
    tile_of(g, p, I, &ti);
    tile_of(g, p, J, &tj);
    const kparams *kp = g->kp;
    const double W = g->W[ti.grp][tj.grp];
    const int tri = I == J;
    for (int64_t i = 0; i < ti.len; i++) zr[i] = ti.z[(ti.start + i) * ti.s];
    for (int64_t j = 0; j < tj.len; j++) zc[j] = tj.z[(tj.start + j) * tj.s];
    double sum = 0.0;
    if (g->grad) {
        memset(rowt, 0, (size_t)ti.len * sizeof(float));
        memset(cg, 0, (size_t)tj.len * sizeof(float));
        for (int h = 0; h < kp->nchunk; h++)
            sum += call_b1g(kp->v3, kp->chunk[h].spec, kp->c + kp->chunk[h].off, kp->invd,
                            kp->degree, zr, ti.len, zc, tj.len, tri, rowt, cg);
        double cr, cc;
        grad_coefs(g, p, W, &cr, &cc);
        for (int64_t i = 0; i < ti.len; i++)
            ti.gz[(ti.start + i) * ti.s] += (float)(cr * (double)rowt[i]);
        for (int64_t j = 0; j < tj.len; j++)
            tj.gz[(tj.start + j) * tj.s] += (float)(cc * (double)cg[j]);
    } else {
        for (int h = 0; h < kp->nchunk; h++)
            sum += call_b1f(kp->v3, kp->chunk[h].spec, kp->c + kp->chunk[h].off, kp->invd,
                            kp->degree, zr, ti.len, zc, tj.len, tri);
    }
    double val = 2.0 * W * sum;
    if (tri && !g->unbiased && kp->kind == KT_POLY) val += poly_self(g, p, &ti, W);
    return val;
}

static double task_nd(const geom_t *g, const prob_t *p, int I, int J) {
    float v[RB * CB], kpb[RB * CB], xr[RB], xc[CB], rowt[RB], colt[CB];
    tile_t ti, tj;
    tile_of(g, p, I, &ti);
    tile_of(g, p, J, &tj);
    const kparams *kp = g->kp;
    const int64_t D = g->D;
    const int poly = kp->kind == KT_POLY;
    const double W = g->W[ti.grp][tj.grp];
    const int tri = I == J;
    double cr = 0.0, cc = 0.0;
    if (g->grad) grad_coefs(g, p, W, &cr, &cc);
    double sum = 0.0;
    for (int64_t r0 = 0; r0 < ti.len; r0 += RB) {
        const int64_t nr = ti.len - r0 < RB ? ti.len - r0 : RB;
        for (int64_t c0 = 0; c0 < tj.len; c0 += CB) {
            const int64_t nc = tj.len - c0 < CB ? tj.len - c0 : CB;
            if (tri && c0 + nc - 1 <= r0) continue; /* no pair with column > row */
            for (int64_t i = 0; i < nr; i++) memset(v + i * CB, 0, (size_t)nc * sizeof(float));
            for (int64_t d = 0; d < D; d++) {
                for (int64_t i = 0; i < nr; i++) xr[i] = ti.z[(ti.start + r0 + i) * ti.s + d];
                for (int64_t j = 0; j < nc; j++) xc[j] = tj.z[(tj.start + c0 + j) * tj.s + d];
                call_nd_accum(kp->v3, poly, v, xr, nr, xc, nc);
            }
            for (int64_t i = 0; i < nr; i++) memset(kpb + i * CB, 0, (size_t)nc * sizeof(float));
            for (int64_t i = 0; i < nr; i++) {
                int64_t j0 = 0;
                if (tri) {
                    j0 = r0 + i + 1 - c0;
                    if (j0 < 0) j0 = 0;
                    if (j0 > nc) j0 = nc;
                }
                for (int h = 0; h < kp->nchunk; h++)
                    sum += call_ev(kp->v3, kp->chunk[h].spec, kp->c + kp->chunk[h].off, kp->invd,
                                   kp->degree, v + i * CB, kpb + i * CB, j0, nc);
            }
            if (!g->grad) continue;
            for (int64_t d = 0; d < D; d++) {
                for (int64_t i = 0; i < nr; i++) xr[i] = ti.z[(ti.start + r0 + i) * ti.s + d];
                for (int64_t j = 0; j < nc; j++) xc[j] = tj.z[(tj.start + c0 + j) * tj.s + d];
                call_nd_grad(kp->v3, poly, kpb, xr, nr, xc, nc, rowt, colt);
                for (int64_t i = 0; i < nr; i++)
                    ti.gz[(ti.start + r0 + i) * ti.s + d] += (float)(cr * (double)rowt[i]);
                for (int64_t j = 0; j < nc; j++)
                    tj.gz[(tj.start + c0 + j) * tj.s + d] += (float)(cc * (double)colt[j]);
            }
        }
    }
    double val = 2.0 * W * sum;
    if (tri && !g->unbiased && poly) val += poly_self(g, p, &ti, W);
    return val;
}

/* Pair k of round r of the circle-method tournament on n (even) players: the
 * last player stays put, the others rotate. Every unordered pair once over
 * n - 1 rounds; each player at most once per round. Round n - 1 is the diagonal
 * round (each tile with itself). Returns 0 for the bye of an odd tile count. */
static int round_pair(int nt, int r, int k, int *a, int *b) {
    const int n = nt + (nt & 1), m = n - 1;
    if (r == m) {
        *a = *b = k;
        return k < nt;
    }
    int u = k == 0 ? r : (r + k) % m, v = k == 0 ? m : (r - k + m) % m;
    if (u > v) { const int s = u; u = v; v = s; }
    *a = u;
    *b = v;
    return v < nt;
}

/* Tasks per round: n/2 pairs, or nt tiles in the diagonal round. */
static int round_tasks(int nt, int r) {
    const int n = nt + (nt & 1);
    return r == n - 1 ? nt : n / 2;
}

static double task(const geom_t *g, const prob_t *p, int a, int b) {
    return g->D == 1 ? task_1d(g, p, a, b) : task_nd(g, p, a, b);
}

/* Runs np problems sharing one geometry; vals[p] = MMD of problem p. Gradients
 * (when g->grad) are accumulated into memory the caller zeroed.
 *
 * Each tile's forward accumulator and gradient rows receive their contributions
 * in round order whoever computes them, so both parallel strategies below give
 * bitwise the same result as a serial run:
 * - many problems (the per-feature loss): problems in parallel, each run serially
 *   round after round, no synchronisation but the final join;
 * - few problems: the tasks of one round in parallel (they touch disjoint tiles),
 *   a barrier between rounds. */
static void run(const geom_t *g, const prob_t *probs, int np, double *vals) {
    const int nt = g->nt;
    double acc_stack[1024];
    double *acc = acc_stack;
    if ((int64_t)np * nt > 1024) {
        acc = malloc((size_t)np * (size_t)nt * sizeof(double));
        if (!acc) {
            for (int q = 0; q < np; q++) vals[q] = NAN;
            return;
        }
    }
    memset(acc, 0, (size_t)np * (size_t)nt * sizeof(double));
    const int nrounds = nt + (nt & 1); /* n - 1 tournament rounds + the diagonal */
    const int64_t L = g->N + g->M;
    const double work = 0.5 * (double)L * (double)L * (double)g->D * (double)np;
    const int par = work > 65536.0;
    int threads = 1;
#ifdef _OPENMP
    threads = par ? omp_get_max_threads() : 1;
#else
    (void)par;
#endif
    if (np >= 2 * threads) {
#pragma omp parallel for schedule(dynamic, 1) if (par)
        for (int q = 0; q < np; q++)
            for (int r = 0; r < nrounds; r++)
                for (int k = 0; k < round_tasks(nt, r); k++) {
                    int a, b;
                    if (round_pair(nt, r, k, &a, &b))
                        acc[(int64_t)q * nt + a] += task(g, &probs[q], a, b);
                }
    } else {
#pragma omp parallel if (par)
        for (int r = 0; r < nrounds; r++) {
            const int nk = round_tasks(nt, r);
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < (int64_t)np * nk; t++) {
                const int q = (int)(t / nk), k = (int)(t % nk);
                int a, b;
                if (round_pair(nt, r, k, &a, &b))
                    acc[(int64_t)q * nt + a] += task(g, &probs[q], a, b);
            }
        }
    }
    for (int q = 0; q < np; q++) {
        double v = 0.0;
        for (int t = 0; t < nt; t++) v += acc[(int64_t)q * nt + t];
        if (!g->unbiased && g->kp->kind != KT_POLY)
            v += g->kp->kself * (g->W[0][0] * (double)g->N + g->W[1][1] * (double)g->M);
        vals[q] = v;
    }
    if (acc != acc_stack) free(acc);
}

/* ------------------------------------------------------------------------- */
/* Gradients are overwritten: zeroed first (also when the arguments are invalid). */
static void zero_rows(float *g, int64_t n, int64_t D) {
    if (g && n > 0 && D > 0) memset(g, 0, (size_t)n * (size_t)D * sizeof(float));
}

static double single(float *gx, float *gy, double gscale, const float *x, const float *y,
                     int64_t N, int64_t M, int64_t D, int kernel, const float *bw, int n_bw,
                     int degree, int unbiased, int grad) {
    if (grad) {
        zero_rows(gx, N, D);
        zero_rows(gy, M, D);
    }
    kparams kp;
    geom_t g;
    if (!prepare(&kp, kernel, bw, n_bw, degree, D < 1 ? 1 : D)) return NAN;
    if (!setup_geom(&g, &kp, N, M, D, D, D, unbiased, grad)) return NAN;
    prob_t p = {x, y, gx, gy, gscale};
    double v;
    run(&g, &p, 1, &v);
    return v;
}

double hm_mmd_forward(const float *x, const float *y, int64_t N, int64_t M, int64_t D,
                      int kernel, const float *bw, int n_bw, int degree, int unbiased) {
    return single(NULL, NULL, 0.0, x, y, N, M, D, kernel, bw, n_bw, degree, unbiased, 0);
}

void hm_mmd_backward(float *dx, float *dy, float dloss, const float *x, const float *y,
                     int64_t N, int64_t M, int64_t D, int kernel, const float *bw, int n_bw,
                     int degree, int unbiased) {
    (void)single(dx, dy, (double)dloss, x, y, N, M, D, kernel, bw, n_bw, degree, unbiased, 1);
}

double hm_mmd_forward_grad(float *gx, float *gy, const float *x, const float *y, int64_t N,
                           int64_t M, int64_t D, int kernel, const float *bw, int n_bw,
                           int degree, int unbiased) {
    return single(gx, gy, 1.0, x, y, N, M, D, kernel, bw, n_bw, degree, unbiased, 1);
}

/* Columns: F problems with D = 1 and row stride F, run in groups so the forward
 * accumulators stay on the stack; all problems of a group share the rounds. */
static void columns(double *out_F, float *gx, float *gy, const float *dloss_F, const float *x,
                    const float *y, int64_t N, int64_t M, int64_t F, int kernel, const float *bw,
                    int n_bw, int degree, int unbiased, int grad) {
    if (F < 1) return;
    if (grad) {
        zero_rows(gx, N, F);
        zero_rows(gy, M, F);
    }
    kparams kp;
    geom_t g;
    if (!prepare(&kp, kernel, bw, n_bw, degree, 1) ||
        !setup_geom(&g, &kp, N, M, 1, F, F, unbiased, grad)) {
        if (out_F)
            for (int64_t f = 0; f < F; f++) out_F[f] = NAN;
        return;
    }
    enum { GROUP = 16 };
    prob_t probs[GROUP];
    double vals[GROUP];
    for (int64_t f0 = 0; f0 < F; f0 += GROUP) {
        const int np = (int)(F - f0 < GROUP ? F - f0 : GROUP);
        for (int q = 0; q < np; q++) {
            const int64_t f = f0 + q;
            probs[q].x = x + f;
            probs[q].y = y + f;
            probs[q].gx = grad ? gx + f : NULL;
            probs[q].gy = grad ? gy + f : NULL;
            probs[q].gscale = dloss_F ? (double)dloss_F[f] : 1.0;
        }
        run(&g, probs, np, vals);
        if (out_F)
            for (int q = 0; q < np; q++) out_F[f0 + q] = vals[q];
    }
}

void hm_mmd_columns_forward(double *out_F, const float *x, const float *y, int64_t N,
                            int64_t M, int64_t F, int kernel, const float *bw, int n_bw,
                            int degree, int unbiased) {
    columns(out_F, NULL, NULL, NULL, x, y, N, M, F, kernel, bw, n_bw, degree, unbiased, 0);
}

void hm_mmd_columns_backward(float *dx, float *dy, const float *dloss_F, const float *x,
                             const float *y, int64_t N, int64_t M, int64_t F, int kernel,
                             const float *bw, int n_bw, int degree, int unbiased) {
    columns(NULL, dx, dy, dloss_F, x, y, N, M, F, kernel, bw, n_bw, degree, unbiased, 1);
}

void hm_mmd_columns_forward_grad(double *out_F, float *gx, float *gy, const float *x,
                                 const float *y, int64_t N, int64_t M, int64_t F,
                                 int kernel, const float *bw, int n_bw, int degree,
                                 int unbiased) {
    columns(out_F, gx, gy, NULL, x, y, N, M, F, kernel, bw, n_bw, degree, unbiased, 1);
}

void hm_mmd_scale_grad(float *dx, float *dy, const float *dloss_F, const float *gx,
                       const float *gy, int64_t N, int64_t M, int64_t F) {
    for (int64_t i = 0; i < N; i++)
        for (int64_t f = 0; f < F; f++) dx[i * F + f] = dloss_F[f] * gx[i * F + f];
    for (int64_t i = 0; i < M; i++)
        for (int64_t f = 0; f < F; f++) dy[i * F + f] = dloss_F[f] * gy[i * F + f];
}

/* ------------------------------------------------------------------------- */
int64_t hm_mmd_median_work_size(int64_t N, int64_t M, int64_t n_sub) {
    const int64_t L = (N > 0 ? N : 0) + (M > 0 ? M : 0);
    const int64_t m = n_sub < L ? (n_sub > 0 ? n_sub : 0) : L;
    return m < 2 ? 0 : m * (m - 1) / 2;
}

/* k-th smallest of v[0, n) (rearranges v): quickselect with a median-of-three
 * pivot, deterministic. */
static float select_kth(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        const int64_t mid = lo + (hi - lo) / 2;
        float a = v[lo], b = v[mid], c = v[hi];
        const float piv = (a < b) ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < piv) i++;
            while (v[j] > piv) j--;
            if (i <= j) {
                const float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

double hm_mmd_median_distance(float *work, const float *x, const float *y, int64_t N,
                              int64_t M, int64_t D, int64_t n_sub) {
    const int64_t cnt = hm_mmd_median_work_size(N, M, n_sub);
    if (cnt < 1 || D < 1) return NAN;
    const int64_t L = N + M;
    const int64_t m = n_sub < L ? n_sub : L;
    int64_t w = 0;
    for (int64_t ka = 0; ka < m; ka++) {
        const int64_t a = (int64_t)((double)ka * (double)L / (double)m);
        const float *za = a < N ? x + a * D : y + (a - N) * D;
        for (int64_t kb = ka + 1; kb < m; kb++) {
            const int64_t b = (int64_t)((double)kb * (double)L / (double)m);
            const float *zb = b < N ? x + b * D : y + (b - N) * D;
            double s = 0.0;
            for (int64_t d = 0; d < D; d++) {
                const double t = (double)za[d] - (double)zb[d];
                s += t * t;
            }
            work[w++] = (float)sqrt(s);
        }
    }
    const int64_t k = cnt / 2;
    const double upper = (double)select_kth(work, cnt, k);
    if (cnt & 1) return upper;
    /* after selection everything below index k is <= the k-th value */
    float lower = work[0];
    for (int64_t i = 1; i < k; i++)
        if (work[i] > lower) lower = work[i];
    return 0.5 * (lower + upper);
}
