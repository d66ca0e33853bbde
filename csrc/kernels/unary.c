/* The selects in hm_expf/hm_logf/... and in the loops below only become
 * vector blends when GCC may assume floating-point ops do not trap; hepml
 * never enables FP exceptions, and no result changes (nan/inf included). */
#pragma GCC optimize("no-trapping-math")
#include "unary.h"

/* Thread counts never change results here: every element is computed on its
 * own, by the same code whichever thread or vector lane gets it. Cheap ops
 * only pay for a fork/join on large arrays; transcendental ones sooner. */
#define HM_U_PAR_CHEAP 131072
#define HM_U_PAR_COSTLY 16384

#define HM_MAP(THR, EXPR)                                                       \
    do {                                                                        \
        const int64_t thr_ = (THR);                                             \
        _Pragma("omp parallel for schedule(static) if (n > thr_)")              \
        for (int64_t i = 0; i < n; i++) {                                       \
            float v = x[i];                                                     \
            out[i] = (EXPR);                                                    \
        }                                                                       \
    } while (0)

/* torch's sign: 0 for +-0 and for nan (numpy gives nan for nan). */
static inline float sign_of(float v) { return (float)((v > 0.0f) - (v < 0.0f)); }

/* max(v, lo) then min(., hi): nan in v stays nan, lo > hi gives hi */
static inline float clampf(float v, float lo, float hi) {
    float t = v < lo ? lo : v;
    return t > hi ? hi : t;
}

/* x ** p for a scalar p, with the special exponents torch computes by
 * multiplication / sqrt (so x**2 is exactly x*x, x**0.5 exactly sqrt). */
static void pow_scalar(float *out, const float *x, int64_t n, float p) {
    if (p == 2.0f) HM_MAP(HM_U_PAR_CHEAP, v * v);
    else if (p == 1.0f) HM_MAP(HM_U_PAR_CHEAP, v);
    else if (p == 0.0f) HM_MAP(HM_U_PAR_CHEAP, ((void)v, 1.0f)); /* also for nan and inf, as powf */
    else if (p == 3.0f) HM_MAP(HM_U_PAR_CHEAP, v * v * v);
    else if (p == 0.5f) HM_MAP(HM_U_PAR_CHEAP, sqrtf(v));
    else if (p == -0.5f) HM_MAP(HM_U_PAR_CHEAP, 1.0f / sqrtf(v));
    else if (p == -1.0f) HM_MAP(HM_U_PAR_CHEAP, 1.0f / v);
    else if (p == -2.0f) HM_MAP(HM_U_PAR_CHEAP, 1.0f / (v * v));
    else HM_MAP(HM_U_PAR_COSTLY, powf(v, p));
}

