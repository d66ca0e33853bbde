/*
 * Normalizing-flow kernels. See flows.h for the conventions (they are zuko's).
 */
#include "flows.h"
#include "linalg.h"
#include "blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* HM_FLOWS_PORTABLE forces the portable micro-kernel (to test it on x86). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(HM_FLOWS_PORTABLE)
#define HM_FLOWS_X86 1
#include <immintrin.h>
#endif

/* Element counts above which the element-wise loops go parallel. A spline value
 * costs ~2K+2 exp, an affine one a single exp. */
#define HM_FLOWS_PAR_AFFINE 32768
#define HM_FLOWS_PAR_RQS 1024

/* ------------------------------------------------------------------------------
 * Monotonic affine
 * ------------------------------------------------------------------------------ */

/* zuko: scale / (1 + |scale / log(slope)|); the division (not a multiplication
 * by a reciprocal) keeps us bit-close to zuko. */
static inline float hm_affine_log_scale(float raw, float logslope) {
    return raw / (1.0f + fabsf(raw / logslope));
}

/* d/draw of raw / (1 + |raw| / c) = 1 / (1 + |raw| / c)^2 */
static inline float hm_affine_dlog_scale(float raw, float logslope) {
    float a = 1.0f + fabsf(raw / logslope);
    return 1.0f / (a * a);
}

void hm_monotonic_affine_forward(float *y, float *ladj, const float *x, const float *shift,
                                 const float *scale, int64_t n, int64_t pstride, float slope) {
    const float ls = (float)log((double)slope);
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_AFFINE)
    for (int64_t i = 0; i < n; i++) {
        float a = hm_affine_log_scale(scale[i * pstride], ls);
        y[i] = x[i] * expf(a) + shift[i * pstride];
        if (ladj) ladj[i] = a;
    }
}

void hm_monotonic_affine_inverse(float *x, float *ladj, const float *y, const float *shift,
                                 const float *scale, int64_t n, int64_t pstride, float slope) {
    const float ls = (float)log((double)slope);
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_AFFINE)
    for (int64_t i = 0; i < n; i++) {
        float a = hm_affine_log_scale(scale[i * pstride], ls);
        x[i] = (y[i] - shift[i * pstride]) / expf(a);
        if (ladj) ladj[i] = -a;
    }
}

void hm_monotonic_affine_backward(float *dx, float *dshift, float *dscale, const float *dy,
                                  const float *dladj, const float *x, const float *shift,
                                  const float *scale, int64_t n, int64_t pstride, float slope) {
    (void)shift;
    const float ls = (float)log((double)slope);
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_AFFINE)
    for (int64_t i = 0; i < n; i++) {
        float raw = scale[i * pstride];
        float e = expf(hm_affine_log_scale(raw, ls));
        float gy = dy ? dy[i] : 0.0f, gl = dladj ? dladj[i] : 0.0f;
        if (dx) dx[i] = gy * e;
        if (dshift) dshift[i * pstride] = gy;
        if (dscale) dscale[i * pstride] = (gy * x[i] * e + gl) * hm_affine_dlog_scale(raw, ls);
    }
}

void hm_monotonic_affine_inverse_backward(float *dy, float *dshift, float *dscale,
                                          const float *dx, const float *dladj, const float *y,
                                          const float *shift, const float *scale, int64_t n,
                                          int64_t pstride, float slope) {
    const float ls = (float)log((double)slope);
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_AFFINE)
    for (int64_t i = 0; i < n; i++) {
        float raw = scale[i * pstride];
        float e = expf(hm_affine_log_scale(raw, ls));
        float xv = (y[i] - shift[i * pstride]) / e;
        float gx = dx ? dx[i] : 0.0f, gl = dladj ? dladj[i] : 0.0f;
        /* x = (y - b) e^{-a}: dx/dy = e^{-a}, dx/db = -e^{-a}, dx/da = -x; ladj = -a */
        if (dy) dy[i] = gx / e;
        if (dshift) dshift[i * pstride] = -gx / e;
        if (dscale) dscale[i * pstride] = (-gx * xv - gl) * hm_affine_dlog_scale(raw, ls);
    }
}

/* ------------------------------------------------------------------------------
 * Circular shift
 * ------------------------------------------------------------------------------ */

/* torch.remainder(v, 2B) - B: fmod, then move into [0, 2B) when the signs differ. */
static inline float hm_cshift(float v, float bound) {
    const float period = 2.0f * bound;
    float m = fmodf(v, period);
    if (m != 0.0f && ((m < 0.0f) != (period < 0.0f))) m += period;
    return m - bound;
}

void hm_circular_shift_forward(float *y, const float *x, int64_t n, float bound) {
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_AFFINE)
    for (int64_t i = 0; i < n; i++) y[i] = hm_cshift(x[i], bound);
}

void hm_circular_shift_inverse(float *x, const float *y, int64_t n, float bound) {
    hm_circular_shift_forward(x, y, n, bound);
}

void hm_circular_shift_backward(float *dx, const float *dy, int64_t n) {
    if (dx != dy) memcpy(dx, dy, (size_t)n * sizeof(float));
}

/* ------------------------------------------------------------------------------
 * Rational-quadratic spline
 * ------------------------------------------------------------------------------ */

/* The bin that holds a value, with everything the formulas need. */
typedef struct {
    int64_t k;          /* bin index, -1 when outside the knots (identity) */
    float x0, w, y0, h; /* left knot and size of the bin, horizontally and vertically */
    float d0, d1;       /* derivatives at the left and right knots */
} hm_rqs_bin;

/* softmax of the soft-clipped raw widths (or heights): raw / (1 + |2 raw / L|).
 * torch's softmax subtracts the max and multiplies by 1 / sum. */
static void hm_rqs_softmax(float *p, const float *raw, int64_t K, float ls) {
    float m = -INFINITY;
    for (int64_t i = 0; i < K; i++) {
        float c = raw[i] / (1.0f + fabsf(2.0f * raw[i] / ls));
        p[i] = c;
        m = c > m ? c : m;
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < K; i++) {
        p[i] = expf(p[i] - m);
        sum += p[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < K; i++) p[i] *= inv;
}

/* Knot position from the running sum of probabilities. torch's CPU cumsum
 * accumulates float in double and rounds each output to float; zuko then
 * computes bound * (2 * c - 1) in float. */
static inline float hm_rqs_knot(double cum, float bound) {
    return bound * (2.0f * (float)cum - 1.0f);
}

static inline float hm_rqs_deriv(float raw, float ls) {
    return expf(raw / (1.0f + fabsf(raw / ls)));
}

/* Softmaxes into pw, ph (K floats each) and the bin of v among the horizontal
 * knots (by_height = 0, forward) or the vertical ones (by_height = 1, inverse). */
static void hm_rqs_locate(hm_rqs_bin *b, float *pw, float *ph, float v, int by_height,
                          const float *prm, int64_t K, float bound, float ls) {
    hm_rqs_softmax(pw, prm, K, ls);
    hm_rqs_softmax(ph, prm + K, K, ls);
    const float *p = by_height ? ph : pw;
    /* k = #{j : knot_j < v} - 1; knots are non-decreasing, so stop at the first
     * knot >= v. knot_0 = bound * (2 * 0 - 1) = -bound exactly. */
    int64_t count = (-bound < v) ? 1 : 0;
    if (count) {
        double cum = 0.0;
        for (int64_t j = 1; j <= K; j++) {
            cum += (double)p[j - 1];
            if (hm_rqs_knot(cum, bound) < v) count++;
            else break;
        }
    }
    int64_t k = count - 1;
    if (k < 0 || k >= K) {
        b->k = -1;
        return;
    }
    double cw = 0.0, ch = 0.0;
    for (int64_t j = 0; j < k; j++) {
        cw += (double)pw[j];
        ch += (double)ph[j];
    }
    float xa = hm_rqs_knot(cw, bound), ya = hm_rqs_knot(ch, bound);
    cw += (double)pw[k];
    ch += (double)ph[k];
    float xb = hm_rqs_knot(cw, bound), yb = hm_rqs_knot(ch, bound);
    b->k = k;
    b->x0 = xa;
    b->w = xb - xa;
    b->y0 = ya;
    b->h = yb - ya;
    b->d0 = (k == 0) ? 1.0f : hm_rqs_deriv(prm[2 * K + k - 1], ls);
    b->d1 = (k == K - 1) ? 1.0f : hm_rqs_deriv(prm[2 * K + k], ls);
}

/* log f'(x) at the relative position z in the bin (zuko's expression). */
static inline float hm_rqs_logjac(const hm_rqs_bin *b, float z) {
    float s = b->h / b->w;
    float omz = 1.0f - z;
    float den = s + (b->d0 + b->d1 - 2.0f * s) * z * omz;
    float jac = s * s * (2.0f * s * z * omz + b->d0 * (omz * omz) + b->d1 * (z * z)) / (den * den);
    return logf(jac);
}

static inline float hm_rqs_eval(const hm_rqs_bin *b, float x, float *ladj) {
    float z = (x - b->x0) / b->w;
    float s = b->h / b->w;
    float omz = 1.0f - z;
    float num = s * (z * z) + b->d0 * z * omz;
    float den = s + (b->d0 + b->d1 - 2.0f * s) * z * omz;
    *ladj = hm_rqs_logjac(b, z);
    return b->y0 + b->h * num / den;
}

/* Relative position z of the preimage of y: the root of a z^2 + b z + c = 0 in
 * the form 2c / (-b - sqrt(b^2 - 4ac)), which does not cancel (c <= 0 <= b). */
static inline float hm_rqs_solve(const hm_rqs_bin *b, float y) {
    float s = b->h / b->w;
    float yr = y - b->y0;
    float dd = b->d0 + b->d1 - 2.0f * s;
    float qa = b->h * (s - b->d0) + yr * dd;
    float qb = b->h * b->d0 - yr * dd;
    float qc = -s * yr;
    float disc = qb * qb - 4.0f * qa * qc;
    if (disc < 0.0f) disc = 0.0f; /* rounding only */
    return 2.0f * qc / (-qb - sqrtf(disc));
}

/*
 * Local gradient inside a bin. With W = x1 - x0, H = y1 - y0, s = H / W,
 * z = (x - x0) / W, t = z (1 - z):
 *   y    = y0 + H Q,  Q = (s z^2 + d0 t) / D,  D = s + (d0 + d1 - 2 s) t
 *   ladj = 2 log s + log N - 2 log D,  N = 2 s t + d0 (1 - z)^2 + d1 z^2
 * Given gy = dL/dy and gl = dL/dladj, returns dL/dx and fills
 * gk = dL/d(x0, x1, y0, y1, d0, d1). Done in float like the forward.
 */
static float hm_rqs_local_grad(const hm_rqs_bin *b, float z, float gy, float gl, float gk[6]) {
    const float W = b->w, H = b->h, d0 = b->d0, d1 = b->d1;
    const float s = H / W, omz = 1.0f - z, t = z * omz, dd = d0 + d1 - 2.0f * s;
    const float one_m_2z = 1.0f - 2.0f * z;
    const float D = s + dd * t;
    const float Q = (s * z * z + d0 * t) / D;
    const float N = 2.0f * s * t + d0 * omz * omz + d1 * z * z;
    const float D_z = dd * one_m_2z;
    /* partials of Q and ladj w.r.t. z, s, d0, d1 */
    const float Q_z = (2.0f * s * z + d0 * one_m_2z - Q * D_z) / D;
    const float Q_s = (z * z - Q * (1.0f - 2.0f * t)) / D;
    const float Q_d0 = t * (1.0f - Q) / D;
    const float Q_d1 = -Q * t / D;
    const float l_z = (2.0f * s * one_m_2z - 2.0f * d0 * omz + 2.0f * d1 * z) / N - 2.0f * D_z / D;
    const float l_s = 2.0f / s + 2.0f * t / N - 2.0f * (1.0f - 2.0f * t) / D;
    const float l_d0 = omz * omz / N - 2.0f * t / D;
    const float l_d1 = z * z / N - 2.0f * t / D;
    const float Gz = gy * H * Q_z + gl * l_z;
    const float Gs = gy * H * Q_s + gl * l_s;
    const float GH = gy * Q + Gs / W;           /* H enters directly and through s */
    const float GW = -(Gz * z + Gs * s) / W;    /* W enters through z and s */
    gk[0] = -Gz / W - GW;                       /* x0: through z, and W = x1 - x0 */
    gk[1] = GW;
    gk[2] = gy - GH;                            /* y0: directly, and H = y1 - y0 */
    gk[3] = GH;
    gk[4] = gy * H * Q_d0 + gl * l_d0;
    gk[5] = gy * H * Q_d1 + gl * l_d1;
    return Gz / W;
}

/* From knot gradients to raw parameter gradients (g has 3K - 1 entries, all
 * written). knot_j = B (2 C_j - 1), C_j = sum_{i<j} p_i: only knots k and k+1
 * carry gradient, so dL/dp_i = [i < k] dL/dC_k + [i <= k] dL/dC_{k+1}; then the
 * softmax backward p_i (g_i - sum_j p_j g_j) and the soft-clip derivative. */
static void hm_rqs_raw_grad(float *g, const hm_rqs_bin *b, const float gk[6], const float *pw,
                            const float *ph, const float *prm, int64_t K, float bound, float ls) {
    const int64_t k = b->k;
    for (int axis = 0; axis < 2; axis++) {
        const float *p = axis ? ph : pw;
        const float *raw = prm + axis * K;
        float *gr = g + axis * K;
        const float gc0 = 2.0f * bound * gk[2 * axis], gc1 = 2.0f * bound * gk[2 * axis + 1];
        float dot = 0.0f;
        for (int64_t i = 0; i <= k; i++) {
            float gp = (i < k ? gc0 : 0.0f) + gc1;
            dot += p[i] * gp;
        }
        for (int64_t i = 0; i < K; i++) {
            float gp = (i < k ? gc0 : 0.0f) + (i <= k ? gc1 : 0.0f);
            float a = 1.0f + fabsf(2.0f * raw[i] / ls);
            gr[i] = p[i] * (gp - dot) / (a * a);
        }
    }
    float *gd = g + 2 * K;
    for (int64_t j = 0; j < K - 1; j++) gd[j] = 0.0f;
    if (k >= 1) { /* knot k is interior: raw derivative k - 1 */
        float raw = prm[2 * K + k - 1], a = 1.0f + fabsf(raw / ls);
        gd[k - 1] = gk[4] * b->d0 / (a * a);
    }
    if (k + 1 <= K - 1) {
        float raw = prm[2 * K + k], a = 1.0f + fabsf(raw / ls);
        gd[k] = gk[5] * b->d1 / (a * a);
    }
}

static inline int hm_rqs_bad(int64_t bins, float bound) {
    return bins < 1 || bins > HM_RQS_MAX_BINS || !(bound > 0.0f);
}

/* One value of the inverse; shared by hm_rqs_inverse and hm_maf_inverse. */
static inline float hm_rqs_inverse_one(float y, const float *prm, int64_t K, float bound,
                                       float ls, int circular, float *ladj) {
    float pw[HM_RQS_MAX_BINS], ph[HM_RQS_MAX_BINS];
    hm_rqs_bin b;
    hm_rqs_locate(&b, pw, ph, y, 1, prm, K, bound, ls);
    float u, l;
    if (b.k < 0) {
        u = y;
        l = 0.0f;
    } else {
        float z = hm_rqs_solve(&b, y);
        u = b.x0 + z * b.w;
        l = -hm_rqs_logjac(&b, z);
    }
    *ladj = l;
    return circular ? hm_cshift(u, bound) : u;
}

/* ---- 8 values at a time (AVX2 + FMA) -------------------------------------------
 * One value per lane, so softmax, knot search and bin selection are lane-wise.
 * Same operations in the same order as the scalar path (soft-clips, double
 * cumsum of the probabilities, knot formula), except that exp and log are the
 * polynomials below (within ~2 ulp of libm's), so results agree with the scalar
 * path to a few ulp. Used for every value of the forward and inverse kernels
 * when the CPU has AVX2 + FMA (tails through masked gathers), so a value's result
 * does not depend on its position or on the thread count. */
#ifdef HM_FLOWS_X86
#define HM_AVX2 __attribute__((target("avx2,fma")))

/* e^x: x = n ln2 + r, |r| <= ln2 / 2, e^r by its Taylor series to degree 7
 * (truncation < 1e-8 relative), 2^n through the exponent bits. The clamps keep
 * 2^n normal and let NaN through (max/min return the second operand on NaN). */
HM_AVX2 static inline __m256 hm_exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x); /* ln2 high part, exact product */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606820309417e-06f), r);   /* ln2 low part */
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* log x for positive normal x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
 * log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, odd series to s^9
 * (truncation < 2e-9). */
