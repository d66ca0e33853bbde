/* Layer normalisation, activations and dropout. See nn.h. */
#include "nn.h"
#include <math.h>
#include <string.h>

/* Fork thresholds (elements). A fork/join costs ~3 us; memory-bound loops
 * need more elements than loops that evaluate exp per element. */
#define PAR_MEM ((int64_t)262144)
#define PAR_EXP ((int64_t)32768)

static inline float u32_as_float(uint32_t i) {
    union { uint32_t i; float f; } u;
    u.i = i;
    return u.f;
}
static inline uint32_t float_as_u32(float f) {
    union { uint32_t i; float f; } u;
    u.f = f;
    return u.i;
}

/* cond ? a : b as bit operations. gcc sinks the computation of a branch's
 * value into a conditional block and then, with its default
 * -ftrapping-math, refuses to if-convert that block back (exp might trap):
 * a plain ?: on an exp stops the whole loop from being vectorised. */
static inline float select_f(int cond, float a, float b) {
    uint32_t m = (uint32_t)0 - (uint32_t)(cond != 0);
    return u32_as_float((float_as_u32(a) & m) | (float_as_u32(b) & ~m));
}

/*
 * exp(x) in a form gcc vectorises: Cody-Waite reduction x = n ln2 + r with
 * |r| <= ln2/2, a degree-7 Taylor polynomial for exp(r) (truncation error
 * below 1e-8, so rounding dominates: <= 2 ulp against expf), then 2^n built
 * from exponent bits in two halves so that results in the subnormal range
 * and overflow to inf come out right. No branches: a NaN input runs through
 * the arithmetic and comes out NaN; +-inf are clamped to +-large first.
 */
static inline float hm_expf_vec(float x) {
    float xc = x < -104.0f ? -104.0f : x;
    xc = xc > 89.0f ? 89.0f : xc;
    /* round x / ln2 to an integer with the 1.5 * 2^23 trick: t's low mantissa
     * bits then hold n itself, read below without a float -> int conversion
     * (which would be undefined for NaN) */
    float t = fmaf(xc, 1.44269504088896341f, 12582912.0f);
    float n = t - 12582912.0f;
    float r = fmaf(n, -0.693359375f, xc); /* ln2 split into a short high part ... */
    r = fmaf(n, 2.12194440e-4f, r);       /* ... and the rest */
    float p = 1.98412698e-4f;
    p = fmaf(p, r, 1.38888889e-3f);
    p = fmaf(p, r, 8.33333333e-3f);
    p = fmaf(p, r, 4.16666667e-2f);
    p = fmaf(p, r, 1.66666667e-1f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t ni = (int32_t)(float_as_u32(t) - float_as_u32(12582912.0f));
    int32_t n1 = ni >> 1, n2 = ni - n1;
    return (p * u32_as_float((uint32_t)(n1 + 127) << 23)) * u32_as_float((uint32_t)(n2 + 127) << 23);
}

/* expm1(x): near 0, exp(x) - 1 would cancel, so |x| < 0.5 uses the series
 * (degree 9, truncation < 3e-10 relative); both are evaluated and one
 * selected. */
static inline float hm_expm1f_vec(float x) {
    float e = hm_expf_vec(x) - 1.0f;
    float p = 2.75573192e-6f;
    p = fmaf(p, x, 2.48015873e-5f);
    p = fmaf(p, x, 1.98412698e-4f);
    p = fmaf(p, x, 1.38888889e-3f);
    p = fmaf(p, x, 8.33333333e-3f);
    p = fmaf(p, x, 4.16666667e-2f);
    p = fmaf(p, x, 1.66666667e-1f);
    p = fmaf(p, x, 0.5f);
    p = fmaf(p, x, 1.0f);
    p = p * x;
    return select_f(fabsf(x) < 0.5f, p, e);
}

/* 1 / (1 + exp(-x)); exp overflow gives 0, which is the right limit. */
static inline float hm_sigmoidf_vec(float x) { return 1.0f / (1.0f + hm_expf_vec(-x)); }

void hm_expf_array(float *out, const float *x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) out[i] = hm_expf_vec(x[i]);
}

/* ---------------------------------------------------------------- layernorm */