void hm_unary_forward(float *out, const float *x, int64_t n, int op, const float *prm) {
    switch (op) {
    case HM_U_NEG: HM_MAP(HM_U_PAR_CHEAP, -v); break;
    case HM_U_ABS: HM_MAP(HM_U_PAR_CHEAP, fabsf(v)); break;
    case HM_U_EXP: HM_MAP(HM_U_PAR_COSTLY, hm_expf(v)); break;
    case HM_U_LOG: HM_MAP(HM_U_PAR_COSTLY, hm_logf(v)); break;
    case HM_U_LOG1P: HM_MAP(HM_U_PAR_COSTLY, log1pf(v)); break;
    case HM_U_EXPM1: HM_MAP(HM_U_PAR_COSTLY, expm1f(v)); break;
    case HM_U_SQRT: HM_MAP(HM_U_PAR_CHEAP, sqrtf(v)); break;
    case HM_U_RSQRT: HM_MAP(HM_U_PAR_CHEAP, 1.0f / sqrtf(v)); break;
    case HM_U_SQUARE: HM_MAP(HM_U_PAR_CHEAP, v * v); break;
    case HM_U_SIN: HM_MAP(HM_U_PAR_COSTLY, sinf(v)); break;
    case HM_U_COS: HM_MAP(HM_U_PAR_COSTLY, cosf(v)); break;
    case HM_U_TANH: HM_MAP(HM_U_PAR_COSTLY, hm_tanhf(v)); break;
    case HM_U_SIGMOID: HM_MAP(HM_U_PAR_COSTLY, hm_sigmoidf(v)); break;
    case HM_U_ATAN: HM_MAP(HM_U_PAR_COSTLY, atanf(v)); break;
    case HM_U_SIGN: HM_MAP(HM_U_PAR_CHEAP, sign_of(v)); break;
    case HM_U_FLOOR: HM_MAP(HM_U_PAR_CHEAP, floorf(v)); break;
    case HM_U_CEIL: HM_MAP(HM_U_PAR_CHEAP, ceilf(v)); break;
    /* half to even, as torch and numpy (C's roundf goes half away from zero) */
    case HM_U_ROUND: HM_MAP(HM_U_PAR_CHEAP, nearbyintf(v)); break;
    case HM_U_RECIPROCAL: HM_MAP(HM_U_PAR_CHEAP, 1.0f / v); break;
    case HM_U_ERF: HM_MAP(HM_U_PAR_COSTLY, erff(v)); break;
    case HM_U_LOGIT: {
        float eps = prm[0], lo = eps, hi = 1.0f - eps;
        if (eps < 0.0f) HM_MAP(HM_U_PAR_COSTLY, hm_logf(v / (1.0f - v)));
        else HM_MAP(HM_U_PAR_COSTLY, hm_logf(clampf(v, lo, hi) / (1.0f - clampf(v, lo, hi))));
        break;
    }
    case HM_U_POW: pow_scalar(out, x, n, prm[0]); break;
    case HM_U_CLAMP: {
        /* nan in x or in a bound propagates, and min > max gives max, as in torch */
        float lo = prm[0], hi = prm[1];
        int lo_nan = lo != lo, hi_nan = hi != hi;
        if (lo_nan || hi_nan) HM_MAP(HM_U_PAR_CHEAP, NAN + 0.0f * v);
        else HM_MAP(HM_U_PAR_CHEAP, clampf(v, lo, hi));
        break;
    }
    case HM_U_NAN_TO_NUM: {
        float rn = prm[0], rp = prm[1], rm = prm[2];
        HM_MAP(HM_U_PAR_CHEAP, v != v ? rn : v == INFINITY ? rp : v == -INFINITY ? rm : v);
        break;
    }
    case HM_U_ROUND_DEC: {
        /* torch's formula, so results agree to the last bit */
        float tp = prm[0];
        if (prm[1] != 0.0f) HM_MAP(HM_U_PAR_CHEAP, nearbyintf(v / tp) * tp);
        else HM_MAP(HM_U_PAR_CHEAP, nearbyintf(v * tp) / tp);
        break;
    }
    default: break;
    }
}

int hm_unary_backward_needs(int op) {
    switch (op) {
    case HM_U_ABS: case HM_U_LOG: case HM_U_LOG1P: case HM_U_SQUARE: case HM_U_SIN: case HM_U_COS:
    case HM_U_ATAN: case HM_U_ERF: case HM_U_LOGIT: case HM_U_POW: case HM_U_CLAMP: case HM_U_NAN_TO_NUM:
        return 1;
    case HM_U_EXP: case HM_U_EXPM1: case HM_U_SQRT: case HM_U_RSQRT: case HM_U_TANH: case HM_U_SIGMOID:
    case HM_U_RECIPROCAL:
        return 2;
    default:
        return 0;
    }
}

#define HM_GRAD(THR, EXPR)                                                      \
    do {                                                                        \
        const int64_t thr_ = (THR);                                             \
        _Pragma("omp parallel for schedule(static) if (n > thr_)")              \
        for (int64_t i = 0; i < n; i++) {                                       \
            float g = dout[i];                                                  \
            dx[i] = (EXPR);                                                     \
        }                                                                       \
    } while (0)

/* d/dx x**p = p x**(p-1), with x**(p-1) by the same special cases as the
 * forward; p = 0 has a zero gradient everywhere (also at x = 0), as in torch. */
