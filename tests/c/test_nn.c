/* Layer norm and activation kernels: values against double-precision
 * references, gradients against central differences, NaN/inf handling, the
 * vectorised exp's accuracy, and thread-count independence of the layernorm
 * parameter gradients (both the fused path and the wide-row path).
 * Also hm_gemm (linalg.c), which the linear layer rests on: its tiled and
 * k-split paths against a double reference, and thread-count independence. */
#include "check.h"
#include "linalg.h"
#include "nn.h"
#include <omp.h>
#include <stdint.h>
#include <string.h>

static float frand(uint32_t *s) { /* xorshift, uniform in [-1, 1) */
    *s ^= *s << 13; *s ^= *s >> 17; *s ^= *s << 5;
    return (float)((*s >> 8) * (1.0 / 8388608.0) - 1.0);
}

static int64_t ulp_diff(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4); memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    int64_t d = (int64_t)ia - (int64_t)ib;
    return d < 0 ? -d : d;
}

static void test_exp(void) {
    enum { N = 200000 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -110.0f + 200.0f * (float)i / N;
    hm_expf_array(y, x, N);
    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        float ref = (float)exp((double)x[i]);
        if (ref > 1e-37f && ref < 3e38f) { int64_t d = ulp_diff(y[i], ref); if (d > worst) worst = d; }
        else if (isinf(ref)) CHECK(y[i] == ref);
        else CHECK_CLOSE(y[i], ref, 1e-44, 1e-5); /* subnormal range: absolute */
    }
    CHECK(worst <= 2);
    float sp[5] = {NAN, INFINITY, -INFINITY, 0.0f, 89.0f}, so[5];
    hm_expf_array(so, sp, 5);
    CHECK(isnan(so[0]));
    CHECK(isinf(so[1]) && so[1] > 0);
    CHECK(so[2] == 0.0f);
    CHECK(so[3] == 1.0f);
    CHECK(isinf(so[4]));
}

/* forward at x +- h for elementwise kernels */
typedef void (*act_fwd)(float *, const float *, int64_t, const float *);
typedef void (*act_bwd)(float *, const float *, const float *, int64_t, const float *);

static void elu_f(float *o, const float *x, int64_t n, const float *p) { hm_elu_forward(o, x, n, p[0], p[1]); }
static void elu_b(float *d, const float *g, const float *x, int64_t n, const float *p) { hm_elu_backward(d, g, x, n, p[0], p[1]); }
static void gelu_f(float *o, const float *x, int64_t n, const float *p) { hm_gelu_forward(o, x, n, (int)p[0]); }
static void gelu_b(float *d, const float *g, const float *x, int64_t n, const float *p) { hm_gelu_backward(d, g, x, n, (int)p[0]); }
static void sp_f(float *o, const float *x, int64_t n, const float *p) { hm_softplus_forward(o, x, n, p[0], p[1]); }
static void sp_b(float *d, const float *g, const float *x, int64_t n, const float *p) { hm_softplus_backward(d, g, x, n, p[0], p[1]); }
static void silu_f(float *o, const float *x, int64_t n, const float *p) { (void)p; hm_silu_forward(o, x, n); }
static void silu_b(float *d, const float *g, const float *x, int64_t n, const float *p) { (void)p; hm_silu_backward(d, g, x, n); }
static void lrelu_f(float *o, const float *x, int64_t n, const float *p) { hm_leaky_relu_forward(o, x, n, p[0]); }
static void lrelu_b(float *d, const float *g, const float *x, int64_t n, const float *p) { hm_leaky_relu_backward(d, g, x, n, p[0]); }

static double ref_value(int which, double x, const float *p) {
    switch (which) {
    case 0: return x > 0 ? p[1] * x : p[1] * p[0] * expm1(x);
    case 1: return p[0] ? x / (1 + exp(-2 * sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)))
                        : 0.5 * x * erfc(-x / sqrt(2.0));
    case 2: return x * p[0] > p[1] ? x : log1p(exp(p[0] * x)) / p[0];
    case 3: return x / (1 + exp(-x));
    default: return x > 0 ? x : p[0] * x;
    }
}

static void test_activation(int which, act_fwd f, act_bwd b, const float *p) {
    enum { N = 4001 };
    static float x[N], y[N], g[N], d[N], xp[N], xm[N], yp[N], ym[N];
    for (int i = 0; i < N; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (N - 1);
        if (fabsf(x[i]) < 1e-3f) x[i] = 1e-3f; /* keep differences off the kinks */
        g[i] = 1.0f;
    }
    f(y, x, N, p);
    for (int i = 0; i < N; i++) CHECK_CLOSE(y[i], ref_value(which, x[i], p), 1e-6, 4e-6);
    b(d, g, x, N, p);
    const float h = 1e-2f;
    for (int i = 0; i < N; i++) { xp[i] = x[i] + h; xm[i] = x[i] - h; }
    f(yp, xp, N, p);
    f(ym, xm, N, p);
    for (int i = 0; i < N; i++) {
        /* skip the kinks: x = 0 (elu, leaky relu) and softplus's switch */
        if (fabsf(x[i]) < 3 * h || (which == 2 && fabsf(x[i] - p[1] / p[0]) < 3 * h)) continue;
        double num = ((double)yp[i] - ym[i]) / ((double)xp[i] - xm[i]);
        /* central differences have O(h^2 f''') error: loose but meaningful */
        CHECK_CLOSE(d[i], num, 2e-3, 2e-3);
    }
    /* NaN in, NaN out */
    float nanv = NAN, out;
    f(&out, &nanv, 1, p);
    CHECK(isnan(out));
}