HM_AVX2 static inline __m256 hm_log256(__m256 x) {
    __m256i bits = _mm256_castps_si256(x);
    __m256i ei = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                                   _mm256_set1_epi32(0x3f800000)));
    __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356237f), _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
    __m256 e = _mm256_add_ps(_mm256_cvtepi32_ps(ei), _mm256_and_ps(big, _mm256_set1_ps(1.0f)));
    __m256 s = _mm256_div_ps(_mm256_sub_ps(m, _mm256_set1_ps(1.0f)), _mm256_add_ps(m, _mm256_set1_ps(1.0f)));
    __m256 s2 = _mm256_mul_ps(s, s);
    __m256 p = _mm256_set1_ps(2.0f / 9.0f);
    p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f / 7.0f));
    p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f / 5.0f));
    p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f / 3.0f));
    p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f));
    __m256 lm = _mm256_mul_ps(p, s);
    return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693147180559945309f), lm);
}

/* raw / (1 + |c raw / L|), written as the scalar path writes it */
HM_AVX2 static inline __m256 hm_softclip256(__m256 raw, float c, __m256 vls) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 q = _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(c), raw), vls);
    return _mm256_div_ps(raw, _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_andnot_ps(sign, q)));
}

/* bound * (2 c - 1) from the double running sums (lo: lanes 0-3, hi: 4-7) */
HM_AVX2 static inline __m256 hm_knot256(__m256d lo, __m256d hi, __m256 vb) {
    __m256 c = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
    return _mm256_mul_ps(vb, _mm256_sub_ps(_mm256_add_ps(c, c), _mm256_set1_ps(1.0f)));
}

/* In-register transpose of an 8 x 8 block. */
HM_AVX2 static inline void hm_transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* Widest spline the vector path takes (its per-call arrays live on the stack);
 * wider ones go through the scalar path. */
#define HM_RQS_VEC_MAX_BINS 64

/* Parameters of 8 values (lane l: prm + l * pstride; lanes past nvalid read lane
 * 0's), transposed so that q[j] holds parameter j of every lane (8 x 8 register
 * transposes; gathers are slow), then widths and heights turned into softmax
 * probabilities in place. dclip (may be NULL) receives the soft-clip derivatives
 * 1 / (1 + |2 raw / L|)^2 of widths and heights. Derivatives stay raw. */
HM_AVX2 static void hm_rqs8_prepare(__m256 *q, __m256 *dclip, const float *prm, int64_t pstride,
                                    int nvalid, int64_t K, float ls) {
    const int64_t P = 3 * K - 1;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 vls = _mm256_set1_ps(ls), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (int64_t jb = 0; jb < P; jb += 8) {
        __m256 r[8];
        const __m256i cmask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(P - jb)), lane);
        for (int l = 0; l < 8; l++) {
            const float *row = prm + (l < nvalid ? l : 0) * pstride + jb;
            r[l] = (jb + 8 <= P) ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, cmask);
        }
        hm_transpose8(r);
        for (int l = 0; l < 8 && jb + l < P; l++) q[jb + l] = r[l];
    }
    for (int axis = 0; axis < 2; axis++) {
        __m256 *p = q + axis * K;
        __m256 m = _mm256_set1_ps(-INFINITY);
        for (int64_t j = 0; j < K; j++) {
            if (dclip) {
                __m256 a = _mm256_add_ps(one, _mm256_andnot_ps(_mm256_set1_ps(-0.0f),
                                                               _mm256_div_ps(_mm256_add_ps(p[j], p[j]), vls)));
                dclip[axis * K + j] = _mm256_div_ps(one, _mm256_mul_ps(a, a));
            }
            p[j] = hm_softclip256(p[j], 2.0f, vls);
            m = _mm256_max_ps(p[j], m);
        }
        __m256 sum = zero;
        for (int64_t j = 0; j < K; j++) {
            p[j] = hm_exp256(_mm256_sub_ps(p[j], m));
            sum = _mm256_add_ps(sum, p[j]);
        }
        __m256 inv = _mm256_div_ps(one, sum);
        for (int64_t j = 0; j < K; j++) p[j] = _mm256_mul_ps(p[j], inv);
    }
}

typedef struct {
    __m256 x0, y0, x1, y1; /* bin corners */
    __m256 r0, r1;         /* raw derivatives at its knots (0 at the ends, like zuko's padding) */
    __m256 inside;         /* lane mask: knot_0 < v and not knot_K < v */
} hm_rqs8_bin;

/* Walk the knots once: the last knot below v (on the horizontal axis, or the
 * vertical one when inverse) is the left end of the bin, the next knot its right
 * end. lt (may be NULL) receives the K + 1 masks knot_j < v, from which the
 * backward reads [i < k] = lt[i + 1] and [i <= k] = lt[i]. */
HM_AVX2 static void hm_rqs8_walk(hm_rqs8_bin *b, __m256 *lt, const __m256 *q, __m256 v, int64_t K,
                                 float bound, int inverse) {
    const __m256 vb = _mm256_set1_ps(bound), vnb = _mm256_set1_ps(-bound), zero = _mm256_setzero_ps();
    const __m256 *pw = q, *ph = q + K;
    __m256 x0 = vnb, y0 = vnb, x1 = vnb, y1 = vnb, r0 = zero, r1 = zero;
    __m256 lt_prev = _mm256_cmp_ps(vnb, v, _CMP_LT_OQ);
    const __m256 lt_first = lt_prev;
    if (lt) lt[0] = lt_prev;
    __m256d aw_lo = _mm256_setzero_pd(), aw_hi = aw_lo, ah_lo = aw_lo, ah_hi = aw_lo;
    for (int64_t j = 1; j <= K; j++) {
        aw_lo = _mm256_add_pd(aw_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(pw[j - 1])));
        aw_hi = _mm256_add_pd(aw_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(pw[j - 1], 1)));
        ah_lo = _mm256_add_pd(ah_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(ph[j - 1])));
        ah_hi = _mm256_add_pd(ah_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(ph[j - 1], 1)));
        __m256 hk = hm_knot256(aw_lo, aw_hi, vb), vk = hm_knot256(ah_lo, ah_hi, vb);
        __m256 rd = (j < K) ? q[2 * K + j - 1] : zero;
        __m256 ltj = _mm256_cmp_ps(inverse ? vk : hk, v, _CMP_LT_OQ);
        x1 = _mm256_blendv_ps(x1, hk, lt_prev);
        y1 = _mm256_blendv_ps(y1, vk, lt_prev);
        r1 = _mm256_blendv_ps(r1, rd, lt_prev);
        x0 = _mm256_blendv_ps(x0, hk, ltj);
        y0 = _mm256_blendv_ps(y0, vk, ltj);
        r0 = _mm256_blendv_ps(r0, rd, ltj);
        lt_prev = ltj;
        if (lt) lt[j] = ltj;
    }
    b->x0 = x0; b->y0 = y0; b->x1 = x1; b->y1 = y1; b->r0 = r0; b->r1 = r1;
    b->inside = _mm256_andnot_ps(lt_prev, lt_first);
}