static void pow_scalar_backward(float *dx, const float *dout, const float *x, int64_t n, float p) {
    float q = p - 1.0f;
    if (p == 0.0f) HM_GRAD(HM_U_PAR_CHEAP, ((void)g, 0.0f));
    else if (q == 1.0f) HM_GRAD(HM_U_PAR_CHEAP, g * (p * x[i]));
    else if (q == 0.0f) HM_GRAD(HM_U_PAR_CHEAP, g * p);
    else if (q == 2.0f) HM_GRAD(HM_U_PAR_CHEAP, g * (p * (x[i] * x[i])));
    else if (q == 0.5f) HM_GRAD(HM_U_PAR_CHEAP, g * (p * sqrtf(x[i])));
    else if (q == -0.5f) HM_GRAD(HM_U_PAR_CHEAP, g * (p * (1.0f / sqrtf(x[i]))));
    else if (q == -1.0f) HM_GRAD(HM_U_PAR_CHEAP, g * (p * (1.0f / x[i])));
    else if (q == -2.0f) HM_GRAD(HM_U_PAR_CHEAP, g * (p * (1.0f / (x[i] * x[i]))));
    else HM_GRAD(HM_U_PAR_COSTLY, g * (p * powf(x[i], q)));
}

void hm_unary_backward(float *dx, const float *dout, const float *x, const float *y, int64_t n, int op,
                       const float *prm) {
    const float two_over_sqrt_pi = 1.12837916709551257390f;
    switch (op) {
    case HM_U_NEG: HM_GRAD(HM_U_PAR_CHEAP, -g); break;
    case HM_U_ABS: HM_GRAD(HM_U_PAR_CHEAP, g * sign_of(x[i])); break;
    case HM_U_EXP: HM_GRAD(HM_U_PAR_CHEAP, g * y[i]); break;
    case HM_U_LOG: HM_GRAD(HM_U_PAR_CHEAP, g / x[i]); break;
    case HM_U_LOG1P: HM_GRAD(HM_U_PAR_CHEAP, g / (x[i] + 1.0f)); break;
    case HM_U_EXPM1: HM_GRAD(HM_U_PAR_CHEAP, g * (y[i] + 1.0f)); break;
    case HM_U_SQRT: HM_GRAD(HM_U_PAR_CHEAP, g / (2.0f * y[i])); break;
    case HM_U_RSQRT: HM_GRAD(HM_U_PAR_CHEAP, -0.5f * g * (y[i] * y[i] * y[i])); break;
    case HM_U_SQUARE: HM_GRAD(HM_U_PAR_CHEAP, g * (2.0f * x[i])); break;
    case HM_U_SIN: HM_GRAD(HM_U_PAR_COSTLY, g * cosf(x[i])); break;
    case HM_U_COS: HM_GRAD(HM_U_PAR_COSTLY, g * -sinf(x[i])); break;
    case HM_U_TANH: HM_GRAD(HM_U_PAR_CHEAP, g * (1.0f - y[i] * y[i])); break;
    case HM_U_SIGMOID: HM_GRAD(HM_U_PAR_CHEAP, g * ((1.0f - y[i]) * y[i])); break;
    case HM_U_ATAN: HM_GRAD(HM_U_PAR_CHEAP, g / (1.0f + x[i] * x[i])); break;
    case HM_U_RECIPROCAL: HM_GRAD(HM_U_PAR_CHEAP, -g * (y[i] * y[i])); break;
    case HM_U_ERF: HM_GRAD(HM_U_PAR_COSTLY, g * (two_over_sqrt_pi * hm_expf(-x[i] * x[i]))); break;
    case HM_U_LOGIT: {
        /* without eps the gradient is nan outside [0, 1]; with eps it is 0
         * where the input was clamped (torch's convention) */
        float eps = prm[0], lo = eps, hi = 1.0f - eps;
        /* at exactly 0 and 1 torch returns dout * inf (so the sign comes from dout, not from -0) */
        if (eps < 0.0f)
            HM_GRAD(HM_U_PAR_CHEAP, (x[i] < 0.0f || x[i] > 1.0f) ? NAN
                    : (x[i] == 0.0f || x[i] == 1.0f) ? g * INFINITY : g / (x[i] * (1.0f - x[i])));
        else
            HM_GRAD(HM_U_PAR_CHEAP, (x[i] < lo || x[i] > hi) ? 0.0f
                    : (x[i] == 0.0f || x[i] == 1.0f) ? g * INFINITY : g / (x[i] * (1.0f - x[i])));
        break;
    }
    case HM_U_POW: pow_scalar_backward(dx, dout, x, n, prm[0]); break;
    case HM_U_CLAMP: {
        float lo = prm[0], hi = prm[1];
        HM_GRAD(HM_U_PAR_CHEAP, (x[i] >= lo && x[i] <= hi) ? g : 0.0f);
        break;
    }
    case HM_U_NAN_TO_NUM: HM_GRAD(HM_U_PAR_CHEAP, fabsf(x[i]) < INFINITY ? g : 0.0f); break;
    default: HM_GRAD(HM_U_PAR_CHEAP, ((void)g, 0.0f)); break; /* sign, floor, ceil, round */
    }
}

