/*
 * Reductions over the middle axis of [outer, r, inner] (see reduce.h).
 *
 * Two loop shapes cover every kernel:
 * - inner == 1 (reducing the last dims, the common case): one contiguous row
 *   per output; rows are independent and split across threads.
 * - inner > 1: the reduced axis is strided. We walk it row by row over a
 *   block of JB adjacent columns, keeping the JB accumulators on the stack, so
 *   every memory access is contiguous and the column loop vectorises. The
 *   (outer, column block) tasks are independent and split across threads.
 * In both shapes each output's terms are combined in an order fixed by the
 * sizes alone, so the thread count never changes a result.
 */
/* The selects in the loops below (max, clamping in exp, NaN handling) only
 * vectorise when the compiler may assume floating-point operations do not
 * trap; hepml never enables FP exceptions, so this changes no result. */
#pragma GCC optimize("no-trapping-math")

#include "reduce.h"
#include <math.h>
#include <string.h>

#define JB 64
/* Work (elements read) below which a kernel stays on one thread. */
#define PAR_WORK 65536

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* exp for float32 that the compiler can vectorise (libm's expf is a call per
 * element): exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln(2) / 2, with
 * the Cephes polynomial for exp(r); within 2 ulp of the exact value, exactly 0
 * below -87.34 (and for -inf), inf above 88.72, NaN for NaN. The 2^n scale is
 * built from the bits of the rounding sum, so no float->int conversion is
 * needed. Arguments here are max-shifted (<= 0), where it matters most. */
static inline float exp_f(float x) {
    float xc = x < -87.33654f ? -87.33654f : (x > 88.37626f ? 88.37626f : x);
    float t = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    float n = t - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - 0x4B400000u + 127u) << 23; /* the low bits of t hold n */
    float sc;
    memcpy(&sc, &sb, sizeof sc);
    float y = p * sc;
    y = x < -87.33654f ? 0.0f : y;
    return x > 88.72283f ? INFINITY : y;
}

/* ------------------------------------------------------------------ sums */

/* Sixteen independent double accumulators: the compiler vectorises the lane
 * loop (no reassociation needed) with enough chains in flight to hide the
 * add latency, and the lanes are combined in a fixed tree. */
#define LANES 16
static inline double combine(const double *a, double tail) {
    double b[8];
    for (int k = 0; k < 8; k++) b[k] = a[k] + a[k + 8];
    return ((b[0] + b[4]) + (b[1] + b[5])) + ((b[2] + b[6]) + (b[3] + b[7])) + tail;
}

static inline double sum_run(const float *x, int64_t n) {
    double a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) a[k] += (double)x[i + k];
    double t = 0.0;
    for (; i < n; i++) t += x[i];
    return combine(a, t);
}

/* sum of x[k] * y[k] in double lanes */
static inline double dot_run(const float *x, const float *y, int64_t n) {
    double a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) a[k] += (double)x[i + k] * (double)y[i + k];
    double t = 0.0;
    for (; i < n; i++) t += (double)x[i] * (double)y[i];
    return combine(a, t);
}

/* sum of exp(x[k] - shift), through a small stack buffer so the exp loop and
 * the sum loop both vectorise */
static double sumexp_run(const float *x, int64_t n, float shift) {
    float buf[256];
    double t = 0.0;
    for (int64_t c = 0; c < n; c += 256) {
        int64_t w = min64(256, n - c);
        for (int64_t k = 0; k < w; k++) buf[k] = exp_f(x[c + k] - shift);
        t += sum_run(buf, w);
    }
    return t;
}