void hm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                          int64_t rows, int64_t cols, float eps) {
    float inv_cols = cols > 0 ? 1.0f / (float)cols : 0.0f;
    #pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * cols;
        float *y = out + r * cols;
        /* Two passes over the row (it is in L1): the variance of the centred
         * values does not suffer the cancellation of E[x^2] - E[x]^2. */
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < cols; j++) s += x[j];
        float mu = s * inv_cols;
        float v = 0.0f;
        #pragma omp simd reduction(+ : v)
        for (int64_t j = 0; j < cols; j++) {
            float d = x[j] - mu;
            v += d * d;
        }
        float rs = 1.0f / sqrtf(v * inv_cols + eps);
        mean[r] = mu;
        rstd[r] = rs;
        if (w && b) {
            for (int64_t j = 0; j < cols; j++) y[j] = (x[j] - mu) * rs * w[j] + b[j];
        } else if (w) {
            for (int64_t j = 0; j < cols; j++) y[j] = (x[j] - mu) * rs * w[j];
        } else if (b) {
            for (int64_t j = 0; j < cols; j++) y[j] = (x[j] - mu) * rs + b[j];
        } else {
            for (int64_t j = 0; j < cols; j++) y[j] = (x[j] - mu) * rs;
        }
    }
}

/*
 * dinp for one row: with xh = (x - mu) rstd and gw = dout * w,
 *   dinp = rstd * (gw - mean(gw) - xh * mean(gw * xh)).
 */
static inline void ln_row_backward(float *dx, const float *dy, const float *x, const float *w, float mu, float rs,
                                   int64_t cols) {
    float sg = 0.0f, sgx = 0.0f;
    if (w) {
        #pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < cols; j++) {
            float gw = dy[j] * w[j];
            sg += gw;
            sgx += gw * (x[j] - mu) * rs;
        }
    } else {
        #pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < cols; j++) {
            sg += dy[j];
            sgx += dy[j] * (x[j] - mu) * rs;
        }
    }
    float mg = sg / (float)cols, mgx = sgx / (float)cols;
    if (w) {
        for (int64_t j = 0; j < cols; j++) dx[j] = rs * (dy[j] * w[j] - mg - (x[j] - mu) * rs * mgx);
    } else {
        for (int64_t j = 0; j < cols; j++) dx[j] = rs * (dy[j] - mg - (x[j] - mu) * rs * mgx);
    }
}

/* Rows are cut into at most LN_CHUNKS pieces that depend only on `rows`; each
 * piece sums its dw/db contributions in double, and the pieces are added in
 * order afterwards. Up to LN_FUSED_COLS columns the partial sums live on the
 * stack (64 KiB) and are filled in the same pass that computes dinp; wider
 * rows have enough columns to share out by column instead. */
#define LN_CHUNKS 16
#define LN_FUSED_COLS 256

void hm_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int64_t rows, int64_t cols) {
    int params = dw || db;
    if (params && cols <= LN_FUSED_COLS) {
        double part_w[LN_CHUNKS][LN_FUSED_COLS], part_b[LN_CHUNKS][LN_FUSED_COLS];
        int64_t nch = rows < LN_CHUNKS ? rows : LN_CHUNKS;
        #pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t c = 0; c < nch; c++) {
            double *pw = part_w[c], *pb = part_b[c];
            for (int64_t j = 0; j < cols; j++) pw[j] = pb[j] = 0.0;
            int64_t r0 = rows * c / nch, r1 = rows * (c + 1) / nch;
            for (int64_t r = r0; r < r1; r++) {
                const float *x = inp + r * cols, *dy = dout + r * cols;
                float mu = mean[r], rs = rstd[r];
                if (dinp) ln_row_backward(dinp + r * cols, dy, x, w, mu, rs, cols);
                for (int64_t j = 0; j < cols; j++) {
                    pw[j] += (double)(dy[j] * ((x[j] - mu) * rs));
                    pb[j] += (double)dy[j];
                }
            }
        }
        for (int64_t j = 0; j < cols; j++) {
            double sw = 0.0, sb = 0.0;
            for (int64_t c = 0; c < nch; c++) {
                sw += part_w[c][j];
                sb += part_b[c][j];
            }
            if (dw) dw[j] = (float)sw;
            if (db) db[j] = (float)sb;
        }
        return;
    }
    if (dinp) {
        #pragma omp parallel for schedule(static) if (rows * cols > 32768)
        for (int64_t r = 0; r < rows; r++)
            ln_row_backward(dinp + r * cols, dout + r * cols, inp + r * cols, w, mean[r], rstd[r], cols);
    }
    if (params) {
        enum { TILE = 32 };
        int64_t ntiles = (cols + TILE - 1) / TILE;
        #pragma omp parallel for schedule(static) if (ntiles > 1 && rows * cols > 32768)
        for (int64_t t = 0; t < ntiles; t++) {
            int64_t c0 = t * TILE, wd = cols - c0 < TILE ? cols - c0 : TILE;
            double aw[TILE] = {0}, ab[TILE] = {0};
            for (int64_t r = 0; r < rows; r++) {
                const float *x = inp + r * cols + c0, *dy = dout + r * cols + c0;
                float mu = mean[r], rs = rstd[r];
                for (int64_t j = 0; j < wd; j++) {
                    aw[j] += (double)(dy[j] * ((x[j] - mu) * rs));
                    ab[j] += (double)dy[j];
                }
            }
            for (int64_t j = 0; j < wd; j++) {
                if (dw) dw[c0 + j] = (float)aw[j];
                if (db) db[c0 + j] = (float)ab[j];
            }
        }
    }
}