void hm_float_test(uint8_t *out, const float *x, int64_t n, int test) {
    switch (test) {
    case HM_T_ISNAN: HM_MAP(HM_U_PAR_CHEAP, (uint8_t)(v != v)); break;
    case HM_T_ISINF: HM_MAP(HM_U_PAR_CHEAP, (uint8_t)(fabsf(v) == INFINITY)); break;
    case HM_T_ISFINITE: HM_MAP(HM_U_PAR_CHEAP, (uint8_t)(fabsf(v) < INFINITY)); break;
    default: HM_MAP(HM_U_PAR_CHEAP, (uint8_t)(v != 0.0f)); break;
    }
}

void hm_int64_nonzero(uint8_t *out, const int64_t *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > HM_U_PAR_CHEAP)
    for (int64_t i = 0; i < n; i++) out[i] = (uint8_t)(x[i] != 0);
}

void hm_logical_not(uint8_t *out, const uint8_t *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > HM_U_PAR_CHEAP)
    for (int64_t i = 0; i < n; i++) out[i] = (uint8_t)(x[i] == 0);
}

/* OR / AND are exact and order-free, so the parallel reduction gives the same
 * answer for any thread count. Bytes are tested for != 0 rather than used as
 * 0/1, since a bool array viewed from other data may hold other values. */
void hm_bool_reduce(uint8_t *out, const uint8_t *x, int64_t outer, int64_t len, int64_t inner, int all) {
    if (outer == 1 && inner == 1) {
        int acc = all ? 1 : 0;
        if (all) {
            #pragma omp parallel for reduction(&& : acc) schedule(static) if (len > HM_U_PAR_CHEAP)
            for (int64_t k = 0; k < len; k++) acc = acc && x[k] != 0;
        } else {
            #pragma omp parallel for reduction(|| : acc) schedule(static) if (len > HM_U_PAR_CHEAP)
            for (int64_t k = 0; k < len; k++) acc = acc || x[k] != 0;
        }
        out[0] = (uint8_t)acc;
        return;
    }
    #pragma omp parallel for schedule(static) if (outer * len * inner > HM_U_PAR_CHEAP && outer > 1)
    for (int64_t o = 0; o < outer; o++) {
        uint8_t *po = out + o * inner;
        const uint8_t *px = x + o * len * inner;
        for (int64_t i = 0; i < inner; i++) po[i] = (uint8_t)(all ? 1 : 0);
        for (int64_t k = 0; k < len; k++) {
            const uint8_t *row = px + k * inner;
            if (all) for (int64_t i = 0; i < inner; i++) po[i] = (uint8_t)(po[i] & (row[i] != 0));
            else for (int64_t i = 0; i < inner; i++) po[i] = (uint8_t)(po[i] | (row[i] != 0));
        }
    }
}