/* max (or min) of a row ignoring NaN; *has_nan reports NaNs. GCC does not
 * vectorise a float max written as a select (it must keep the NaN order of
 * the scalar code), so the 8 lanes are spelled out with GNU vector types,
 * which GCC lowers to whatever vector width the target has. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline float extreme_run(const float *x, int64_t n, int is_min, int *has_nan) {
    float init = is_min ? INFINITY : -INFINITY;
    v8f m = {init, init, init, init, init, init, init, init};
    v8i nanv = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        v8i take = is_min ? (v < m) : (v > m);
        m = (v8f)(((v8i)v & take) | ((v8i)m & ~take));
        nanv |= v != v;
    }
    float r = init;
    int nan = 0;
    for (int k = 0; k < 8; k++) {
        r = is_min ? (m[k] < r ? m[k] : r) : (m[k] > r ? m[k] : r);
        nan |= nanv[k] != 0;
    }
    for (; i < n; i++) {
        r = is_min ? (x[i] < r ? x[i] : r) : (x[i] > r ? x[i] : r);
        nan |= x[i] != x[i];
    }
    *has_nan = nan;
    return r;
}

#define CHUNK 4096
static double sum_chunked(const float *x, int64_t n) {
    double t = 0.0;
    for (int64_t c = 0; c < n; c += CHUNK) t += sum_run(x + c, min64(CHUNK, n - c));
    return t;
}

/* A long row is cut into at most 256 "super-chunks" whose size depends only
 * on r; their partial sums may be computed in parallel and are added in
 * order, so one long row (a full reduction) uses both cores and still gives
 * the same bits on any thread count. */
static double row_sum(const float *x, int64_t r, int parallel) {
    if (r <= CHUNK) return sum_run(x, r); /* the same value as sum_chunked: one chunk */
    int64_t S = (int64_t)1 << 18, need = (r + 255) / 256;
    if (need > S) S = (need + CHUNK - 1) / CHUNK * CHUNK;
    int64_t ns = (r + S - 1) / S;
    if (ns <= 1) return sum_chunked(x, r);
    double part[256];
    #pragma omp parallel for schedule(static) if (parallel)
    for (int64_t s = 0; s < ns; s++) part[s] = sum_chunked(x + s * S, min64(S, r - s * S));
    double t = 0.0;
    for (int64_t s = 0; s < ns; s++) t += part[s];
    return t;
}

void hm_sum_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, double div) {
    int64_t work = outer * r * inner;
    if (inner == 1) {
        if (outer == 1) {
            out[0] = (float)(row_sum(x, r, work > PAR_WORK) / div);
            return;
        }
        #pragma omp parallel for schedule(static) if (work > PAR_WORK)
        for (int64_t o = 0; o < outer; o++) out[o] = (float)(row_sum(x + o * r, r, 0) / div);
        return;
    }
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (work > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        double acc[JB];
        for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
        const float *base = x + o * r * inner + j0;
        for (int64_t k = 0; k < r; k++) {
            const float *row = base + k * inner;
            for (int64_t j = 0; j < w; j++) acc[j] += (double)row[j];
        }
        for (int64_t j = 0; j < w; j++) out[o * inner + j0 + j] = (float)(acc[j] / div);
    }
}

void hm_sum_backward(float *dx, const float *g, int64_t outer, int64_t r, int64_t inner, float scale) {
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t o = 0; o < outer; o++) {
        float *d = dx + o * r * inner;
        const float *gg = g + o * inner;
        if (inner == 1) {
            float v = gg[0] * scale;
            for (int64_t k = 0; k < r; k++) d[k] = v;
        } else {
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < inner; j++) d[k * inner + j] = gg[j] * scale;
        }
    }
}

#define INT_SUM(NAME, T)                                                                   \
    void NAME(int64_t *out, const T *x, int64_t outer, int64_t r, int64_t inner) {          \
        _Pragma("omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)")       \
        for (int64_t o = 0; o < outer; o++) {                                              \
            int64_t *po = out + o * inner;                                                 \
            for (int64_t j = 0; j < inner; j++) po[j] = 0;                                 \
            for (int64_t k = 0; k < r; k++) {                                              \
                const T *row = x + (o * r + k) * inner;                                    \
                for (int64_t j = 0; j < inner; j++) po[j] += (int64_t)row[j];              \
            }                                                                              \
        }                                                                                  \
    }
INT_SUM(hm_sum_i64_forward, int64_t)
INT_SUM(hm_sum_u8_forward, uint8_t)

/* --------------------------------------------------------- nansum/nanmean */

void hm_nansum_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, int mean) {
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        double acc[JB];
        int64_t cnt[JB];
        for (int64_t j = 0; j < w; j++) { acc[j] = 0.0; cnt[j] = 0; }
        const float *base = x + o * r * inner + j0;
        for (int64_t k = 0; k < r; k++) {
            const float *row = base + k * inner;
            for (int64_t j = 0; j < w; j++) {
                float v = row[j];
                int ok = v == v;
                acc[j] += ok ? (double)v : 0.0;
                cnt[j] += ok;
            }
        }
        for (int64_t j = 0; j < w; j++)
            out[o * inner + j0 + j] = (float)(mean ? acc[j] / (double)cnt[j] : acc[j]);
    }
}