/* -------------------------------------------------------------- activations */

void hm_relu_forward(float *out, const float *x, int64_t n) {
    /* x < 0 ? 0 : x rather than max(x, 0): NaN must come through */
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_MEM)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void hm_relu_backward(float *dx, const float *dout, const float *y, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_MEM)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] <= 0.0f ? 0.0f : dout[i];
}

void hm_leaky_relu_forward(float *out, const float *x, int64_t n, float slope) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_MEM)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], neg = v * slope;
        out[i] = select_f(v > 0.0f, v, neg);
    }
}

void hm_leaky_relu_backward(float *dx, const float *dout, const float *x, int64_t n, float slope) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_MEM)
    for (int64_t i = 0; i < n; i++) {
        float g = dout[i], neg = g * slope;
        dx[i] = select_f(x[i] > 0.0f, g, neg);
    }
}

/* torch tests x <= 0 for the negative branch: NaN takes the positive one in
 * backward (dx = scale * dout), and gives NaN in forward either way. */
void hm_elu_forward(float *out, const float *x, int64_t n, float alpha, float scale) {
    float neg = alpha * scale;
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], lo = neg * hm_expm1f_vec(v), hi = scale * v;
        out[i] = select_f(v <= 0.0f, lo, hi);
    }
}

void hm_elu_backward(float *dx, const float *dout, const float *x, int64_t n, float alpha, float scale) {
    float neg = alpha * scale;
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], lo = dout[i] * neg * hm_expf_vec(v), hi = dout[i] * scale;
        dx[i] = select_f(v <= 0.0f, lo, hi);
    }
}

#define HM_INV_SQRT_2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define HM_SQRT_2_PI 0.79788456080286535588f  /* sqrt(2/pi) */
#define HM_GELU_C 0.044715f

/*
 * The normal distribution function and density for GELU, vectorisable.
 * For a = |x|: Phi(-a) = t exp(-a^2/2 + Q(t)), t = 1 / (1 + 0.3 a), where Q is
 * a degree-10 polynomial in s = 2t - 1 fitted (Chebyshev least squares,
 * fitted for hepml against log Phi in double precision) to 2e-8 over the whole
 * half line; evaluated in float the relative error of Phi(-a) stays below
 * 4e-7 even deep in the tail, where 1 + erf(x / sqrt 2) would cancel. x^2 is
 * split into hi + lo with an fma so that exp(-x^2/2) keeps its precision for
 * large |x|. Phi(x) = 1 - Phi(-x) for x > 0.
 */
static inline void normal_cdf_pdf(float x, float *cdf, float *pdf) {
    float a = fabsf(x);
    float hi = x * x, lo = fmaf(x, x, -hi);
    lo = select_f(lo == lo, lo, 0.0f); /* inf - inf at x = +-inf, where exp(-hi/2) = 0 */
    float e = hm_expf_vec(-0.5f * hi) * (1.0f - 0.5f * lo); /* exp(-x^2 / 2) */
    float t = 1.0f / (1.0f + 0.3f * a);
    float sv = 2.0f * t - 1.0f;
    float q = 1.5665636e-04f;
    q = fmaf(q, sv, -2.0745438e-05f);
    q = fmaf(q, sv, -1.0621672e-03f);
    q = fmaf(q, sv, 1.1935666e-05f);
    q = fmaf(q, sv, 4.7869040e-03f);
    q = fmaf(q, sv, 1.6140752e-03f);
    q = fmaf(q, sv, -2.1741802e-02f);
    q = fmaf(q, sv, -2.8170420e-02f);
    q = fmaf(q, sv, 1.1504143e-01f);
    q = fmaf(q, sv, 7.4144721e-01f);
    q = fmaf(q, sv, -1.5052103e+00f);
    float tail = t * hm_expf_vec(q) * e; /* Phi(-|x|) */
    *cdf = select_f(x < 0.0f, tail, 1.0f - tail);
    *pdf = HM_INV_SQRT_2PI * e;
}