/* Lanes l < nvalid: value v[l] with raw parameters prm + l * pstride.
 * inverse = 0: out = f(v), ladj = log f'(v); inverse = 1: out = f^{-1}(v),
 * ladj = -log f'(out). Lanes past nvalid are computed and ignored. */
HM_AVX2 static void hm_rqs8_avx2(float out[8], float lad[8], const float v_in[8], const float *prm,
                                 int64_t pstride, int nvalid, int64_t K, float bound, float ls,
                                 int inverse) {
    __m256 q[3 * HM_RQS_VEC_MAX_BINS];
    const __m256 vls = _mm256_set1_ps(ls), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 two = _mm256_set1_ps(2.0f);
    const __m256 v = _mm256_loadu_ps(v_in);
    hm_rqs8_bin b;
    hm_rqs8_prepare(q, NULL, prm, pstride, nvalid, K, ls);
    hm_rqs8_walk(&b, NULL, q, v, K, bound, inverse);
    const __m256 inside = b.inside;
    const __m256 d0 = hm_exp256(hm_softclip256(b.r0, 1.0f, vls));
    const __m256 d1 = hm_exp256(hm_softclip256(b.r1, 1.0f, vls));
    const __m256 w = _mm256_sub_ps(b.x1, b.x0), h = _mm256_sub_ps(b.y1, b.y0);
    const __m256 s = _mm256_div_ps(h, w);
    const __m256 dd = _mm256_sub_ps(_mm256_add_ps(d0, d1), _mm256_mul_ps(two, s));
    __m256 z, res;
    if (inverse) {
        __m256 yr = _mm256_sub_ps(v, b.y0);
        __m256 qa = _mm256_add_ps(_mm256_mul_ps(h, _mm256_sub_ps(s, d0)), _mm256_mul_ps(yr, dd));
        __m256 qb = _mm256_sub_ps(_mm256_mul_ps(h, d0), _mm256_mul_ps(yr, dd));
        __m256 qc = _mm256_mul_ps(_mm256_sub_ps(zero, s), yr);
        __m256 disc = _mm256_sub_ps(_mm256_mul_ps(qb, qb), _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), qa), qc));
        disc = _mm256_max_ps(disc, zero);
        z = _mm256_div_ps(_mm256_mul_ps(two, qc), _mm256_sub_ps(_mm256_sub_ps(zero, qb), _mm256_sqrt_ps(disc)));
        res = _mm256_add_ps(b.x0, _mm256_mul_ps(z, w));
    } else {
        z = _mm256_div_ps(_mm256_sub_ps(v, b.x0), w);
    }
    const __m256 omz = _mm256_sub_ps(one, z), zomz = _mm256_mul_ps(z, omz);
    const __m256 den = _mm256_add_ps(s, _mm256_mul_ps(dd, zomz));
    if (!inverse) {
        __m256 num = _mm256_add_ps(_mm256_mul_ps(s, _mm256_mul_ps(z, z)), _mm256_mul_ps(d0, zomz));
        res = _mm256_add_ps(b.y0, _mm256_div_ps(_mm256_mul_ps(h, num), den));
    }
    __m256 nj = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(two, s), zomz),
                                            _mm256_mul_ps(d0, _mm256_mul_ps(omz, omz))),
                              _mm256_mul_ps(d1, _mm256_mul_ps(z, z)));
    __m256 jac = _mm256_div_ps(_mm256_mul_ps(_mm256_mul_ps(s, s), nj), _mm256_mul_ps(den, den));
    /* outside lanes may hold anything (even 0 / 0): keep log away from them */
    jac = _mm256_blendv_ps(one, jac, inside);
    __m256 l = hm_log256(jac);
    if (inverse) l = _mm256_sub_ps(zero, l);
    _mm256_storeu_ps(out, _mm256_blendv_ps(v, res, inside));
    _mm256_storeu_ps(lad, _mm256_blendv_ps(zero, l, inside));
}

/*
 * Backward of 8 values, the vector twin of hm_rqs_local_grad + hm_rqs_raw_grad.
 * inverse = 0 (backward of the forward): v = x, g1 = dL/dy, g2 = dL/dladj;
 *   dv = dL/dx. inverse = 1 (backward of the inverse): v = y, g1 = dL/dx,
 *   g2 = dL/dladj_inv; dv = dL/dy. dprm rows (stride pstride, 3K - 1 written for
 *   lanes < nvalid) receive the raw parameter gradients; may be NULL.
 */
HM_AVX2 static void hm_rqs8_backward_avx2(float dv_out[8], float *dprm, const float v_in[8],
                                          const float g1_in[8], const float g2_in[8], const float *prm,
                                          int64_t pstride, int nvalid, int64_t K, float bound, float ls,
                                          int inverse) {
    __m256 q[3 * HM_RQS_VEC_MAX_BINS], dclip[2 * HM_RQS_VEC_MAX_BINS], lt[HM_RQS_VEC_MAX_BINS + 1];
    const int64_t P = 3 * K - 1;
    const __m256 vls = _mm256_set1_ps(ls), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 two = _mm256_set1_ps(2.0f), sign = _mm256_set1_ps(-0.0f);
    const __m256 v = _mm256_loadu_ps(v_in), g1 = _mm256_loadu_ps(g1_in), g2 = _mm256_loadu_ps(g2_in);
    hm_rqs8_bin b;
    hm_rqs8_prepare(q, dclip, prm, pstride, nvalid, K, ls);
    hm_rqs8_walk(&b, lt, q, v, K, bound, inverse);
    const __m256 inside = b.inside;
    /* outside lanes get a harmless unit bin so that no NaN is formed */
    const __m256 x0 = _mm256_blendv_ps(zero, b.x0, inside), y0 = _mm256_blendv_ps(zero, b.y0, inside);
    const __m256 W = _mm256_blendv_ps(one, _mm256_sub_ps(b.x1, b.x0), inside);
    const __m256 H = _mm256_blendv_ps(one, _mm256_sub_ps(b.y1, b.y0), inside);
    const __m256 d0 = hm_exp256(hm_softclip256(b.r0, 1.0f, vls));
    const __m256 d1 = hm_exp256(hm_softclip256(b.r1, 1.0f, vls));
    const __m256 s = _mm256_div_ps(H, W);
    const __m256 dd = _mm256_sub_ps(_mm256_add_ps(d0, d1), _mm256_mul_ps(two, s));
    __m256 z;
    if (inverse) {
        __m256 yr = _mm256_sub_ps(v, y0);
        __m256 qa = _mm256_add_ps(_mm256_mul_ps(H, _mm256_sub_ps(s, d0)), _mm256_mul_ps(yr, dd));
        __m256 qb = _mm256_sub_ps(_mm256_mul_ps(H, d0), _mm256_mul_ps(yr, dd));
        __m256 qc = _mm256_mul_ps(_mm256_sub_ps(zero, s), yr);
        __m256 disc = _mm256_sub_ps(_mm256_mul_ps(qb, qb), _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), qa), qc));
        disc = _mm256_max_ps(disc, zero);
        z = _mm256_div_ps(_mm256_mul_ps(two, qc), _mm256_sub_ps(_mm256_sub_ps(zero, qb), _mm256_sqrt_ps(disc)));
    } else {
        z = _mm256_div_ps(_mm256_sub_ps(v, x0), W);
    }
    z = _mm256_blendv_ps(_mm256_set1_ps(0.5f), z, inside);
    /* partials of Q (y = y0 + H Q) and of ladj w.r.t. z, s, d0, d1 (see the scalar twin) */
    const __m256 omz = _mm256_sub_ps(one, z), t = _mm256_mul_ps(z, omz), o2z = _mm256_sub_ps(omz, z);
    const __m256 o2t = _mm256_sub_ps(one, _mm256_add_ps(t, t));
    const __m256 D = _mm256_add_ps(s, _mm256_mul_ps(dd, t)), iD = _mm256_div_ps(one, D);
    const __m256 Q = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(s, _mm256_mul_ps(z, z)), _mm256_mul_ps(d0, t)), iD);
    const __m256 N = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(two, s), t),
                                                 _mm256_mul_ps(d0, _mm256_mul_ps(omz, omz))),
                                   _mm256_mul_ps(d1, _mm256_mul_ps(z, z)));
    const __m256 iN = _mm256_div_ps(one, N);
    const __m256 Dz = _mm256_mul_ps(dd, o2z);
    const __m256 Qz = _mm256_mul_ps(_mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(two, s), z), _mm256_mul_ps(d0, o2z)),
                                                  _mm256_mul_ps(Q, Dz)), iD);
    const __m256 Qs = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(z, z), _mm256_mul_ps(Q, o2t)), iD);
    const __m256 Qd0 = _mm256_mul_ps(_mm256_mul_ps(t, _mm256_sub_ps(one, Q)), iD);
    const __m256 Qd1 = _mm256_sub_ps(zero, _mm256_mul_ps(_mm256_mul_ps(Q, t), iD));
    const __m256 twot_iD = _mm256_mul_ps(_mm256_add_ps(t, t), iD);
    const __m256 lz = _mm256_sub_ps(
        _mm256_mul_ps(_mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(two, s), o2z), _mm256_mul_ps(_mm256_mul_ps(two, d0), omz)),
                                    _mm256_mul_ps(_mm256_mul_ps(two, d1), z)), iN),
        _mm256_mul_ps(_mm256_mul_ps(two, Dz), iD));
    const __m256 lsv = _mm256_sub_ps(_mm256_add_ps(_mm256_div_ps(two, s), _mm256_mul_ps(_mm256_add_ps(t, t), iN)),
                                     _mm256_mul_ps(_mm256_mul_ps(two, o2t), iD));
    const __m256 ld0 = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(omz, omz), iN), twot_iD);
    const __m256 ld1 = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(z, z), iN), twot_iD);
    __m256 gy, gl, dv;
    if (inverse) {
        /* x(y): dL/dy = (gx - gli dlogf'/dx) / f'(x), and the parameters see
         * upstream (-dL/dy) on f and (-gli) on log f' */
        const __m256 jac = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(s, s), N), _mm256_mul_ps(iD, iD));
        const __m256 lx = _mm256_div_ps(lz, W);
        dv = _mm256_div_ps(_mm256_sub_ps(g1, _mm256_mul_ps(g2, lx)), jac);
        gy = _mm256_sub_ps(zero, dv);
        gl = _mm256_sub_ps(zero, g2);
    } else {
        gy = g1;
        gl = g2;
    }
    const __m256 gyH = _mm256_mul_ps(gy, H), iW = _mm256_div_ps(one, W);
    const __m256 Gz = _mm256_add_ps(_mm256_mul_ps(gyH, Qz), _mm256_mul_ps(gl, lz));
    const __m256 Gs = _mm256_add_ps(_mm256_mul_ps(gyH, Qs), _mm256_mul_ps(gl, lsv));
    const __m256 GH = _mm256_add_ps(_mm256_mul_ps(gy, Q), _mm256_mul_ps(Gs, iW));
    const __m256 GW = _mm256_sub_ps(zero, _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(Gz, z), _mm256_mul_ps(Gs, s)), iW));
    if (!inverse) dv = _mm256_mul_ps(Gz, iW);
    /* identity outside the knots: dv passes the upstream through */
    _mm256_storeu_ps(dv_out, _mm256_blendv_ps(g1, dv, inside));
    if (!dprm) return;
    const __m256 gk[6] = {
        _mm256_sub_ps(_mm256_sub_ps(zero, _mm256_mul_ps(Gz, iW)), GW), GW,
        _mm256_sub_ps(gy, GH), GH,
        _mm256_add_ps(_mm256_mul_ps(gyH, Qd0), _mm256_mul_ps(gl, ld0)),
        _mm256_add_ps(_mm256_mul_ps(gyH, Qd1), _mm256_mul_ps(gl, ld1))};
    /* Raw gradients, still transposed, written over q (each p_i is read before its
     * slot is overwritten). Widths/heights: dL/dp_i = [i < k] dL/dC_k +
     * [i <= k] dL/dC_{k+1}, then softmax backward and the soft-clip derivative. */
    const __m256 twoB = _mm256_set1_ps(2.0f * bound);
    for (int axis = 0; axis < 2; axis++) {
        const __m256 gc0 = _mm256_mul_ps(twoB, gk[2 * axis]), gc1 = _mm256_mul_ps(twoB, gk[2 * axis + 1]);
        __m256 *p = q + axis * K;
        __m256 dot = zero;
        for (int64_t i = 0; i < K; i++) {
            __m256 gp = _mm256_add_ps(_mm256_and_ps(lt[i + 1], gc0), _mm256_and_ps(lt[i], gc1));
            dot = _mm256_add_ps(dot, _mm256_mul_ps(p[i], gp));
        }
        for (int64_t i = 0; i < K; i++) {
            __m256 gp = _mm256_add_ps(_mm256_and_ps(lt[i + 1], gc0), _mm256_and_ps(lt[i], gc1));
            p[i] = _mm256_and_ps(inside, _mm256_mul_ps(_mm256_mul_ps(p[i], _mm256_sub_ps(gp, dot)),
                                                       dclip[axis * K + i]));
        }
    }
    /* Derivatives: raw j - 1 belongs to knot j; only knots k and k+1 carry gradient. */
    {
        __m256 a0 = _mm256_add_ps(one, _mm256_andnot_ps(sign, _mm256_div_ps(b.r0, vls)));
        __m256 a1 = _mm256_add_ps(one, _mm256_andnot_ps(sign, _mm256_div_ps(b.r1, vls)));
        const __m256 gd0 = _mm256_and_ps(inside, _mm256_div_ps(_mm256_mul_ps(gk[4], d0), _mm256_mul_ps(a0, a0)));
        const __m256 gd1 = _mm256_and_ps(inside, _mm256_div_ps(_mm256_mul_ps(gk[5], d1), _mm256_mul_ps(a1, a1)));
        for (int64_t j = 1; j < K; j++) {
            __m256 is_k = _mm256_andnot_ps(lt[j + 1], lt[j]);     /* j == k */
            __m256 is_k1 = _mm256_andnot_ps(lt[j], lt[j - 1]);    /* j == k + 1 */
            q[2 * K + j - 1] = _mm256_add_ps(_mm256_and_ps(is_k, gd0), _mm256_and_ps(is_k1, gd1));
        }
    }
    /* transpose back and store the rows of the valid lanes */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t jb = 0; jb < P; jb += 8) {
        __m256 r[8];
        for (int l = 0; l < 8; l++) r[l] = (jb + l < P) ? q[jb + l] : zero;
        hm_transpose8(r);
        const __m256i cmask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(P - jb)), lane);
        for (int l = 0; l < nvalid; l++) {
            float *row = dprm + l * pstride + jb;
            if (jb + 8 <= P) _mm256_storeu_ps(row, r[l]);
            else _mm256_maskstore_ps(row, cmask, r[l]);
        }
    }
}