void hm_nansum_backward(float *dx, const float *g, const float *x, int64_t outer, int64_t r, int64_t inner,
                        int mean) {
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        float scale[JB];
        const float *base = x + o * r * inner + j0;
        float *dbase = dx + o * r * inner + j0;
        const float *gg = g + o * inner + j0;
        if (mean) {
            int64_t cnt[JB];
            for (int64_t j = 0; j < w; j++) cnt[j] = 0;
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) cnt[j] += base[k * inner + j] == base[k * inner + j];
            for (int64_t j = 0; j < w; j++) scale[j] = gg[j] / (float)cnt[j];
        } else {
            for (int64_t j = 0; j < w; j++) scale[j] = gg[j];
        }
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) {
                float v = base[k * inner + j];
                dbase[k * inner + j] = v == v ? scale[j] : 0.0f;
            }
    }
}

/* ------------------------------------------------------------------- prod */

void hm_prod_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner) {
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * inner; t++) {
        int64_t o = t / inner, j = t % inner;
        const float *p = x + o * r * inner + j;
        double acc = 1.0;
        for (int64_t k = 0; k < r; k++) acc *= (double)p[k * inner];
        out[t] = (float)acc;
    }
}

void hm_prod_backward(float *dx, const float *g, const float *x, int64_t outer, int64_t r, int64_t inner) {
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * inner; t++) {
        int64_t o = t / inner, j = t % inner;
        const float *p = x + o * r * inner + j;
        float *d = dx + o * r * inner + j;
        /* product of the non-zero entries and the number of zeros: the
         * derivative w.r.t. x_k is the product of all other entries */
        double nz = 1.0;
        int64_t zeros = 0;
        for (int64_t k = 0; k < r; k++) {
            if (p[k * inner] == 0.0f) zeros++;
            else nz *= (double)p[k * inner];
        }
        double gv = (double)g[t];
        for (int64_t k = 0; k < r; k++) {
            double v = (double)p[k * inner], res;
            if (zeros == 0) res = gv * (nz / v);
            else if (zeros == 1) res = v == 0.0 ? gv * nz : 0.0;
            else res = 0.0;
            d[k * inner] = (float)res;
        }
    }
}

/* ---------------------------------------------------------------- max/min */

/* Is v a better max (min) than the current best b? NaN beats everything
 * except an earlier NaN, so the first NaN wins, as in torch. */
static inline int better(float v, float b, int is_min) {
    return (is_min ? v < b : v > b) || (v != v && b == b);
}

/* One contiguous row: the vectorised extreme, then the first position
 * holding it (or the first NaN). */
static void maxmin_row(float *val, int64_t *idx, const float *x, int64_t r, int is_min) {
    int nan;
    float m = extreme_run(x, r, is_min, &nan);
    int64_t k = 0;
    if (nan) {
        while (x[k] == x[k]) k++;
        m = x[k];
    } else if (idx) {
        while (x[k] != m) k++;
    }
    if (val) *val = m;
    if (idx) *idx = k;
}

void hm_maxmin_forward(float *val, int64_t *idx, const float *x, int64_t outer, int64_t r, int64_t inner,
                       int is_min) {
    if (inner == 1) {
        #pragma omp parallel for schedule(static) if (outer * r > PAR_WORK)
        for (int64_t o = 0; o < outer; o++)
            maxmin_row(val ? val + o : NULL, idx ? idx + o : NULL, x + o * r, r, is_min);
        return;
    }
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *base = x + o * r * inner + j0;
        float best[JB];
        int64_t bi[JB];
        for (int64_t j = 0; j < w; j++) { best[j] = base[j]; bi[j] = 0; }
        for (int64_t k = 1; k < r; k++) {
            const float *row = base + k * inner;
            for (int64_t j = 0; j < w; j++) {
                float v = row[j];
                int b = better(v, best[j], is_min);
                best[j] = b ? v : best[j];
                bi[j] = b ? k : bi[j];
            }
        }
        for (int64_t j = 0; j < w; j++) {
            if (val) val[o * inner + j0 + j] = best[j];
            if (idx) idx[o * inner + j0 + j] = bi[j];
        }
    }
}