static void ln_reference(double *out, const float *x, const float *w, const float *b, int64_t cols, float eps) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < cols; j++) m += x[j];
    m /= cols;
    for (int64_t j = 0; j < cols; j++) v += (x[j] - m) * (x[j] - m);
    v /= cols;
    for (int64_t j = 0; j < cols; j++) out[j] = (x[j] - m) / sqrt(v + eps) * (w ? w[j] : 1) + (b ? b[j] : 0);
}

static void test_layernorm(int64_t rows, int64_t cols, int affine) {
    int64_t n = rows * cols;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    float *dx = malloc(n * sizeof(float)), *mean = malloc(rows * sizeof(float)), *rstd = malloc(rows * sizeof(float));
    float *w = malloc(cols * sizeof(float)), *b = malloc(cols * sizeof(float));
    float *dw1 = malloc(cols * sizeof(float)), *db1 = malloc(cols * sizeof(float));
    float *dw2 = malloc(cols * sizeof(float)), *db2 = malloc(cols * sizeof(float));
    double *ref = malloc(cols * sizeof(double));
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; i++) { x[i] = 3.0f + 2.0f * frand(&s); dy[i] = frand(&s); }
    for (int64_t j = 0; j < cols; j++) { w[j] = 1.0f + 0.5f * frand(&s); b[j] = 0.3f * frand(&s); }
    const float *wp = affine ? w : NULL, *bp = affine ? b : NULL;
    hm_layernorm_forward(y, mean, rstd, x, wp, bp, rows, cols, 1e-5f);
    for (int64_t r = 0; r < rows; r += (rows > 50 ? 37 : 1)) {
        ln_reference(ref, x + r * cols, wp, bp, cols, 1e-5f);
        for (int64_t j = 0; j < cols; j++) CHECK_CLOSE(y[r * cols + j], ref[j], 2e-6, 2e-5);
    }
    omp_set_num_threads(1);
    hm_layernorm_backward(dx, dw1, db1, dy, x, wp, mean, rstd, rows, cols);
    omp_set_num_threads(2);
    hm_layernorm_backward(dx, dw2, db2, dy, x, wp, mean, rstd, rows, cols);
    CHECK(memcmp(dw1, dw2, cols * sizeof(float)) == 0);
    CHECK(memcmp(db1, db2, cols * sizeof(float)) == 0);
    /* dx of the scalar sum(dy * y) by central differences on a few entries
     * of the first row, in double through the reference */
    double *rp = malloc(cols * sizeof(double)), *rm = malloc(cols * sizeof(double));
    for (int64_t j = 0; rows > 0 && j < cols && j < 8; j++) {
        float keep = x[j];
        double h = 1e-3;
        x[j] = keep + (float)h; ln_reference(rp, x, wp, bp, cols, 1e-5f);
        x[j] = keep - (float)h; ln_reference(rm, x, wp, bp, cols, 1e-5f);
        double hh = (double)(keep + (float)h) - (double)(keep - (float)h);
        x[j] = keep;
        double num = 0;
        for (int64_t k = 0; k < cols; k++) num += dy[k] * (rp[k] - rm[k]) / hh;
        CHECK_CLOSE(dx[j], num, 1e-3, 1e-3);
    }
    /* dw, db against double sums */
    for (int64_t j = 0; j < cols; j += (cols > 40 ? 7 : 1)) {
        double sw = 0, sb = 0;
        for (int64_t r = 0; r < rows; r++) {
            sw += (double)dy[r * cols + j] * ((double)x[r * cols + j] - mean[r]) * rstd[r];
            sb += dy[r * cols + j];
        }
        CHECK_CLOSE(dw1[j], sw, 1e-4, 1e-5);
        CHECK_CLOSE(db1[j], sb, 1e-4, 1e-5);
    }
    if (rows == 0) CHECK(dw1[0] == 0.0f && db1[cols - 1] == 0.0f);
    free(x); free(y); free(dy); free(dx); free(mean); free(rstd); free(w); free(b);
    free(dw1); free(db1); free(dw2); free(db2); free(ref); free(rp); free(rm);
}