/* ELU / SiLU / tanh over rows x cols (cols a multiple of 8) with the vector exp;
 * within a few ulp of the libm-based scalar forms (tanh as (e^2x - 1) / (e^2x + 1),
 * absolute error ~1e-7 near 0). */
HM_AVX2 static void hm_act_rows_avx2(float *h, int64_t ld, int64_t rows, int64_t cols, int act) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j += 8) {
            __m256 x = _mm256_loadu_ps(h + r * ld + j), y;
            if (act == HM_ACT_ELU) {
                __m256 e = _mm256_sub_ps(hm_exp256(_mm256_min_ps(x, zero)), one);
                y = _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, zero, _CMP_GT_OQ));
            } else if (act == HM_ACT_SILU) {
                y = _mm256_div_ps(x, _mm256_add_ps(one, hm_exp256(_mm256_sub_ps(zero, x))));
            } else if (act == HM_ACT_TANH) {
                __m256 e = hm_exp256(_mm256_add_ps(x, x));
                y = _mm256_div_ps(_mm256_sub_ps(e, one), _mm256_add_ps(e, one));
                /* e overflows to a large finite value past |x| ~ 44: (e-1)/(e+1) -> 1 */
            } else {
                y = x;
            }
            _mm256_storeu_ps(h + r * ld + j, y);
        }
}

/* run-time CPU check (libgcc initialises the CPU model before main) */
static int hm_flows_have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

int hm_rqs_forward(float *y, float *ladj, const float *x, const float *params, int64_t n,
                   int64_t bins, float bound, float slope, int circular) {
    if (hm_rqs_bad(bins, bound)) return -1;
    const int64_t K = bins, P = 3 * bins - 1;
    const float ls = (float)log((double)slope);
#ifdef HM_FLOWS_X86
    if (K <= HM_RQS_VEC_MAX_BINS && hm_flows_have_avx2()) {
        const int64_t nchunks = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t i0 = c * 8, nv = n - i0 < 8 ? n - i0 : 8;
            float v[8] = {0}, o[8], l[8];
            for (int64_t j = 0; j < nv; j++) v[j] = circular ? hm_cshift(x[i0 + j], bound) : x[i0 + j];
            hm_rqs8_avx2(o, l, v, params + i0 * P, P, (int)nv, K, bound, ls, 0);
            for (int64_t j = 0; j < nv; j++) {
                y[i0 + j] = o[j];
                if (ladj) ladj[i0 + j] = l[j];
            }
        }
        return 0;
    }
#endif
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
    for (int64_t i = 0; i < n; i++) {
        float pw[HM_RQS_MAX_BINS], ph[HM_RQS_MAX_BINS];
        hm_rqs_bin b;
        float u = circular ? hm_cshift(x[i], bound) : x[i];
        hm_rqs_locate(&b, pw, ph, u, 0, params + i * P, K, bound, ls);
        float yv = u, l = 0.0f;
        if (b.k >= 0) yv = hm_rqs_eval(&b, u, &l);
        y[i] = yv;
        if (ladj) ladj[i] = l;
    }
    return 0;
}

int hm_rqs_inverse(float *x, float *ladj, const float *y, const float *params, int64_t n,
                   int64_t bins, float bound, float slope, int circular) {
    if (hm_rqs_bad(bins, bound)) return -1;
    const int64_t K = bins, P = 3 * bins - 1;
    const float ls = (float)log((double)slope);
#ifdef HM_FLOWS_X86
    if (K <= HM_RQS_VEC_MAX_BINS && hm_flows_have_avx2()) {
        const int64_t nchunks = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t i0 = c * 8, nv = n - i0 < 8 ? n - i0 : 8;
            float v[8] = {0}, o[8], l[8];
            for (int64_t j = 0; j < nv; j++) v[j] = y[i0 + j];
            hm_rqs8_avx2(o, l, v, params + i0 * P, P, (int)nv, K, bound, ls, 1);
            for (int64_t j = 0; j < nv; j++) {
                x[i0 + j] = circular ? hm_cshift(o[j], bound) : o[j];
                if (ladj) ladj[i0 + j] = l[j];
            }
        }
        return 0;
    }
#endif
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
    for (int64_t i = 0; i < n; i++) {
        float l;
        x[i] = hm_rqs_inverse_one(y[i], params + i * P, K, bound, ls, circular, &l);
        if (ladj) ladj[i] = l;
    }
    return 0;
}

int hm_rqs_backward(float *dx, float *dparams, const float *dy, const float *dladj,
                    const float *x, const float *params, int64_t n, int64_t bins, float bound,
                    float slope, int circular) {
    if (hm_rqs_bad(bins, bound)) return -1;
    const int64_t K = bins, P = 3 * bins - 1;
    const float ls = (float)log((double)slope);
#ifdef HM_FLOWS_X86
    if (K <= HM_RQS_VEC_MAX_BINS && hm_flows_have_avx2()) {
        const int64_t nchunks = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t i0 = c * 8, nv = n - i0 < 8 ? n - i0 : 8;
            float v[8] = {0}, g1[8] = {0}, g2[8] = {0}, d[8];
            for (int64_t j = 0; j < nv; j++) {
                v[j] = circular ? hm_cshift(x[i0 + j], bound) : x[i0 + j];
                g1[j] = dy ? dy[i0 + j] : 0.0f;
                g2[j] = dladj ? dladj[i0 + j] : 0.0f;
            }
            hm_rqs8_backward_avx2(d, dparams ? dparams + i0 * P : NULL, v, g1, g2, params + i0 * P, P,
                                  (int)nv, K, bound, ls, 0);
            if (dx)
                for (int64_t j = 0; j < nv; j++) dx[i0 + j] = d[j];
        }
        return 0;
    }
#endif
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
    for (int64_t i = 0; i < n; i++) {
        float pw[HM_RQS_MAX_BINS], ph[HM_RQS_MAX_BINS];
        hm_rqs_bin b;
        const float *prm = params + i * P;
        float gy = dy ? dy[i] : 0.0f, gl = dladj ? dladj[i] : 0.0f;
        /* the circular shift has derivative 1: du/dx = 1 */
        float u = circular ? hm_cshift(x[i], bound) : x[i];
        hm_rqs_locate(&b, pw, ph, u, 0, prm, K, bound, ls);
        if (b.k < 0) {
            if (dx) dx[i] = gy;
            if (dparams) memset(dparams + i * P, 0, (size_t)P * sizeof(float));
            continue;
        }
        float gk[6];
        float z = (u - b.x0) / b.w;
        float gx = hm_rqs_local_grad(&b, z, gy, gl, gk);
        if (dx) dx[i] = gx;
        if (dparams) hm_rqs_raw_grad(dparams + i * P, &b, gk, pw, ph, prm, K, bound, ls);
    }
    return 0;
}