void hm_select_backward(float *dx, const float *g, const int64_t *idx, int64_t outer, int64_t r, int64_t inner) {
    memset(dx, 0, (size_t)(outer * r * inner) * sizeof(float));
    #pragma omp parallel for schedule(static) if (outer * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * inner; t++) {
        int64_t o = t / inner, j = t % inner;
        dx[(o * r + idx[t]) * inner + j] = g[t];
    }
}

static inline int same(float a, float b) { return a == b || (a != a && b != b); }

void hm_amax_backward(float *dx, const float *g, const float *x, const float *val, int64_t outer, int64_t r,
                      int64_t inner) {
    if (inner == 1) {
        #pragma omp parallel for schedule(static) if (outer * r > PAR_WORK)
        for (int64_t o = 0; o < outer; o++) {
            const float *xr = x + o * r;
            float *d = dx + o * r, v = val[o];
            int64_t cnt = 0;
            for (int64_t k = 0; k < r; k++) cnt += same(xr[k], v);
            float share = g[o] / (float)cnt;
            for (int64_t k = 0; k < r; k++) d[k] = same(xr[k], v) ? share : 0.0f;
        }
        return;
    }
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *base = x + o * r * inner + j0;
        float *dbase = dx + o * r * inner + j0;
        const float *vv = val + o * inner + j0, *gg = g + o * inner + j0;
        int64_t cnt[JB];
        float share[JB];
        for (int64_t j = 0; j < w; j++) cnt[j] = 0;
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) cnt[j] += same(base[k * inner + j], vv[j]);
        for (int64_t j = 0; j < w; j++) share[j] = gg[j] / (float)cnt[j];
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) dbase[k * inner + j] = same(base[k * inner + j], vv[j]) ? share[j] : 0.0f;
    }
}

/* --------------------------------------------------------------- var/std */

/* sum of (x[k] - m)^2 in double lanes */
static inline double ssq_run(const float *x, int64_t n, double m) {
    double a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            double d = (double)x[i + k] - m;
            a[k] += d * d;
        }
    double t = 0.0;
    for (; i < n; i++) t += ((double)x[i] - m) * ((double)x[i] - m);
    return combine(a, t);
}

void hm_var_forward(float *out, float *mean, const float *x, int64_t outer, int64_t r, int64_t inner,
                    double correction, int take_sqrt) {
    int64_t nb = (inner + JB - 1) / JB;
    double dof = (double)r - correction;
    if (dof < 0) dof = 0; /* torch: nan / inf when there are not enough degrees of freedom */
    /* two passes: the mean first, then squared deviations from it, which
     * avoids the cancellation of sum(x^2) - n mean^2 */
    if (inner == 1) {
        #pragma omp parallel for schedule(static) if (outer * r > PAR_WORK)
        for (int64_t o = 0; o < outer; o++) {
            double m = sum_chunked(x + o * r, r) / (double)r;
            double v = ssq_run(x + o * r, r, m) / dof;
            out[o] = (float)(take_sqrt ? sqrt(v) : v);
            if (mean) mean[o] = (float)m;
        }
        return;
    }
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *base = x + o * r * inner + j0;
        double m[JB], ss[JB];
        for (int64_t j = 0; j < w; j++) { m[j] = 0.0; ss[j] = 0.0; }
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) m[j] += (double)base[k * inner + j];
        for (int64_t j = 0; j < w; j++) m[j] /= (double)r;
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) {
                double d = (double)base[k * inner + j] - m[j];
                ss[j] += d * d;
            }
        for (int64_t j = 0; j < w; j++) {
            double v = ss[j] / dof;
            out[o * inner + j0 + j] = (float)(take_sqrt ? sqrt(v) : v);
            if (mean) mean[o * inner + j0 + j] = (float)m[j];
        }
    }
}

void hm_var_backward(float *dx, const float *g, const float *x, const float *mean, const float *out, int64_t outer,
                     int64_t r, int64_t inner, double correction, int is_std) {
    double dof = (double)r - correction;
    if (dof < 0) dof = 0;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * r; t++) {
        int64_t o = t / r;
        const float *xr = x + t * inner, *mr = mean + o * inner, *gr = g + o * inner, *sr = out + o * inner;
        float *d = dx + t * inner;
        for (int64_t j = 0; j < inner; j++) {
            /* a zero std has a zero gradient (torch masks it the same way) */
            float c = is_std ? (sr[j] == 0.0f ? 0.0f : (float)(gr[j] / (dof * (double)sr[j])))
                             : (float)(2.0 * gr[j] / dof);
            d[j] = c * (xr[j] - mr[j]);
        }
    }
}

