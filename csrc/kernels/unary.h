/*
 * Unary elementwise kernels over contiguous float32 arrays, and the float ->
 * bool tests (isnan, isinf, isfinite, != 0) and bool reductions (any/all).
 *
 * The hot transcendental functions (exp, log, tanh, sigmoid) use the inline,
 * branch-free implementations below instead of libm: glibc only offers
 * vector versions of expf/logf under -ffast-math, which would also break NaN
 * handling, so calls to expf() keep a loop scalar. These versions compile to
 * AVX2 code inside any simple loop and are within ~2 ulp of the correctly
 * rounded result over the whole float range, including inf/nan/subnormals.
 * The less common ones (sin, cos, atan, erf, expm1, log1p) call libm.
 */
#ifndef HM_UNARY_H
#define HM_UNARY_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float hm_bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t hm_float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* exp(x): x = k ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to
 * degree 7 (truncation < 1e-8 relative), then scaled by 2^k in two steps so
 * that results in the subnormal range and overflow to inf come out right. */
static inline float hm_expf(float x) {
    /* beyond [-104, 89] exp is 0 / inf in float; nan is replaced here (so the
     * int conversion below is defined) and put back at the end */
    float xc = x < -104.0f ? -104.0f : x;
    xc = xc > 89.0f ? 89.0f : xc;
    xc = x != x ? 0.0f : xc;
    float k = rintf(xc * 1.44269504088896341f);
    float r = fmaf(k, -0.693145751953125f, xc);  /* ln2 split in a part exact in k * hi, and the rest */
    r = fmaf(k, -1.42860682030941723212e-6f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t ki = (int32_t)k, k1 = ki / 2, k2 = ki - k1;
    float s1 = hm_bits_to_float((uint32_t)(k1 + 127) << 23), s2 = hm_bits_to_float((uint32_t)(k2 + 127) << 23);
    float y = p * s1 * s2;
    return x != x ? x : y;
}

/* log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s) with
 * s = (m-1)/(m+1), |s| < 0.172, so a short odd series in s is enough. */
static inline float hm_logf(float x) {
    int sub = x < 1.17549435e-38f; /* subnormals: scale into the normal range first */
    float xs = sub ? x * 8388608.0f : x;
    uint32_t u = hm_float_to_bits(xs);
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 - (sub ? 23 : 0);
    float m = hm_bits_to_float((u & 0x007fffffu) | 0x3f800000u);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e += big;
    float f = m - 1.0f; /* exact */
    float s = f / (2.0f + f), s2 = s * s;
    float q = 1.0f / 11.0f;
    q = fmaf(q, s2, 1.0f / 9.0f);
    q = fmaf(q, s2, 1.0f / 7.0f);
    q = fmaf(q, s2, 1.0f / 5.0f);
    q = fmaf(q, s2, 1.0f / 3.0f);
    float lm = fmaf(2.0f * s * s2, q, 2.0f * s);
    float ef = (float)e;
    float y = fmaf(ef, 0.693145751953125f, fmaf(ef, 1.42860682030941723212e-6f, lm));
    /* special values: log(0) = -inf, log(<0) = nan, log(inf) = inf, nan stays nan */
    y = x == 0.0f ? -INFINITY : y;
    y = x < 0.0f ? NAN : y;
    y = x == INFINITY ? x : y;
    return x != x ? x : y;
}

/* tanh: an odd polynomial (least-squares fit, < 1e-9 relative) for |x| <
 * 0.625 where 1 - 2/(e^2x + 1) would lose digits to cancellation, that
 * formula above it. */
static inline float hm_tanhf(float x) {
    float a = fabsf(x), t = a * a;
    float p = 2.295794355e-03f;
    p = fmaf(p, t, -8.346934072e-03f);
    p = fmaf(p, t, 2.176994433e-02f);
    p = fmaf(p, t, -5.395940334e-02f);
    p = fmaf(p, t, 1.333330426e-01f);
    p = fmaf(p, t, -3.333333318e-01f);
    float small = fmaf(a * t, p, a);
    float large = 1.0f - 2.0f / (hm_expf(2.0f * a) + 1.0f);
    float y = a < 0.625f ? small : large;
    y = copysignf(y, x);
    return x != x ? x : y;
}

/* 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below, so e^-|x| never overflows and
 * the far negative tail keeps its tiny values instead of flushing to 0. */
static inline float hm_sigmoidf(float x) {
    float e = hm_expf(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

enum hm_unary_op {
    HM_U_NEG, HM_U_ABS, HM_U_EXP, HM_U_LOG, HM_U_LOG1P, HM_U_EXPM1, HM_U_SQRT, HM_U_RSQRT, HM_U_SQUARE,
    HM_U_SIN, HM_U_COS, HM_U_TANH, HM_U_SIGMOID, HM_U_ATAN, HM_U_SIGN, HM_U_FLOOR, HM_U_CEIL, HM_U_ROUND,
    HM_U_RECIPROCAL, HM_U_ERF,
    HM_U_LOGIT,      /* prm[0] = eps (< 0: no clamping) */
    HM_U_POW,        /* prm[0] = exponent */
    HM_U_CLAMP,      /* prm[0] = min, prm[1] = max (-inf / inf when absent) */
    HM_U_NAN_TO_NUM, /* prm[0] = nan, prm[1] = posinf, prm[2] = neginf replacements */
    HM_U_ROUND_DEC,  /* prm[0] = 10^|decimals|, prm[1] = 1 when decimals < 0 */
    HM_U_COUNT
};

/* out[i] = f(x[i]). out may alias x. */
void hm_unary_forward(float *out, const float *x, int64_t n, int op, const float *prm);

/* dx[i] = dout[i] * f'(x[i]). Each op reads what it needs: the input x (log,
 * sin, abs, ...) or the output y of the forward (exp, tanh, sigmoid, sqrt,
 * ...); the other may be NULL. Ops with a zero gradient (sign, floor, ceil,
 * round) write zeros. dx is overwritten. */
void hm_unary_backward(float *dx, const float *dout, const float *x, const float *y, int64_t n, int op,
                       const float *prm);

/* Does the backward of `op` read the input (1), the output (2), or nothing (0)? */
int hm_unary_backward_needs(int op);

enum hm_float_test { HM_T_ISNAN, HM_T_ISINF, HM_T_ISFINITE, HM_T_NONZERO };
/* out[i] = test(x[i]) as 0/1 (HM_T_NONZERO: x != 0, so nan counts as true, as in torch). */
void hm_float_test(uint8_t *out, const float *x, int64_t n, int test);
void hm_int64_nonzero(uint8_t *out, const int64_t *x, int64_t n);
void hm_logical_not(uint8_t *out, const uint8_t *x, int64_t n);

/* any (all = 0) or all (all = 1) of a bool array viewed as [outer, len, inner],
 * reduced over the middle axis: out has outer * inner entries. */
void hm_bool_reduce(uint8_t *out, const uint8_t *x, int64_t outer, int64_t len, int64_t inner, int all);
#endif