int hm_rqs_inverse_backward(float *dy, float *dparams, const float *dx, const float *dladj,
                            const float *y, const float *params, int64_t n, int64_t bins,
                            float bound, float slope, int circular) {
    /* circular or not, the gradient is the same: the shift after the inverse
     * spline has derivative 1 and no parameters */
    (void)circular;
    if (hm_rqs_bad(bins, bound)) return -1;
    const int64_t K = bins, P = 3 * bins - 1;
    const float ls = (float)log((double)slope);
#ifdef HM_FLOWS_X86
    if (K <= HM_RQS_VEC_MAX_BINS && hm_flows_have_avx2()) {
        const int64_t nchunks = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
        for (int64_t c = 0; c < nchunks; c++) {
            const int64_t i0 = c * 8, nv = n - i0 < 8 ? n - i0 : 8;
            float v[8] = {0}, g1[8] = {0}, g2[8] = {0}, d[8];
            for (int64_t j = 0; j < nv; j++) {
                v[j] = y[i0 + j];
                g1[j] = dx ? dx[i0 + j] : 0.0f;
                g2[j] = dladj ? dladj[i0 + j] : 0.0f;
            }
            hm_rqs8_backward_avx2(d, dparams ? dparams + i0 * P : NULL, v, g1, g2, params + i0 * P, P,
                                  (int)nv, K, bound, ls, 1);
            if (dy)
                for (int64_t j = 0; j < nv; j++) dy[i0 + j] = d[j];
        }
        return 0;
    }
#endif
#pragma omp parallel for schedule(static) if (n > HM_FLOWS_PAR_RQS)
    for (int64_t i = 0; i < n; i++) {
        float pw[HM_RQS_MAX_BINS], ph[HM_RQS_MAX_BINS];
        hm_rqs_bin b;
        const float *prm = params + i * P;
        /* x = shift(u) has derivative 1, so dL/du = dL/dx */
        float gx = dx ? dx[i] : 0.0f, gli = dladj ? dladj[i] : 0.0f;
        hm_rqs_locate(&b, pw, ph, y[i], 1, prm, K, bound, ls);
        if (b.k < 0) {
            if (dy) dy[i] = gx;
            if (dparams) memset(dparams + i * P, 0, (size_t)P * sizeof(float));
            continue;
        }
        float z = hm_rqs_solve(&b, y[i]);
        float gk[6];
        /* dlog f'/dx at the preimage, and f'(x) */
        float lx = hm_rqs_local_grad(&b, z, 0.0f, 1.0f, gk);
        float jac = expf(hm_rqs_logjac(&b, z));
        /* ladj_inv(y) = -log f'(x(y)): the total upstream on x is gx - gli * lx */
        float gdy = (gx - gli * lx) / jac;
        if (dy) dy[i] = gdy;
        if (dparams) {
            /* dtheta = -gdy * df/dtheta - gli * dlog f'/dtheta */
            hm_rqs_local_grad(&b, z, -gdy, -gli, gk);
            hm_rqs_raw_grad(dparams + i * P, &b, gk, pw, ph, prm, K, bound, ls);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------
 * Masked linear
 * ------------------------------------------------------------------------------ */

static void hm_apply_mask(float *wm, const float *w, const uint8_t *mask, int64_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 18))
    for (int64_t i = 0; i < n; i++) wm[i] = mask[i] ? w[i] : 0.0f;
}

void hm_masked_linear_forward(float *out, float *wmasked, const float *inp, const float *weight,
                              const uint8_t *mask, const float *bias, int64_t rows,
                              int64_t in_features, int64_t out_features) {
    hm_apply_mask(wmasked, weight, mask, out_features * in_features);
    /* Serial on purpose: a parallel region right before the GEMM left OpenMP
     * threads spinning against the GEMM's own threads (8 ms instead of 0.3). */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < out_features; j++) out[r * out_features + j] = bias ? bias[j] : 0.0f;
    if (rows == 0 || out_features == 0 || in_features == 0) return;
    hm_gemm(0, 1, rows, out_features, in_features, 1.0f, inp, in_features, wmasked, in_features, 1.0f,
            out, out_features, NULL);
}

void hm_masked_linear_backward(float *dinp, float *dweight, float *dbias, float *wmasked,
                               const float *dout, const float *inp, const float *weight,
                               const uint8_t *mask, int64_t rows, int64_t in_features,
                               int64_t out_features) {
    const int64_t nw = out_features * in_features;
    if (dinp) {
        if (rows > 0 && in_features > 0 && out_features > 0) {
            hm_apply_mask(wmasked, weight, mask, nw);
            hm_gemm(0, 0, rows, in_features, out_features, 1.0f, dout, out_features, wmasked, in_features,
                    0.0f, dinp, in_features, NULL);
        } else {
            memset(dinp, 0, (size_t)(rows * in_features) * sizeof(float));
        }
    }
    if (dweight) {
        if (rows > 0 && nw > 0) {
            hm_gemm(1, 0, out_features, in_features, rows, 1.0f, dout, out_features, inp, in_features, 0.0f,
                    dweight, in_features, NULL);
            for (int64_t i = 0; i < nw; i++)
                if (!mask[i]) dweight[i] = 0.0f;
        } else {
            memset(dweight, 0, (size_t)nw * sizeof(float));
        }
    }
    if (dbias) {
        /* column sums in double, per block of columns, rows in order: deterministic */
        enum { CB = 256 };
        const int64_t nblk = (out_features + CB - 1) / CB;
#pragma omp parallel for schedule(static) if (rows * out_features > (1 << 18) && nblk > 1)
        for (int64_t blk = 0; blk < nblk; blk++) {
            double acc[CB];
            const int64_t j0 = blk * CB, nj = (out_features - j0 < CB) ? out_features - j0 : CB;
            for (int64_t j = 0; j < nj; j++) acc[j] = 0.0;
            for (int64_t r = 0; r < rows; r++) {
                const float *d = dout + r * out_features + j0;
                for (int64_t j = 0; j < nj; j++) acc[j] += (double)d[j];
            }
            for (int64_t j = 0; j < nj; j++) dbias[j0 + j] = (float)acc[j];
        }
    }
}

/* ------------------------------------------------------------------------------
 * MADE masks (zuko's MaskedMLP)
 * ------------------------------------------------------------------------------ */

int64_t hm_made_masks_size(int64_t out_features, int64_t in_features, const int64_t *hidden,
                           int64_t n_hidden) {
    int64_t total = 0, prev = in_features;
    for (int64_t l = 0; l < n_hidden; l++) {
        total += hidden[l] * prev;
        prev = hidden[l];
    }
    return total + out_features * prev;
}

/* lexicographic comparison of two 0/1 rows (False < True, first column first),
 * which is the order of torch.unique(dim=0) */
static int hm_row_cmp(const uint8_t *a, const uint8_t *b, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        if (a[j] != b[j]) return a[j] < b[j] ? -1 : 1;
    return 0;
}

int hm_made_masks(uint8_t *masks, const uint8_t *adjacency, int64_t out_features,
                  int64_t in_features, const int64_t *hidden, int64_t n_hidden) {
    const int64_t M = out_features, N = in_features;
    int64_t hmax = 1;
    for (int64_t l = 0; l < n_hidden; l++) hmax = hidden[l] > hmax ? hidden[l] : hmax;
    uint8_t *A = malloc((size_t)(M * N + 1));
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(2 * M + 1));
    int64_t *uniq = malloc(sizeof(int64_t) * (size_t)(2 * M + 1)); /* uniq rows, then inverse */
    uint8_t *P = malloc((size_t)(M * M + 1));
    int64_t *ind = malloc(sizeof(int64_t) * (size_t)(2 * hmax + M + 1)); /* indices, prev, reach */
    uint8_t *full = malloc((size_t)(M * hmax + M * N + 1));
    int rc = 0;
    if (!A || !idx || !uniq || !P || !ind || !full) {
        rc = -2;
        goto done;
    }
    for (int64_t i = 0; i < M * N; i++) A[i] = adjacency[i] != 0;

    /* stable bottom-up merge sort of the row indices */
    int64_t *src = idx, *dst = idx + M;
    for (int64_t i = 0; i < M; i++) src[i] = i;
    for (int64_t width = 1; width < M; width *= 2) {
        for (int64_t lo = 0; lo < M; lo += 2 * width) {
            int64_t mid = lo + width < M ? lo + width : M, hi = lo + 2 * width < M ? lo + 2 * width : M;
            int64_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                dst[o++] = hm_row_cmp(A + src[b] * N, A + src[a] * N, N) < 0 ? src[b++] : src[a++];
            while (a < mid) dst[o++] = src[a++];
            while (b < hi) dst[o++] = src[b++];
        }
        int64_t *tmp = src;
        src = dst;
        dst = tmp;
    }
    /* unique rows (representatives) and the inverse map */
    int64_t *rep = uniq, *inverse = uniq + M;
    int64_t U = 0;
    for (int64_t i = 0; i < M; i++) {
        int64_t r = src[i];
        if (U == 0 || hm_row_cmp(A + rep[U - 1] * N, A + r * N, N) != 0) rep[U++] = r;
        inverse[r] = U - 1;
    }
    /* P[u][v] = 1 iff row v's set is a subset of row u's set */
    for (int64_t u = 0; u < U; u++)
        for (int64_t v = 0; v < U; v++) {
            const uint8_t *au = A + rep[u] * N, *av = A + rep[v] * N;
            uint8_t sub = 1;
            for (int64_t j = 0; j < N && sub; j++)
                if (av[j] && !au[j]) sub = 0;
            P[u * U + v] = sub;
        }

    int64_t *indices = ind, *prev_indices = ind + hmax, *reach = ind + 2 * hmax;
    int64_t prev = N;
    uint8_t *out = masks;
    for (int64_t l = 0; l <= n_hidden; l++) {
        /* full[u][c]: connection of merged row u to column c of the previous layer */
        for (int64_t u = 0; u < U; u++)
            for (int64_t c = 0; c < prev; c++)
                full[u * prev + c] = (l == 0) ? A[rep[u] * N + c] : P[u * U + prev_indices[c]];
        int any = 0;
        for (int64_t i = 0; i < U * prev && !any; i++) any = full[i];
        if (!any) {
            rc = -1;
            goto done;
        }
        if (l < n_hidden) {
            int64_t R = 0;
            for (int64_t u = 0; u < U; u++) {
                int nz = 0;
                for (int64_t c = 0; c < prev && !nz; c++) nz = full[u * prev + c];
                if (nz) reach[R++] = u;
            }
            for (int64_t h = 0; h < hidden[l]; h++) {
                indices[h] = reach[h % R];
                memcpy(out + h * prev, full + indices[h] * prev, (size_t)prev);
            }
            out += hidden[l] * prev;
            memcpy(prev_indices, indices, sizeof(int64_t) * (size_t)hidden[l]);
            prev = hidden[l];
        } else {
            for (int64_t m = 0; m < M; m++) memcpy(out + m * prev, full + inverse[m] * prev, (size_t)prev);
        }
    }
done:
    free(A);
    free(idx);
    free(uniq);
    free(P);
    free(ind);
    free(full);
    return rc;
}

void hm_maf_adjacency(uint8_t *adj, const int64_t *order, int64_t features, int64_t context,
                      int64_t total) {
    const int64_t cols = features + context;
    for (int64_t i = 0; i < features; i++)
        for (int64_t t = 0; t < total; t++) {
            uint8_t *row = adj + (i * total + t) * cols;
            for (int64_t j = 0; j < features; j++) row[j] = order[i] > order[j];
            for (int64_t c = 0; c < context; c++) row[features + c] = 1;
        }
}

/* ------------------------------------------------------------------------------
 * MADE forward (sgemm per layer)
 * ------------------------------------------------------------------------------ */