void hm_gelu_forward(float *out, const float *x, int64_t n, int approximate) {
    if (approximate) {
        #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            float u = HM_SQRT_2_PI * (v + HM_GELU_C * v * v * v);
            out[i] = v * hm_sigmoidf_vec(2.0f * u);
        }
    } else {
        #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
        for (int64_t i = 0; i < n; i++) {
            float cdf, pdf;
            normal_cdf_pdf(x[i], &cdf, &pdf);
            out[i] = x[i] * cdf;
        }
    }
}

void hm_gelu_backward(float *dx, const float *dout, const float *x, int64_t n, int approximate) {
    if (approximate) {
        /* d/dx [x s(2u)] = s + 2 x s (1 - s) u' with u' = sqrt(2/pi) (1 + 3c x^2) */
        #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            float u = HM_SQRT_2_PI * (v + HM_GELU_C * v * v * v);
            float du = HM_SQRT_2_PI * (1.0f + 3.0f * HM_GELU_C * v * v);
            float s = hm_sigmoidf_vec(2.0f * u);
            dx[i] = dout[i] * (s + 2.0f * v * s * (1.0f - s) * du);
        }
    } else {
        /* Phi(x) + x phi(x) */
        #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
        for (int64_t i = 0; i < n; i++) {
            float cdf, pdf;
            normal_cdf_pdf(x[i], &cdf, &pdf);
            dx[i] = dout[i] * (cdf + x[i] * pdf);
        }
    }
}

/* log(1 + u) for u in [0, 1] as 2 atanh(s), s = u / (2 + u) <= 1/3: the odd
 * series in s up to s^17 is exact to ~1e-10, and s keeps full relative
 * precision for tiny u (no 1 + u rounding). */
static inline float log1p_unit(float u) {
    float sv = u / (2.0f + u), s2 = sv * sv;
    float p = 1.0f / 17.0f;
    p = fmaf(p, s2, 1.0f / 15.0f);
    p = fmaf(p, s2, 1.0f / 13.0f);
    p = fmaf(p, s2, 1.0f / 11.0f);
    p = fmaf(p, s2, 1.0f / 9.0f);
    p = fmaf(p, s2, 1.0f / 7.0f);
    p = fmaf(p, s2, 1.0f / 5.0f);
    p = fmaf(p, s2, 1.0f / 3.0f);
    p = fmaf(p, s2, 1.0f);
    return 2.0f * sv * p;
}

/* log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): the exp never overflows and
 * the log1p argument stays in (0, 1]. */
void hm_softplus_forward(float *out, const float *x, int64_t n, float beta, float threshold) {
    float inv_beta = 1.0f / beta;
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) {
        float z = x[i] * beta;
        float soft = ((z > 0.0f ? z : 0.0f) + log1p_unit(hm_expf_vec(-fabsf(z)))) * inv_beta;
        out[i] = select_f(z > threshold, x[i], soft);
    }
}

void hm_softplus_backward(float *dx, const float *dout, const float *x, int64_t n, float beta, float threshold) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) {
        float z = x[i] * beta, lo = dout[i] * hm_sigmoidf_vec(z);
        dx[i] = select_f(z > threshold, dout[i], lo);
    }
}

void hm_silu_forward(float *out, const float *x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * hm_sigmoidf_vec(x[i]);
}

void hm_silu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_EXP)
    for (int64_t i = 0; i < n; i++) {
        float s = hm_sigmoidf_vec(x[i]);
        dx[i] = dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

/* ------------------------------------------------------------------ dropout */

void hm_dropout_apply(float *out, const float *x, const float *mask, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (parallel : n > PAR_MEM)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * mask[i];
}
