/* Pointwise regression losses. See losses.h. */
#include "losses.h"
#include <math.h>

#define PAR_N ((int64_t)65536)

/* cond ? a : b without a branch. gcc sinks the arithmetic of a ?: arm into a
 * conditional block and then (with its default -ftrapping-math) will not
 * if-convert it back, which stops the loop from being vectorised; this form
 * keeps both arms unconditional. */
static inline float select_f(int cond, float a, float b) {
    union { float f; uint32_t u; } x, y, r;
    x.f = a;
    y.f = b;
    uint32_t m = (uint32_t)0 - (uint32_t)(cond != 0);
    r.u = (x.u & m) | (y.u & ~m);
    return r.f;
}

/* One element's loss. */
static inline __attribute__((always_inline)) float loss_value(int kind, float d, float param) {
    float a = fabsf(d);
    switch (kind) {
    case HM_LOSS_MSE: return d * d;
    case HM_LOSS_L1: return a;
    case HM_LOSS_HUBER: {
        float quad = 0.5f * d * d, lin = param * (a - 0.5f * param);
        return select_f(a < param, quad, lin);
    }
    default: {
        float quad = 0.5f * d * d / param, lin = a - 0.5f * param;
        return select_f(a < param, quad, lin);
    }
    }
}

/* d loss / d d at d (torch's branch conventions, see losses.h). */
static inline __attribute__((always_inline)) float loss_grad(int kind, float d, float param) {
    switch (kind) {
    case HM_LOSS_MSE: return 2.0f * d;
    case HM_LOSS_L1: return (float)(d > 0.0f) - (float)(d < 0.0f);
    case HM_LOSS_HUBER: {
        float g = select_f(d < -param, -param, d);
        return select_f(d > param, param, g);
    }
    default: {
        float g = select_f(d < -param, -1.0f, d / param);
        return select_f(d > param, 1.0f, g);
    }
    }
}

int64_t hm_loss_partials(int64_t n) { return n > 0 ? (n + HM_LOSS_CHUNK - 1) / HM_LOSS_CHUNK : 1; }

/* Sum of the losses of elements [i0, i1) in double: eight interleaved
 * accumulators (independent dependency chains, a fixed order), then the
 * tail, then the eight combined pairwise. */
static inline __attribute__((always_inline)) double chunk_sum(const float *x, const float *t, int64_t i0,
                                                              int64_t i1, int kind, float param) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)loss_value(kind, x[i + l] - t[i + l], param);
    for (int l = 0; i < i1; i++, l++) acc[l] += (double)loss_value(kind, x[i] - t[i], param);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#define FOR_EACH_KIND(kind, CALL)                                                                                    \
    switch (kind) {                                                                                                  \
    case HM_LOSS_MSE: CALL(HM_LOSS_MSE); break;                                                                      \
    case HM_LOSS_L1: CALL(HM_LOSS_L1); break;                                                                        \
    case HM_LOSS_HUBER: CALL(HM_LOSS_HUBER); break;                                                                  \
    default: CALL(HM_LOSS_SMOOTH_L1); break;                                                                         \
    }

void hm_loss_forward(float *out, double *partials, const float *inp, const float *target, int64_t n, int kind,
                     float param, int reduction) {
    if (reduction == HM_REDUCTION_NONE) {
#define NONE_LOOP(K)                                                                                                 \
        _Pragma("omp parallel for simd schedule(static) if (parallel : n > PAR_N)")                                  \
        for (int64_t i = 0; i < n; i++) out[i] = loss_value(K, inp[i] - target[i], param);
        FOR_EACH_KIND(kind, NONE_LOOP)
#undef NONE_LOOP
        return;
    }
    int64_t nch = (n + HM_LOSS_CHUNK - 1) / HM_LOSS_CHUNK;
#define SUM_LOOP(K)                                                                                                  \
    _Pragma("omp parallel for schedule(static) if (n > PAR_N)")                                                      \
    for (int64_t c = 0; c < nch; c++) {                                                                              \
        int64_t i0 = c * HM_LOSS_CHUNK, i1 = i0 + HM_LOSS_CHUNK < n ? i0 + HM_LOSS_CHUNK : n;                        \
        partials[c] = chunk_sum(inp, target, i0, i1, K, param);                                                      \
    }
    FOR_EACH_KIND(kind, SUM_LOOP)
#undef SUM_LOOP
    double s = 0.0;
    for (int64_t c = 0; c < nch; c++) s += partials[c];
    out[0] = reduction == HM_REDUCTION_MEAN ? (float)(s / (double)n) : (float)s;
}

void hm_loss_backward(float *dinp, float *dtarget, const float *dout, const float *inp, const float *target,
                      int64_t n, int kind, float param, int reduction) {
    if (reduction == HM_REDUCTION_NONE) {
#define BWD_NONE(K)                                                                                                  \
        _Pragma("omp parallel for simd schedule(static) if (parallel : n > PAR_N)")                                  \
        for (int64_t i = 0; i < n; i++) {                                                                            \
            float g = dout[i] * loss_grad(K, inp[i] - target[i], param);                                             \
            if (dinp) dinp[i] = g;                                                                                   \
            if (dtarget) dtarget[i] = -g;                                                                            \
        }
        FOR_EACH_KIND(kind, BWD_NONE)
#undef BWD_NONE
        return;
    }
    float w = reduction == HM_REDUCTION_MEAN ? (float)((double)dout[0] / (double)n) : dout[0];
#define BWD_RED(K)                                                                                                   \
    _Pragma("omp parallel for simd schedule(static) if (parallel : n > PAR_N)")                                      \
    for (int64_t i = 0; i < n; i++) {                                                                                \
        float g = w * loss_grad(K, inp[i] - target[i], param);                                                       \
        if (dinp) dinp[i] = g;                                                                                       \
        if (dtarget) dtarget[i] = -g;                                                                                \
    }
    FOR_EACH_KIND(kind, BWD_RED)
#undef BWD_RED
}