static inline float hm_act(float v, int act) {
    switch (act) {
    case HM_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case HM_ACT_ELU: return v > 0.0f ? v : expm1f(v);
    case HM_ACT_SILU: return v / (1.0f + expf(-v));
    case HM_ACT_TANH: return tanhf(v);
    default: return v;
    }
}

static void hm_act_rows(float *h, int64_t ld, int64_t rows, int64_t cols, int act) {
    if (act == HM_ACT_IDENTITY) return;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) h[r * ld + j] = hm_act(h[r * ld + j], act);
}

int64_t hm_made_forward_scratch_floats(const hm_made_layer *layers, int n_layers, int64_t batch) {
    int64_t hmax = 0;
    for (int l = 0; l + 1 < n_layers; l++)
        hmax = layers[l].out_features > hmax ? layers[l].out_features : hmax;
    return 2 * batch * hmax;
}

void hm_made_forward(float *out, float *scratch, const hm_made_layer *layers, int n_layers,
                     const float *x, int64_t batch) {
    int64_t hmax = 0;
    for (int l = 0; l + 1 < n_layers; l++)
        hmax = layers[l].out_features > hmax ? layers[l].out_features : hmax;
    const float *in = x;
    for (int l = 0; l < n_layers; l++) {
        const hm_made_layer *L = &layers[l];
        const int last = (l == n_layers - 1);
        float *dst = last ? out : scratch + (l % 2) * batch * hmax;
        const int64_t no = L->out_features, ni = L->in_features;
#pragma omp parallel for schedule(static) if (batch * no > (1 << 16))
        for (int64_t r = 0; r < batch; r++) {
            for (int64_t j = 0; j < no; j++) dst[r * no + j] = L->bias ? L->bias[j] : 0.0f;
        }
        if (batch > 0 && no > 0 && ni > 0)
            hm_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)no, (int)ni,
                           1.0f, in, (int)ni, L->weight, (int)ni, 1.0f, dst, (int)no);
        if (!last && L->activation != HM_ACT_IDENTITY) {
#pragma omp parallel for schedule(static) if (batch * no > (1 << 15))
            for (int64_t r = 0; r < batch; r++) hm_act_rows(dst + r * no, no, 1, no, L->activation);
        }
        in = dst;
    }
}

/* ------------------------------------------------------------------------------
 * Autoregressive inversion
 * ------------------------------------------------------------------------------ */

#define HM_MAF_RB 48     /* rows per block: a multiple of the 6- and 12-row micro-tiles */
#define HM_MAF_SLOTS 32  /* per-block work areas: the most threads a call uses */
#define HM_MAF_MAX_LAYERS 64
#define HM_MR 6          /* micro-tile rows */
#define HM_NR 16         /* micro-tile columns (two AVX registers) */
#define HM_NC 8          /* column granularity: widths are padded to multiples of 8 */

static inline int64_t hm_round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

/*
 * out[r, j] = init(r, j) + sum_{k < K_j} in[r, k] wt[k, j], then ReLU if relu,
 * for r < rows (a multiple of HM_MR) and j < ncols (a multiple of HM_NC). init is
 * a bias row (ldinit = 0) or a matrix with leading dimension ldinit. wt is packed
 * [K, ldw] (weights transposed, columns padded with zeros). K_j = K, or, when kb
 * is given, min(K, kb[j / HM_NC]): the inputs past kb[] have zero weights into
 * those columns (the MADE's triangular structure), so they are skipped.
 * Columns go in tiles of 16 (the last one 8 wide if needed).
 */
static void hm_mm_portable(float *out, int64_t ldo, const float *in, int64_t ldi, const float *wt,
                           int64_t ldw, int64_t K, const int32_t *kb, int64_t ncols, int64_t rows,
                           const float *init, int64_t ldinit, int relu) {
    for (int64_t j0 = 0; j0 < ncols; j0 += HM_NR) {
        const int nw = ncols - j0 >= HM_NR ? HM_NR : HM_NC;
        int64_t Kt = K;
        if (kb && kb[(j0 + nw) / HM_NC - 1] < Kt) Kt = kb[(j0 + nw) / HM_NC - 1];
        for (int64_t r0 = 0; r0 < rows; r0 += HM_MR) {
            float acc[HM_MR][HM_NR];
            for (int i = 0; i < HM_MR; i++) {
                const float *src = init + (ldinit ? (r0 + i) * ldinit : 0) + j0;
                for (int j = 0; j < nw; j++) acc[i][j] = src[j];
            }
            for (int64_t k = 0; k < Kt; k++) {
                const float *w = wt + k * ldw + j0;
                for (int i = 0; i < HM_MR; i++) {
                    const float a = in[(r0 + i) * ldi + k];
                    for (int j = 0; j < nw; j++) acc[i][j] += a * w[j];
                }
            }
            for (int i = 0; i < HM_MR; i++) {
                float *dst = out + (r0 + i) * ldo + j0;
                for (int j = 0; j < nw; j++) dst[j] = relu && acc[i][j] < 0.0f ? 0.0f : acc[i][j];
            }
        }
    }
}

#ifdef HM_FLOWS_X86
/* 6 x 16 register tile: 12 accumulators, 2 weight vectors, 1 broadcast fit the
 * 16 ymm registers; per k: 12 FMAs for 2 loads and 6 broadcasts (FMA-bound). */
HM_AVX2 static void hm_tile16_avx2(float *out, int64_t ldo, const float *in, int64_t ldi,
                                   const float *wt, int64_t ldw, int64_t K, int64_t rows,
                                   const float *init, int64_t ldinit, int relu) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t r0 = 0; r0 < rows; r0 += HM_MR) {
        __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (ldinit) {
            const float *s = init + r0 * ldinit;
            c00 = _mm256_loadu_ps(s);              c01 = _mm256_loadu_ps(s + 8);
            c10 = _mm256_loadu_ps(s + ldinit);     c11 = _mm256_loadu_ps(s + ldinit + 8);
            c20 = _mm256_loadu_ps(s + 2 * ldinit); c21 = _mm256_loadu_ps(s + 2 * ldinit + 8);
            c30 = _mm256_loadu_ps(s + 3 * ldinit); c31 = _mm256_loadu_ps(s + 3 * ldinit + 8);
            c40 = _mm256_loadu_ps(s + 4 * ldinit); c41 = _mm256_loadu_ps(s + 4 * ldinit + 8);
            c50 = _mm256_loadu_ps(s + 5 * ldinit); c51 = _mm256_loadu_ps(s + 5 * ldinit + 8);
        } else {
            c00 = c10 = c20 = c30 = c40 = c50 = _mm256_loadu_ps(init);
            c01 = c11 = c21 = c31 = c41 = c51 = _mm256_loadu_ps(init + 8);
        }
        const float *a0 = in + r0 * ldi;
        const float *w = wt;
        for (int64_t k = 0; k < K; k++, w += ldw) {
            const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
            __m256 a;
            a = _mm256_broadcast_ss(a0 + k);           c00 = _mm256_fmadd_ps(a, w0, c00); c01 = _mm256_fmadd_ps(a, w1, c01);
            a = _mm256_broadcast_ss(a0 + ldi + k);     c10 = _mm256_fmadd_ps(a, w0, c10); c11 = _mm256_fmadd_ps(a, w1, c11);
            a = _mm256_broadcast_ss(a0 + 2 * ldi + k); c20 = _mm256_fmadd_ps(a, w0, c20); c21 = _mm256_fmadd_ps(a, w1, c21);
            a = _mm256_broadcast_ss(a0 + 3 * ldi + k); c30 = _mm256_fmadd_ps(a, w0, c30); c31 = _mm256_fmadd_ps(a, w1, c31);
            a = _mm256_broadcast_ss(a0 + 4 * ldi + k); c40 = _mm256_fmadd_ps(a, w0, c40); c41 = _mm256_fmadd_ps(a, w1, c41);
            a = _mm256_broadcast_ss(a0 + 5 * ldi + k); c50 = _mm256_fmadd_ps(a, w0, c50); c51 = _mm256_fmadd_ps(a, w1, c51);
        }
        if (relu) {
            c00 = _mm256_max_ps(c00, zero); c01 = _mm256_max_ps(c01, zero);
            c10 = _mm256_max_ps(c10, zero); c11 = _mm256_max_ps(c11, zero);
            c20 = _mm256_max_ps(c20, zero); c21 = _mm256_max_ps(c21, zero);
            c30 = _mm256_max_ps(c30, zero); c31 = _mm256_max_ps(c31, zero);
            c40 = _mm256_max_ps(c40, zero); c41 = _mm256_max_ps(c41, zero);
            c50 = _mm256_max_ps(c50, zero); c51 = _mm256_max_ps(c51, zero);
        }
        float *d = out + r0 * ldo;
        _mm256_storeu_ps(d, c00);           _mm256_storeu_ps(d + 8, c01);
        _mm256_storeu_ps(d + ldo, c10);     _mm256_storeu_ps(d + ldo + 8, c11);
        _mm256_storeu_ps(d + 2 * ldo, c20); _mm256_storeu_ps(d + 2 * ldo + 8, c21);
        _mm256_storeu_ps(d + 3 * ldo, c30); _mm256_storeu_ps(d + 3 * ldo + 8, c31);
        _mm256_storeu_ps(d + 4 * ldo, c40); _mm256_storeu_ps(d + 4 * ldo + 8, c41);
        _mm256_storeu_ps(d + 5 * ldo, c50); _mm256_storeu_ps(d + 5 * ldo + 8, c51);
    }
}

/* 12 x 8 tile for the last 8 columns of an odd width (affine parameters are all
 * one such tile): 12 rows give 12 independent accumulators, enough to hide the
 * FMA latency that 6 would expose. rows must be a multiple of 12. */
HM_AVX2 static void hm_tile8_avx2(float *out, int64_t ldo, const float *in, int64_t ldi,
                                  const float *wt, int64_t ldw, int64_t K, int64_t rows,
                                  const float *init, int64_t ldinit, int relu) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t r0 = 0; r0 < rows; r0 += 2 * HM_MR) {
        __m256 c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
        const float *s = init + (ldinit ? r0 * ldinit : 0);
        const int64_t li = ldinit;
        c0 = _mm256_loadu_ps(s);          c1 = _mm256_loadu_ps(s + li);      c2 = _mm256_loadu_ps(s + 2 * li);
        c3 = _mm256_loadu_ps(s + 3 * li); c4 = _mm256_loadu_ps(s + 4 * li);  c5 = _mm256_loadu_ps(s + 5 * li);
        c6 = _mm256_loadu_ps(s + 6 * li); c7 = _mm256_loadu_ps(s + 7 * li);  c8 = _mm256_loadu_ps(s + 8 * li);
        c9 = _mm256_loadu_ps(s + 9 * li); c10 = _mm256_loadu_ps(s + 10 * li); c11 = _mm256_loadu_ps(s + 11 * li);
        const float *a0 = in + r0 * ldi;
        const float *w = wt;
        for (int64_t k = 0; k < K; k++, w += ldw) {
            const __m256 w0 = _mm256_loadu_ps(w);
            const float *ak = a0 + k;
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak), w0, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + ldi), w0, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 2 * ldi), w0, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 3 * ldi), w0, c3);
            c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 4 * ldi), w0, c4);
            c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 5 * ldi), w0, c5);
            c6 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 6 * ldi), w0, c6);
            c7 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 7 * ldi), w0, c7);
            c8 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 8 * ldi), w0, c8);
            c9 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 9 * ldi), w0, c9);
            c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 10 * ldi), w0, c10);
            c11 = _mm256_fmadd_ps(_mm256_broadcast_ss(ak + 11 * ldi), w0, c11);
        }
        if (relu) {
            c0 = _mm256_max_ps(c0, zero); c1 = _mm256_max_ps(c1, zero); c2 = _mm256_max_ps(c2, zero);
            c3 = _mm256_max_ps(c3, zero); c4 = _mm256_max_ps(c4, zero); c5 = _mm256_max_ps(c5, zero);
            c6 = _mm256_max_ps(c6, zero); c7 = _mm256_max_ps(c7, zero); c8 = _mm256_max_ps(c8, zero);
            c9 = _mm256_max_ps(c9, zero); c10 = _mm256_max_ps(c10, zero); c11 = _mm256_max_ps(c11, zero);
        }
        float *d = out + r0 * ldo;
        _mm256_storeu_ps(d, c0);           _mm256_storeu_ps(d + ldo, c1);       _mm256_storeu_ps(d + 2 * ldo, c2);
        _mm256_storeu_ps(d + 3 * ldo, c3); _mm256_storeu_ps(d + 4 * ldo, c4);   _mm256_storeu_ps(d + 5 * ldo, c5);
        _mm256_storeu_ps(d + 6 * ldo, c6); _mm256_storeu_ps(d + 7 * ldo, c7);   _mm256_storeu_ps(d + 8 * ldo, c8);
        _mm256_storeu_ps(d + 9 * ldo, c9); _mm256_storeu_ps(d + 10 * ldo, c10); _mm256_storeu_ps(d + 11 * ldo, c11);
    }
}
#endif