/* -------------------------------------------------------------- logsumexp */

void hm_logsumexp_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner) {
    if (inner == 1) {
        #pragma omp parallel for schedule(static) if (outer * r > PAR_WORK)
        for (int64_t o = 0; o < outer; o++) {
            int nan;
            float m = extreme_run(x + o * r, r, 0, &nan);
            if (nan) out[o] = NAN;
            /* with an infinite max every shift would be inf - inf: the result is the max */
            else if (isinf(m)) out[o] = m;
            else out[o] = (float)((double)m + log(sumexp_run(x + o * r, r, m)));
        }
        return;
    }
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *base = x + o * r * inner + j0;
        float m[JB], shift[JB];
        double s[JB];
        for (int64_t j = 0; j < w; j++) { m[j] = -INFINITY; s[j] = 0.0; }
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) m[j] = better(base[k * inner + j], m[j], 0) ? base[k * inner + j] : m[j];
        for (int64_t j = 0; j < w; j++) shift[j] = isinf(m[j]) ? 0.0f : m[j];
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) s[j] += (double)exp_f(base[k * inner + j] - shift[j]);
        for (int64_t j = 0; j < w; j++)
            out[o * inner + j0 + j] = isinf(m[j]) ? m[j] : (float)((double)m[j] + log(s[j]));
    }
}

void hm_logsumexp_backward(float *dx, const float *g, const float *x, const float *out, int64_t outer, int64_t r,
                           int64_t inner) {
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t k = 0; k < r; k++) {
            const float *xr = x + (o * r + k) * inner, *lr = out + o * inner, *gr = g + o * inner;
            float *d = dx + (o * r + k) * inner;
            for (int64_t j = 0; j < inner; j++) d[j] = gr[j] * exp_f(xr[j] - lr[j]);
        }
    }
}

/* ---------------------------------------------------------------- softmax */

static void softmax_row(float *y, const float *x, int64_t r, int log_) {
    int nan;
    float m = extreme_run(x, r, 0, &nan);
    if (nan) m = NAN; /* a NaN poisons the row, as in torch */
    if (log_) {
        float ls = (float)log(sumexp_run(x, r, m));
        for (int64_t k = 0; k < r; k++) y[k] = (x[k] - m) - ls;
    } else {
        for (int64_t k = 0; k < r; k++) y[k] = exp_f(x[k] - m);
        float inv = (float)(1.0 / sum_run(y, r));
        for (int64_t k = 0; k < r; k++) y[k] *= inv;
    }
}

void hm_softmax_forward(float *y, const float *x, int64_t outer, int64_t r, int64_t inner, int log_) {
    int64_t work = outer * r * inner;
    if (inner == 1) {
        #pragma omp parallel for schedule(static) if (work > PAR_WORK)
        for (int64_t o = 0; o < outer; o++) softmax_row(y + o * r, x + o * r, r, log_);
        return;
    }
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (work > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *xb = x + o * r * inner + j0;
        float *yb = y + o * r * inner + j0;
        float m[JB], ls[JB];
        double s[JB];
        for (int64_t j = 0; j < w; j++) { m[j] = -INFINITY; s[j] = 0.0; }
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) m[j] = better(xb[k * inner + j], m[j], 0) ? xb[k * inner + j] : m[j];
        for (int64_t k = 0; k < r; k++)
            for (int64_t j = 0; j < w; j++) {
                float e = exp_f(xb[k * inner + j] - m[j]);
                if (!log_) yb[k * inner + j] = e;
                s[j] += (double)e;
            }
        if (log_) {
            for (int64_t j = 0; j < w; j++) ls[j] = (float)log(s[j]);
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) yb[k * inner + j] = (xb[k * inner + j] - m[j]) - ls[j];
        } else {
            for (int64_t j = 0; j < w; j++) ls[j] = (float)(1.0 / s[j]);
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) yb[k * inner + j] *= ls[j];
        }
    }
}