/* C = op(A) op(B) for all four transpose combinations, with sizes that take
 * the single-call, tiled, 2 x 2 and k-split paths. */
static void test_gemm(int64_t m, int64_t n, int64_t k) {
    float *a = malloc((m * k + 1) * sizeof(float)), *b = malloc((k * n + 1) * sizeof(float));
    float *c1 = malloc((m * n + 1) * sizeof(float)), *c2 = malloc((m * n + 1) * sizeof(float));
    int64_t ns = hm_gemm_scratch(m, n, k);
    float *scratch = malloc((ns + 1) * sizeof(float));
    uint32_t s = 99;
    for (int64_t i = 0; i < m * k; i++) a[i] = frand(&s);
    for (int64_t i = 0; i < k * n; i++) b[i] = frand(&s);
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            int64_t lda = ta ? m : k, ldb = tb ? k : n;
            for (int64_t i = 0; i < m * n; i++) c1[i] = c2[i] = 1.0f;
            omp_set_num_threads(1);
            hm_gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c1, n, scratch);
            omp_set_num_threads(2);
            hm_gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c2, n, scratch);
            CHECK(memcmp(c1, c2, m * n * sizeof(float)) == 0);
            for (int64_t i = 0; i < m; i += (m > 20 ? 13 : 1)) {
                for (int64_t j = 0; j < n; j += (n > 20 ? 7 : 1)) {
                    double r = 0;
                    for (int64_t p = 0; p < k; p++)
                        r += (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                    CHECK_CLOSE(c1[i * n + j], 0.5 * r + 2.0, 1e-4 * (1 + sqrt((double)k)), 1e-5);
                }
            }
            /* without scratch: same values up to rounding */
            for (int64_t i = 0; i < m * n; i++) c2[i] = 1.0f;
            hm_gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c2, n, NULL);
            for (int64_t i = 0; i < m * n; i += 5) CHECK_CLOSE(c2[i], c1[i], 1e-4 * (1 + sqrt((double)k)), 1e-5);
        }
    }
    /* k = 0: C = beta * C, and beta = 0 clears NaN */
    for (int64_t i = 0; i < m * n; i++) c1[i] = NAN;
    hm_gemm(0, 0, m, n, 0, 1.0f, a, 1, b, n, 0.0f, c1, n, NULL);
    CHECK(c1[0] == 0.0f && c1[m * n - 1] == 0.0f);
    free(a); free(b); free(c1); free(c2); free(scratch);
}

int main(void) {
    test_gemm(5, 7, 3);        /* one call */
    test_gemm(700, 64, 64);    /* row tiles */
    test_gemm(64, 48, 100);    /* a single tile cut 2 x 2 */
    test_gemm(40, 24, 3000);   /* long k, small C: k-split into scratch */
    test_gemm(33, 300, 70);    /* column tiles with ragged edges */
    test_exp();
    float selu[2] = {HM_SELU_ALPHA, HM_SELU_SCALE}, elu[2] = {0.7f, 1.0f};
    test_activation(0, elu_f, elu_b, selu);
    test_activation(0, elu_f, elu_b, elu);
    float exact[1] = {0}, tanh_[1] = {1};
    test_activation(1, gelu_f, gelu_b, exact);
    test_activation(1, gelu_f, gelu_b, tanh_);
    float sp1[2] = {1.0f, 20.0f}, sp2[2] = {2.0f, 5.0f};
    test_activation(2, sp_f, sp_b, sp1);
    test_activation(2, sp_f, sp_b, sp2);
    test_activation(3, silu_f, silu_b, NULL);
    float sl[1] = {0.05f};
    test_activation(4, lrelu_f, lrelu_b, sl);
    /* relu: NaN passes, kink conventions of torch */
    float rx[4] = {NAN, -1.0f, 0.0f, 2.0f}, ry[4], rg[4] = {1, 1, 1, 1}, rd[4];
    hm_relu_forward(ry, rx, 4);
    hm_relu_backward(rd, rg, ry, 4);
    CHECK(isnan(ry[0]) && ry[1] == 0.0f && ry[2] == 0.0f && ry[3] == 2.0f);
    CHECK(rd[0] == 1.0f && rd[1] == 0.0f && rd[2] == 0.0f && rd[3] == 1.0f);
    /* selu(-inf) is -alpha * scale, not NaN */
    float ninf = -INFINITY, o;
    hm_elu_forward(&o, &ninf, 1, HM_SELU_ALPHA, HM_SELU_SCALE);
    CHECK_CLOSE(o, -HM_SELU_ALPHA * HM_SELU_SCALE, 1e-6, 0);
    test_layernorm(3000, 32, 1);   /* fused path, several chunks */
    test_layernorm(5, 7, 0);       /* fewer rows than chunks, no affine */
    test_layernorm(700, 300, 1);   /* wide rows: column-tiled path */
    test_layernorm(0, 16, 1);      /* empty batch */
    return CHECK_REPORT();
}