static inline void hm_mm(int avx2, float *out, int64_t ldo, const float *in, int64_t ldi,
                         const float *wt, int64_t ldw, int64_t K, const int32_t *kb, int64_t ncols,
                         int64_t rows, const float *init, int64_t ldinit, int relu) {
#ifdef HM_FLOWS_X86
    if (avx2) {
        for (int64_t j0 = 0; j0 < ncols; j0 += HM_NR) {
            const int wide = ncols - j0 >= HM_NR;
            const int64_t nw = wide ? HM_NR : HM_NC;
            int64_t Kt = K;
            if (kb && kb[(j0 + nw) / HM_NC - 1] < Kt) Kt = kb[(j0 + nw) / HM_NC - 1];
            const float *ini = init + j0;
            if (wide) hm_tile16_avx2(out + j0, ldo, in, ldi, wt + j0, ldw, Kt, rows, ini, ldinit, relu);
            else hm_tile8_avx2(out + j0, ldo, in, ldi, wt + j0, ldw, Kt, rows, ini, ldinit, relu);
        }
        return;
    }
#else
    (void)avx2;
#endif
    hm_mm_portable(out, ldo, in, ldi, wt, ldw, K, kb, ncols, rows, init, ldinit, relu);
}

/* Where everything lives in the scratch buffer (offsets in floats). Computed the
 * same way by the size query and the kernel. */
typedef struct {
    int64_t F, C, T, Tpad, L;
    int64_t n0pad;   /* width of the first layer's packed output */
    int64_t hmaxpad; /* widest hidden layer, padded */
    int64_t nblocks, nslots;
    int64_t off_wx0, off_wc0, off_b0;
    int64_t off_mid[HM_MAF_MAX_LAYERS], off_bmid[HM_MAF_MAX_LAYERS];
    int64_t off_wl, off_bl;
    int64_t off_int, n_int; /* int32 metadata: per hidden layer fp, perm, and counts */
    int64_t off_slots, slot_floats;
    int64_t total;          /* floats in all */
} hm_maf_plan;

static int hm_maf_make_plan(hm_maf_plan *pl, const hm_made_layer *layers, int n_layers,
                            int64_t batch, int64_t F, int64_t C, int kind, int64_t bins) {
    if (n_layers < 1 || n_layers > HM_MAF_MAX_LAYERS || F < 1 || C < 0 || batch < 0) return -1;
    int64_t T;
    if (kind == HM_UNIVARIATE_AFFINE) T = 2;
    else if (kind == HM_UNIVARIATE_RQS || kind == HM_UNIVARIATE_CIRCULAR_RQS) {
        if (bins < 1 || bins > HM_RQS_MAX_BINS) return -1;
        T = 3 * bins - 1;
    } else return -1;
    const int64_t L = n_layers;
    if (layers[0].in_features != F + C || layers[L - 1].out_features != F * T) return -1;
    for (int64_t l = 1; l < L; l++)
        if (layers[l].in_features != layers[l - 1].out_features) return -1;
    for (int64_t l = 0; l < L; l++)
        if (!layers[l].weight || layers[l].out_features < 1) return -1;
    pl->F = F; pl->C = C; pl->T = T; pl->L = L;
    pl->Tpad = hm_round_up(T, HM_NC);
    pl->hmaxpad = 0;
    pl->n_int = 0;
    for (int64_t l = 0; l + 1 < L; l++) {
        /* fp, perm, cnt[passes <= F], kb[one per 8 columns] */
        pl->n_int += 2 * layers[l].out_features + F + (layers[l].out_features + HM_NC - 1) / HM_NC;
        int64_t hp = hm_round_up(layers[l].out_features, HM_NC);
        pl->hmaxpad = hp > pl->hmaxpad ? hp : pl->hmaxpad;
    }
    pl->n0pad = (L == 1) ? F * pl->Tpad : hm_round_up(layers[0].out_features, HM_NC);
    int64_t off = 0;
    pl->off_wx0 = off; off += F * pl->n0pad;
    pl->off_wc0 = off; off += C * pl->n0pad;
    pl->off_b0 = off;  off += pl->n0pad;
    for (int64_t l = 1; l + 1 < L; l++) {
        int64_t np = hm_round_up(layers[l].out_features, HM_NC);
        pl->off_mid[l] = off;  off += layers[l].in_features * np;
        pl->off_bmid[l] = off; off += np;
    }
    if (L >= 2) {
        pl->off_wl = off; off += F * layers[L - 1].in_features * pl->Tpad;
        pl->off_bl = off; off += F * pl->Tpad;
    } else {
        pl->off_wl = pl->off_bl = 0;
    }
    /* int32 metadata of the hidden layers (see hm_maf_inverse) */
    pl->off_int = off;
    off += pl->n_int;
    pl->nblocks = (batch + HM_MAF_RB - 1) / HM_MAF_RB;
    pl->nslots = pl->nblocks < HM_MAF_SLOTS ? pl->nblocks : HM_MAF_SLOTS;
    pl->slot_floats = (int64_t)HM_MAF_RB * (F + C + pl->n0pad + 2 * pl->hmaxpad + pl->Tpad);
    pl->off_slots = off;
    off += pl->nslots * pl->slot_floats;
    pl->total = off;
    return 0;
}

int64_t hm_maf_inverse_scratch_floats(const hm_made_layer *layers, int n_layers, int64_t batch,
                                      int64_t features, int64_t context_features, int kind,
                                      int64_t bins) {
    hm_maf_plan pl;
    if (hm_maf_make_plan(&pl, layers, n_layers, batch, features, context_features, kind, bins))
        return -1;
    return pl.total;
}

/* Everything a block needs, shared read-only by the threads. */
typedef struct {
    const hm_maf_plan *pl;
    const hm_made_layer *layers;
    const float *scratch;   /* packed weights */
    const int32_t *cnt[HM_MAF_MAX_LAYERS]; /* cnt[l][p]: units of hidden layer l evaluated in pass p */
    const int32_t *kb[HM_MAF_MAX_LAYERS];  /* kb[l][b]: inputs that 8-column block b of layer l reads */
    const float *z, *context;
    const int64_t *order;
    float *x, *ladj;
    int64_t batch, passes, bins;
    int kind, avx2;
    float bound, ls;
} hm_maf_args;

static void hm_maf_invert_feature(const hm_maf_args *a, int64_t i, int64_t r0, int64_t nr,
                                  const float *prm, float *xb) {
    const int64_t F = a->pl->F, Tpad = a->pl->Tpad;
    const int circular = (a->kind == HM_UNIVARIATE_CIRCULAR_RQS);
#ifdef HM_FLOWS_X86
    if (a->avx2 && a->kind != HM_UNIVARIATE_AFFINE && a->bins <= HM_RQS_VEC_MAX_BINS) {
        /* the same path as hm_rqs_inverse */
        for (int64_t c = 0; c < nr; c += 8) {
            const int64_t nv = nr - c < 8 ? nr - c : 8;
            float v[8] = {0}, o[8], l[8];
            for (int64_t j = 0; j < nv; j++) v[j] = a->z[(r0 + c + j) * F + i];
            hm_rqs8_avx2(o, l, v, prm + c * Tpad, Tpad, (int)nv, a->bins, a->bound, a->ls, 1);
            for (int64_t j = 0; j < nv; j++) {
                xb[(c + j) * F + i] = circular ? hm_cshift(o[j], a->bound) : o[j];
                if (a->ladj) a->ladj[r0 + c + j] += l[j];
            }
        }
        return;
    }
#endif
    for (int64_t r = 0; r < nr; r++) {
        const float zz = a->z[(r0 + r) * F + i];
        const float *pp = prm + r * Tpad;
        float xv, l;
        if (a->kind == HM_UNIVARIATE_AFFINE) {
            /* zuko: phi[..., 0] = shift, phi[..., 1] = unconstrained log-scale */
            float s = hm_affine_log_scale(pp[1], a->ls);
            xv = (zz - pp[0]) / expf(s);
            l = -s;
        } else {
            xv = hm_rqs_inverse_one(zz, pp, a->bins, a->bound, a->ls, circular, &l);
        }
        xb[r * F + i] = xv;
        if (a->ladj) a->ladj[r0 + r] += l;
    }
}

static void hm_maf_act(const hm_maf_args *a, float *h, int64_t ld, int64_t rows, int64_t cols, int act) {
    if (act == HM_ACT_IDENTITY || act == HM_ACT_RELU) return; /* ReLU is fused in the product */
#ifdef HM_FLOWS_X86
    if (a->avx2) {
        hm_act_rows_avx2(h, ld, rows, cols, act);
        return;
    }
#else
    (void)a;
#endif
    hm_act_rows(h, ld, rows, cols, act);
}