void hm_softmax_backward(float *dx, const float *g, const float *y, int64_t outer, int64_t r, int64_t inner,
                         int log_) {
    int64_t work = outer * r * inner;
    if (inner == 1) {
        #pragma omp parallel for schedule(static) if (work > PAR_WORK)
        for (int64_t o = 0; o < outer; o++) {
            const float *gr = g + o * r, *yr = y + o * r;
            float *d = dx + o * r;
            if (log_) {
                float sg = (float)sum_run(gr, r);
                for (int64_t k = 0; k < r; k++) d[k] = gr[k] - exp_f(yr[k]) * sg;
            } else {
                float dot = (float)dot_run(gr, yr, r);
                for (int64_t k = 0; k < r; k++) d[k] = yr[k] * (gr[k] - dot);
            }
        }
        return;
    }
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (work > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *gb = g + o * r * inner + j0, *yb = y + o * r * inner + j0;
        float *db = dx + o * r * inner + j0;
        double s[JB];
        float sf[JB];
        for (int64_t j = 0; j < w; j++) s[j] = 0.0;
        if (log_) {
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) s[j] += (double)gb[k * inner + j];
            for (int64_t j = 0; j < w; j++) sf[j] = (float)s[j];
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++)
                    db[k * inner + j] = gb[k * inner + j] - exp_f(yb[k * inner + j]) * sf[j];
        } else {
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) s[j] += (double)gb[k * inner + j] * (double)yb[k * inner + j];
            for (int64_t j = 0; j < w; j++) sf[j] = (float)s[j];
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) db[k * inner + j] = yb[k * inner + j] * (gb[k * inner + j] - sf[j]);
        }
    }
}

/* ----------------------------------------------------------------- cumsum */

void hm_cumsum(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, int reverse) {
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *xb = x + o * r * inner + j0;
        float *ob = out + o * r * inner + j0;
        double acc[JB];
        for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
        for (int64_t kk = 0; kk < r; kk++) {
            int64_t k = reverse ? r - 1 - kk : kk;
            for (int64_t j = 0; j < w; j++) {
                acc[j] += (double)xb[k * inner + j];
                ob[k * inner + j] = (float)acc[j];
            }
        }
    }
}

/* ------------------------------------------------------------------- norm */

void hm_norm_forward(float *out, const float *x, int64_t outer, int64_t r, int64_t inner, double p) {
    int64_t nb = (inner + JB - 1) / JB;
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * nb; t++) {
        int64_t o = t / nb, j0 = (t % nb) * JB, w = min64(JB, inner - j0);
        const float *xb = x + o * r * inner + j0;
        double acc[JB];
        for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
        if (p == 2.0) {
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) {
                    double v = (double)xb[k * inner + j];
                    acc[j] += v * v;
                }
            for (int64_t j = 0; j < w; j++) out[o * inner + j0 + j] = (float)sqrt(acc[j]);
        } else if (p == 1.0) {
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) acc[j] += fabs((double)xb[k * inner + j]);
            for (int64_t j = 0; j < w; j++) out[o * inner + j0 + j] = (float)acc[j];
        } else {
            for (int64_t k = 0; k < r; k++)
                for (int64_t j = 0; j < w; j++) acc[j] += pow(fabs((double)xb[k * inner + j]), p);
            for (int64_t j = 0; j < w; j++) out[o * inner + j0 + j] = (float)pow(acc[j], 1.0 / p);
        }
    }
}

void hm_norm_backward(float *dx, const float *g, const float *x, const float *out, int64_t outer, int64_t r,
                      int64_t inner, double p) {
    #pragma omp parallel for schedule(static) if (outer * r * inner > PAR_WORK)
    for (int64_t t = 0; t < outer * r; t++) {
        int64_t o = t / r;
        const float *xr = x + t * inner, *nr = out + o * inner, *gr = g + o * inner;
        float *d = dx + t * inner;
        for (int64_t j = 0; j < inner; j++) {
            float v = xr[j], n = nr[j];
            if (n == 0.0f) { d[j] = 0.0f; continue; }
            if (p == 2.0) d[j] = gr[j] * v / n;
            else if (p == 1.0) d[j] = v > 0 ? gr[j] : (v < 0 ? -gr[j] : 0.0f);
            else {
                double a = fabs((double)v);
                double s = v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
                d[j] = (float)((double)gr[j] * s * pow(a / (double)n, p - 1.0));
            }
        }
    }
}