/* All passes for rows [blk * RB, blk * RB + RB) in the work area `slot`. */
static void hm_maf_block(const hm_maf_args *a, int64_t blk, float *slot) {
    const hm_maf_plan *pl = a->pl;
    const int64_t RB = HM_MAF_RB, F = pl->F, C = pl->C, L = pl->L, Tpad = pl->Tpad;
    const int64_t n0pad = pl->n0pad, hpad = pl->hmaxpad;
    const int64_t r0 = blk * RB, nr = (a->batch - r0 < RB) ? a->batch - r0 : RB;
    const float *S = a->scratch;
    float *xb = slot;             /* [RB, F]  current x (rows past the batch stay 0) */
    float *cb = xb + RB * F;      /* [RB, C]  context rows */
    float *ctx = cb + RB * C;     /* [RB, n0pad] first layer's context part + bias */
    float *ha = ctx + RB * n0pad; /* [RB, hpad] hidden activations, ping-pong */
    float *hb = ha + RB * hpad;
    float *prm = hb + RB * hpad;  /* [RB, Tpad] parameters of one feature */

    memset(xb, 0, sizeof(float) * (size_t)(RB * F));
    if (C > 0) {
        memcpy(cb, a->context + r0 * C, sizeof(float) * (size_t)(nr * C));
        memset(cb + nr * C, 0, sizeof(float) * (size_t)((RB - nr) * C));
    }
    /* The context does not change between passes: its share of the first layer
     * is computed once. */
    hm_mm(a->avx2, ctx, n0pad, cb, C, S + pl->off_wc0, n0pad, C, NULL, n0pad, RB, S + pl->off_b0, 0, 0);
    if (a->ladj)
        for (int64_t r = 0; r < nr; r++) a->ladj[r0 + r] = 0.0f;

    for (int64_t p = 0; p < a->passes; p++) {
        int any = 0;
        for (int64_t i = 0; i < F; i++) any |= (a->order[i] == p);
        if (!any) continue;
        if (L == 1) {
            for (int64_t i = 0; i < F; i++) {
                if (a->order[i] != p) continue;
                hm_mm(a->avx2, prm, Tpad, xb, F, S + pl->off_wx0 + i * Tpad, n0pad, F, NULL, Tpad, RB,
                      ctx + i * Tpad, n0pad, 0);
                hm_maf_invert_feature(a, i, r0, nr, prm, xb);
            }
            continue;
        }
        /* first layer: only the units this pass needs (a prefix after reordering) */
        int64_t n = a->cnt[0][p], nc = hm_round_up(n, HM_NC);
        int act = a->layers[0].activation;
        hm_mm(a->avx2, ha, hpad, xb, F, S + pl->off_wx0, n0pad, F, NULL, nc, RB, ctx, n0pad,
              act == HM_ACT_RELU);
        if (act != HM_ACT_RELU) hm_maf_act(a, ha, hpad, RB, nc, act);
        float *cur = ha, *nxt = hb;
        int64_t kprev = n;
        for (int64_t l = 1; l + 1 < L; l++) {
            n = a->cnt[l][p];
            nc = hm_round_up(n, HM_NC);
            act = a->layers[l].activation;
            hm_mm(a->avx2, nxt, hpad, cur, hpad, S + pl->off_mid[l],
                  hm_round_up(a->layers[l].out_features, HM_NC), kprev, a->kb[l], nc, RB,
                  S + pl->off_bmid[l], 0, act == HM_ACT_RELU);
            if (act != HM_ACT_RELU) hm_maf_act(a, nxt, hpad, RB, nc, act);
            float *t = cur;
            cur = nxt;
            nxt = t;
            kprev = n;
        }
        const int64_t hlast = a->layers[L - 1].in_features;
        for (int64_t i = 0; i < F; i++) {
            if (a->order[i] != p) continue;
            hm_mm(a->avx2, prm, Tpad, cur, hpad, S + pl->off_wl + i * hlast * Tpad, Tpad, kprev, NULL,
                  Tpad, RB, S + pl->off_bl + i * Tpad, 0, 0);
            hm_maf_invert_feature(a, i, r0, nr, prm, xb);
        }
    }
    memcpy(a->x + r0 * F, xb, sizeof(float) * (size_t)(nr * F));
}

int hm_maf_inverse(float *x, float *ladj, float *scratch, const hm_made_layer *layers,
                   int n_layers, const float *z, const float *context, int64_t batch,
                   int64_t features, int64_t context_features, const int64_t *order,
                   int64_t passes, int kind, int64_t bins, float bound, float slope) {
    hm_maf_plan pl;
    if (hm_maf_make_plan(&pl, layers, n_layers, batch, features, context_features, kind, bins))
        return -1;
    if (passes < 1 || passes > features) return -1;
    if (kind != HM_UNIVARIATE_AFFINE && !(bound > 0.0f)) return -1;
    if (context_features > 0 && !context) return -1;
    for (int64_t i = 0; i < features; i++)
        if (order[i] < 0 || order[i] >= passes) return -1;
    if (batch == 0) return 0;

    const int64_t F = features, C = context_features, T = pl.T, Tpad = pl.Tpad, L = pl.L;
    const int32_t NEVER = (int32_t)passes;
    hm_maf_args a;
    memset(&a, 0, sizeof a);

    /* ---- which pass first needs each hidden unit: a unit feeds the units (or the
     * parameters of the features) it has a nonzero weight to, so it is needed from
     * the earliest pass among them. Masked weights are exact zeros, so skipping a
     * unit in the passes before that changes nothing. */
    int32_t *ib = (int32_t *)(scratch + pl.off_int);
    int32_t *fp[HM_MAF_MAX_LAYERS], *perm[HM_MAF_MAX_LAYERS], *cnt[HM_MAF_MAX_LAYERS];
    int32_t *kb[HM_MAF_MAX_LAYERS];
    {
        int64_t o = 0;
        for (int64_t l = 0; l + 1 < L; l++) {
            const int64_t H = layers[l].out_features;
            fp[l] = ib + o; o += H;
            perm[l] = ib + o; o += H;
            cnt[l] = ib + o; o += F;
            kb[l] = ib + o; o += (H + HM_NC - 1) / HM_NC;
        }
    }
    if (L >= 2) {
        const int64_t H = layers[L - 1].in_features;
        const float *W = layers[L - 1].weight;
        int32_t *f = fp[L - 2];
        for (int64_t j = 0; j < H; j++) f[j] = NEVER;
        for (int64_t i = 0; i < F; i++)
            for (int64_t t = 0; t < T; t++) {
                const float *row = W + (i * T + t) * H;
                for (int64_t j = 0; j < H; j++)
                    if (row[j] != 0.0f && order[i] < f[j]) f[j] = (int32_t)order[i];
            }
        for (int64_t l = L - 2; l >= 1; l--) {
            const int64_t Hout = layers[l].out_features, Hin = layers[l].in_features;
            const float *Wl = layers[l].weight;
            int32_t *fo = fp[l], *fi = fp[l - 1];
            for (int64_t j = 0; j < Hin; j++) fi[j] = NEVER;
            for (int64_t k = 0; k < Hout; k++) {
                if (fo[k] == NEVER) continue;
                const float *row = Wl + k * Hin;
                for (int64_t j = 0; j < Hin; j++)
                    if (row[j] != 0.0f && fo[k] < fi[j]) fi[j] = fo[k];
            }
        }
        /* stable counting sort of the units by first pass; cnt[l][p] = #{fp <= p} */
        for (int64_t l = 0; l + 1 < L; l++) {
            const int64_t H = layers[l].out_features;
            int64_t pos = 0;
            for (int32_t v = 0; v <= NEVER; v++) {
                for (int64_t j = 0; j < H; j++)
                    if (fp[l][j] == v) perm[l][pos++] = (int32_t)j;
                if (v < NEVER) cnt[l][v] = (int32_t)pos;
            }
        }
        /* A unit only has nonzero weights from units needed no later than itself,
         * i.e. from the prefix cnt[l-1][fp]; after sorting, an 8-column block reads
         * the prefix of its last (largest fp) unit. The MADE's triangle, skipped. */
        for (int64_t l = 1; l + 1 < L; l++) {
            const int64_t H = layers[l].out_features, nb = (H + HM_NC - 1) / HM_NC;
            for (int64_t b = 0; b < nb; b++) {
                int64_t last = (b + 1) * HM_NC - 1 < H - 1 ? (b + 1) * HM_NC - 1 : H - 1;
                int32_t f = fp[l][perm[l][last]];
                kb[l][b] = f < NEVER ? cnt[l - 1][f] : (int32_t)layers[l].in_features;
            }
        }
    }

    /* ---- pack the weights transposed ([in, out], out padded to HM_NC) in the
     * evaluation order of the units */
    float *wx0 = scratch + pl.off_wx0, *wc0 = scratch + pl.off_wc0, *b0 = scratch + pl.off_b0;
    const int64_t n0pad = pl.n0pad, in0 = F + C;
    const float *W0 = layers[0].weight, *B0 = layers[0].bias;
    for (int64_t col = 0; col < n0pad; col++) {
        int64_t src = -1; /* row of W0 feeding packed column col */
        if (L == 1) {
            int64_t i = col / Tpad, t = col % Tpad;
            if (t < T) src = i * T + t;
        } else if (col < layers[0].out_features) {
            src = perm[0][col];
        }
        for (int64_t f = 0; f < F; f++) wx0[f * n0pad + col] = src >= 0 ? W0[src * in0 + f] : 0.0f;
        for (int64_t c = 0; c < C; c++) wc0[c * n0pad + col] = src >= 0 ? W0[src * in0 + F + c] : 0.0f;
        b0[col] = (src >= 0 && B0) ? B0[src] : 0.0f;
    }
    for (int64_t l = 1; l + 1 < L; l++) {
        const int64_t Hout = layers[l].out_features, Hin = layers[l].in_features;
        const int64_t np = hm_round_up(Hout, HM_NC);
        float *wt = scratch + pl.off_mid[l], *bt = scratch + pl.off_bmid[l];
        for (int64_t kp = 0; kp < Hin; kp++) {
            const int64_t kin = perm[l - 1][kp];
            for (int64_t pos = 0; pos < np; pos++)
                wt[kp * np + pos] = pos < Hout ? layers[l].weight[perm[l][pos] * Hin + kin] : 0.0f;
        }
        for (int64_t pos = 0; pos < np; pos++)
            bt[pos] = (pos < Hout && layers[l].bias) ? layers[l].bias[perm[l][pos]] : 0.0f;
    }
    if (L >= 2) {
        const int64_t Hin = layers[L - 1].in_features;
        const float *WL = layers[L - 1].weight, *BL = layers[L - 1].bias;
        float *wl = scratch + pl.off_wl, *bl = scratch + pl.off_bl;
        for (int64_t i = 0; i < F; i++) {
            for (int64_t kp = 0; kp < Hin; kp++) {
                const int64_t kin = perm[L - 2][kp];
                float *dst = wl + (i * Hin + kp) * Tpad;
                for (int64_t t = 0; t < Tpad; t++) dst[t] = t < T ? WL[(i * T + t) * Hin + kin] : 0.0f;
            }
            for (int64_t t = 0; t < Tpad; t++) bl[i * Tpad + t] = (t < T && BL) ? BL[i * T + t] : 0.0f;
        }
    }

    a.pl = &pl;
    a.layers = layers;
    a.scratch = scratch;
    for (int64_t l = 0; l + 1 < L; l++) {
        a.cnt[l] = cnt[l];
        a.kb[l] = kb[l];
    }
    a.z = z;
    a.context = context;
    a.order = order;
    a.x = x;
    a.ladj = ladj;
    a.batch = batch;
    a.passes = passes;
    a.bins = bins;
    a.kind = kind;
    a.bound = bound;
    a.ls = (float)log((double)slope);
    a.avx2 = 0;
#ifdef HM_FLOWS_X86
    a.avx2 = hm_flows_have_avx2();
#endif

    /* Blocks go round-robin to the threads; thread t works in slot t. A block's
     * result does not depend on who computes it, so neither does the output. */
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
    if (nt > pl.nslots) nt = (int)pl.nslots;
    if (pl.nblocks < 2) nt = 1;
#endif
    float *slots = scratch + pl.off_slots;
    const int64_t nblocks = pl.nblocks, slot_floats = pl.slot_floats;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        float *slot = slots + tid * slot_floats;
        for (int64_t blk = tid; blk < nblocks; blk += nth) hm_maf_block(&a, blk, slot);
    }
    return 0;
}
