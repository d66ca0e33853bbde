/* Tests of the tiled MMD kernels (csrc/kernels/mmd.c) against a float64 naive
 * reference: forward for every kernel and estimator, gradients against central
 * finite differences of the reference, the per-column variant against separate
 * one-dimensional calls, thread-count independence, MMD(x, x) = 0, and the
 * median heuristic. Ends with timings of the course's case (printed only). */
/* clock_gettime under -std=c11 */
#define _POSIX_C_SOURCE 199309L
#include "check.h"
#include "mmd.h"

#include <stdint.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Sanitizer builds run the kernels ~100x slower: keep the big cases for -O2. */
#if defined(__SANITIZE_ADDRESS__)
#define HM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HM_SANITIZED 1
#endif
#endif
#ifndef HM_SANITIZED
#define HM_SANITIZED 0
#endif

/* ---- data ---------------------------------------------------------------- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }
static void fill(float *v, int64_t n, double mu, double sd) {
    for (int64_t i = 0; i < n; i++) v[i] = (float)(mu + sd * nrand());
}

/* ---- float64 reference ----------------------------------------------------- */
typedef struct {
    int kernel;
    const float *bw;
    int nbw;
    int degree;
    const char *name;
} kcfg;

static const float ms_def[6] = {0.1f, 0.2f, 0.5f, 0.9f, 1.4f, 2.0f};
static const float rbf_def[4] = {10.0f, 15.0f, 20.0f, 50.0f};

static double ref_k(const kcfg *c, const double *a, const double *b, int64_t D) {
    double r = 0.0, s = 0.0;
    for (int64_t d = 0; d < D; d++) {
        r += (a[d] - b[d]) * (a[d] - b[d]);
        s += a[d] * b[d];
    }
    const float *bw = c->bw;
    int nbw = c->nbw;
    double k = 0.0;
    switch (c->kernel) {
    case HM_MMD_MULTISCALE:
        if (!bw) { bw = ms_def; nbw = 6; }
        for (int i = 0; i < nbw; i++) {
            const double c2 = (double)bw[i] * bw[i];
            k += c2 / (c2 + r);
        }
        return k;
    case HM_MMD_RBF:
        if (!bw) { bw = rbf_def; nbw = 4; }
        for (int i = 0; i < nbw; i++) k += exp(-r / (2.0 * bw[i]));
        return k;
    case HM_MMD_GAUSSIAN:
        return exp(-r / (2.0 * (double)bw[0] * bw[0]));
    default:
        return pow(s / (double)D + 1.0, c->degree);
    }
}

/* z = pooled sample [x; y] in double */
static double weight(int64_t a, int64_t b, int64_t N, int64_t M, int unbiased) {
    const double n = (double)N, m = (double)M;
    if (a < N && b < N) return unbiased ? 1.0 / (n * (n - 1)) : 1.0 / (n * n);
    if (a >= N && b >= N) return unbiased ? 1.0 / (m * (m - 1)) : 1.0 / (m * m);
    return -1.0 / (n * m);
}

static double ref_mmd(const kcfg *c, const double *z, int64_t N, int64_t M, int64_t D,
                      int unbiased, double *magnitude) {
    const int64_t L = N + M;
    double v = 0.0, mag = 0.0;
    for (int64_t a = 0; a < L; a++)
        for (int64_t b = 0; b < L; b++) {
            if (a == b && unbiased) continue;
            const double t = weight(a, b, N, M, unbiased) * ref_k(c, z + a * D, z + b * D, D);
            v += t;
            mag += fabs(t);
        }
    if (magnitude) *magnitude = mag;
    return v;
}

/* The part of the MMD that depends on point a: its derivative is d MMD / d z_a,
 * and it costs O(L D), so finite differences of every coordinate are cheap. */
static double ref_point(const kcfg *c, const double *z, int64_t a, int64_t N, int64_t M,
                        int64_t D, int unbiased) {
    double v = 0.0;
    for (int64_t b = 0; b < N + M; b++) {
        if (b == a) continue;
        v += 2.0 * weight(a, b, N, M, unbiased) * ref_k(c, z + a * D, z + b * D, D);
    }
    if (!unbiased) v += weight(a, a, N, M, 0) * ref_k(c, z + a * D, z + a * D, D);
    return v;
}

static double *pooled(const float *x, const float *y, int64_t N, int64_t M, int64_t D) {
    double *z = malloc((size_t)((N + M) * D) * sizeof(double));
    for (int64_t i = 0; i < N * D; i++) z[i] = x[i];
    for (int64_t i = 0; i < M * D; i++) z[N * D + i] = y[i];
    return z;
}

static double maxabs(const float *v, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)v[i]));
    return m;
}

static int bitwise_equal_f(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

/* ---- forward + gradient of one configuration ----------------------------- */
static void check_config(const kcfg *c, int64_t N, int64_t M, int64_t D, int unbiased,
                         double shift) {
    float *x = malloc((size_t)(N * D) * sizeof(float)), *y = malloc((size_t)(M * D) * sizeof(float));
    fill(x, N * D, 0.0, 0.5);
    fill(y, M * D, shift, 0.6);
    double *z = pooled(x, y, N, M, D);
    double mag;
    const double ref = ref_mmd(c, z, N, M, D, unbiased, &mag);
    const double v = hm_mmd_forward(x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    /* float pair terms: ~1e-7 relative each, summed in double */
    if (fabs(v - ref) > 1e-6 * mag + 1e-12)
        fprintf(stderr, "  forward %s D=%lld N=%lld M=%lld unbiased=%d: %.10g vs %.10g (mag %.3g)\n",
                c->name, (long long)D, (long long)N, (long long)M, unbiased, v, ref, mag);
    CHECK_CLOSE(v, ref, 1e-6 * mag + 1e-12, 0.0);

    /* backward with a non-trivial dloss against finite differences */
    const float dloss = 0.7f;
    float *dx = malloc((size_t)(N * D) * sizeof(float)), *dy = malloc((size_t)(M * D) * sizeof(float));
    float *gx = malloc((size_t)(N * D) * sizeof(float)), *gy = malloc((size_t)(M * D) * sizeof(float));
    hm_mmd_backward(dx, dy, dloss, x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    const int64_t L = N + M;
    double *fd = calloc((size_t)(L * D), sizeof(double));
    double fdmax = 0.0;
    /* every point of small problems, about 400 spread over x and y otherwise */
    const int64_t stride = L > 400 ? L / 400 : 1;
    for (int64_t a = 0; a < L; a += stride)
        for (int64_t d = 0; d < D; d++) {
            double *p = z + a * D + d;
            const double v0 = *p, h = 1e-4 * fmax(1.0, fabs(v0));
            *p = v0 + h;
            const double fp = ref_point(c, z, a, N, M, D, unbiased);
            *p = v0 - h;
            const double fm = ref_point(c, z, a, N, M, D, unbiased);
            *p = v0;
            fd[a * D + d] = dloss * (fp - fm) / (2.0 * h);
            fdmax = fmax(fdmax, fabs(fd[a * D + d]));
        }
    int bad = 0;
    for (int64_t k = 0; k < L * D; k++) {
        if ((k / D) % stride != 0) continue;
        const double g = k < N * D ? dx[k] : dy[k - N * D];
        if (!(fabs(g - fd[k]) <= 1e-4 * fdmax + 1e-3 * fabs(fd[k]))) {
            if (bad++ < 3)
                fprintf(stderr, "  grad %s D=%lld unbiased=%d elem %lld: %.8g vs fd %.8g (max %.3g)\n",
                        c->name, (long long)D, unbiased, (long long)k, g, fd[k], fdmax);
        }
    }
    CHECK(bad == 0);
    CHECK(fdmax > 0.0);

    /* the fused forward + gradient gives the same value and dloss-free gradient */
    const double vf = hm_mmd_forward_grad(gx, gy, x, y, N, M, D, c->kernel, c->bw, c->nbw,
                                          c->degree, unbiased);
    CHECK(vf == v);
    hm_mmd_backward(dx, dy, 1.0f, x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    CHECK(bitwise_equal_f(dx, gx, N * D) && bitwise_equal_f(dy, gy, M * D));
    float *sx = malloc((size_t)(N * D) * sizeof(float)), *sy = malloc((size_t)(M * D) * sizeof(float));
    const float half = 0.5f;
    hm_mmd_scale_grad(sx, sy, &half, gx, gy, N * D, M * D, 1);
    hm_mmd_backward(dx, dy, 0.5f, x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    /* scaling by a power of two is exact, so both routes agree bitwise */
    CHECK(bitwise_equal_f(sx, dx, N * D) && bitwise_equal_f(sy, dy, M * D));

    free(x); free(y); free(z); free(dx); free(dy); free(gx); free(gy); free(fd); free(sx); free(sy);
}

/* ---- columns variant == separate one-dimensional calls --------------------- */
static void check_columns(const kcfg *c, int64_t N, int64_t M, int64_t F, int unbiased) {
    float *x = malloc((size_t)(N * F) * sizeof(float)), *y = malloc((size_t)(M * F) * sizeof(float));
    fill(x, N * F, 0.1, 0.7);
    fill(y, M * F, -0.1, 0.6);
    double *out = malloc((size_t)F * sizeof(double)), *outg = malloc((size_t)F * sizeof(double));
    float *dl = malloc((size_t)F * sizeof(float));
    for (int64_t f = 0; f < F; f++) dl[f] = 0.25f + 0.5f * (float)f;
    float *dx = malloc((size_t)(N * F) * sizeof(float)), *dy = malloc((size_t)(M * F) * sizeof(float));
    float *gx = malloc((size_t)(N * F) * sizeof(float)), *gy = malloc((size_t)(M * F) * sizeof(float));
    hm_mmd_columns_forward(out, x, y, N, M, F, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    hm_mmd_columns_backward(dx, dy, dl, x, y, N, M, F, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    hm_mmd_columns_forward_grad(outg, gx, gy, x, y, N, M, F, c->kernel, c->bw, c->nbw, c->degree,
                                unbiased);
    float *xc = malloc((size_t)N * sizeof(float)), *yc = malloc((size_t)M * sizeof(float));
    float *dxc = malloc((size_t)N * sizeof(float)), *dyc = malloc((size_t)M * sizeof(float));
    int same_val = 1, same_grad = 1, same_fused = 1;
    for (int64_t f = 0; f < F; f++) {
        for (int64_t i = 0; i < N; i++) xc[i] = x[i * F + f];
        for (int64_t i = 0; i < M; i++) yc[i] = y[i * F + f];
        const double v = hm_mmd_forward(xc, yc, N, M, 1, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        same_val &= v == out[f] && v == outg[f];
        hm_mmd_backward(dxc, dyc, dl[f], xc, yc, N, M, 1, c->kernel, c->bw, c->nbw, c->degree,
                        unbiased);
        for (int64_t i = 0; i < N; i++) same_grad &= dxc[i] == dx[i * F + f];
        for (int64_t i = 0; i < M; i++) same_grad &= dyc[i] == dy[i * F + f];
        hm_mmd_backward(dxc, dyc, 1.0f, xc, yc, N, M, 1, c->kernel, c->bw, c->nbw, c->degree,
                        unbiased);
        for (int64_t i = 0; i < N; i++) same_fused &= dxc[i] == gx[i * F + f];
        for (int64_t i = 0; i < M; i++) same_fused &= dyc[i] == gy[i * F + f];
    }
    CHECK(same_val);
    CHECK(same_grad);
    CHECK(same_fused);
    free(x); free(y); free(out); free(outg); free(dl); free(dx); free(dy); free(gx); free(gy);
    free(xc); free(yc); free(dxc); free(dyc);
}

/* ---- thread-count independence ------------------------------------------- */
static void check_threads(const kcfg *c, int64_t N, int64_t M, int64_t D, int unbiased) {
#ifdef _OPENMP
    float *x = malloc((size_t)(N * D) * sizeof(float)), *y = malloc((size_t)(M * D) * sizeof(float));
    fill(x, N * D, 0.0, 1.0);
    fill(y, M * D, 0.2, 1.0);
    float *d1x = malloc((size_t)(N * D) * sizeof(float)), *d1y = malloc((size_t)(M * D) * sizeof(float));
    float *d2x = malloc((size_t)(N * D) * sizeof(float)), *d2y = malloc((size_t)(M * D) * sizeof(float));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const double v1 = hm_mmd_forward(x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    hm_mmd_backward(d1x, d1y, 1.3f, x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    omp_set_num_threads(2);
    const double v2 = hm_mmd_forward(x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    hm_mmd_backward(d2x, d2y, 1.3f, x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    omp_set_num_threads(3);
    const double v3 = hm_mmd_forward(x, y, N, M, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
    CHECK(v1 == v2 && v1 == v3);
    CHECK(bitwise_equal_f(d1x, d2x, N * D) && bitwise_equal_f(d1y, d2y, M * D));
    /* the columns variant switches strategy with the thread count (columns in
     * parallel on 1 thread here, rounds in parallel on 2 or 3): same bits */
    if (D == 3) {
        double o1[3], o2[3], o3[3];
        const float dl[3] = {0.5f, -1.0f, 2.0f};
        omp_set_num_threads(1);
        hm_mmd_columns_forward_grad(o1, d1x, d1y, x, y, N, M, 3, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        omp_set_num_threads(2);
        hm_mmd_columns_forward_grad(o2, d2x, d2y, x, y, N, M, 3, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        CHECK(memcmp(o1, o2, sizeof o1) == 0);
        CHECK(bitwise_equal_f(d1x, d2x, N * D) && bitwise_equal_f(d1y, d2y, M * D));
        omp_set_num_threads(3);
        hm_mmd_columns_backward(d2x, d2y, dl, x, y, N, M, 3, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        hm_mmd_columns_forward(o3, x, y, N, M, 3, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        omp_set_num_threads(1);
        hm_mmd_columns_backward(d1x, d1y, dl, x, y, N, M, 3, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        CHECK(memcmp(o1, o3, sizeof o1) == 0);
        CHECK(bitwise_equal_f(d1x, d2x, N * D) && bitwise_equal_f(d1y, d2y, M * D));
    }
    omp_set_num_threads(saved);
    free(x); free(y); free(d1x); free(d1y); free(d2x); free(d2y);
#else
    (void)c; (void)N; (void)M; (void)D; (void)unbiased;
#endif
}

/* ---- MMD(x, x) and same-distribution samples ------------------------------ */
static void check_null(const kcfg *c, int64_t N, int64_t D) {
    float *x = malloc((size_t)(N * D) * sizeof(float)), *y = malloc((size_t)(N * D) * sizeof(float));
    float *ys = malloc((size_t)(N * D) * sizeof(float));
    fill(x, N * D, 0.0, 1.0);
    fill(y, N * D, 0.0, 1.0);
    for (int64_t i = 0; i < N * D; i++) ys[i] = y[i] + 1.0f;
    const double self = hm_mmd_forward(x, x, N, N, D, c->kernel, c->bw, c->nbw, c->degree, 0);
    if (!(fabs(self) <= 1e-12)) fprintf(stderr, "  MMD(x,x) %s D=%lld: %.3g\n", c->name, (long long)D, self);
    CHECK(fabs(self) <= 1e-12);
    /* gradient at x == y vanishes: every term has its mirror */
    float *dx = malloc((size_t)(N * D) * sizeof(float)), *dy = malloc((size_t)(N * D) * sizeof(float));
    hm_mmd_backward(dx, dy, 1.0f, x, x, N, N, D, c->kernel, c->bw, c->nbw, c->degree, 0);
    hm_mmd_backward(dx, dy, 1.0f, x, ys, N, N, D, c->kernel, c->bw, c->nbw, c->degree, 0);
    const double gscale = maxabs(dx, N * D);
    hm_mmd_backward(dx, dy, 1.0f, x, x, N, N, D, c->kernel, c->bw, c->nbw, c->degree, 0);
    CHECK(maxabs(dx, N * D) <= 1e-4 * gscale);
    for (int unbiased = 0; unbiased <= 1; unbiased++) {
        const double same = hm_mmd_forward(x, y, N, N, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        const double diff = hm_mmd_forward(x, ys, N, N, D, c->kernel, c->bw, c->nbw, c->degree, unbiased);
        /* the U-statistic is centred on 0; the V-statistic is a squared norm with
         * an O(1/N) positive bias */
        const double bound = unbiased ? 0.1 : 0.3;
        if (!(fabs(same) < bound * diff))
            fprintf(stderr, "  null %s unbiased=%d: same %.3g shifted %.3g\n", c->name, unbiased, same, diff);
        CHECK(fabs(same) < bound * diff);
        if (!unbiased) CHECK(same > 0.0);
    }
    free(x); free(y); free(ys); free(dx); free(dy);
}

/* ---- median heuristic ------------------------------------------------------ */
static int cmp_float(const void *a, const void *b) {
    const float u = *(const float *)a, v = *(const float *)b;
    return (u > v) - (u < v);
}

static void check_median(int64_t N, int64_t M, int64_t D, int64_t n_sub) {
    float *x = malloc((size_t)(N * D) * sizeof(float)), *y = malloc((size_t)(M * D) * sizeof(float));
    fill(x, N * D, 0.0, 1.0);
    fill(y, M * D, 0.5, 2.0);
    const int64_t w = hm_mmd_median_work_size(N, M, n_sub);
    float *work = malloc((size_t)(w > 0 ? w : 1) * sizeof(float));
    const double med = hm_mmd_median_distance(work, x, y, N, M, D, n_sub);
    /* the same subsample, sorted */
    const int64_t L = N + M, m = n_sub < L ? n_sub : L;
    float *all = malloc((size_t)(w > 0 ? w : 1) * sizeof(float));
    int64_t k = 0;
    for (int64_t ka = 0; ka < m; ka++)
        for (int64_t kb = ka + 1; kb < m; kb++) {
            const int64_t a = (int64_t)((double)ka * L / m), b = (int64_t)((double)kb * L / m);
            const float *za = a < N ? x + a * D : y + (a - N) * D;
            const float *zb = b < N ? x + b * D : y + (b - N) * D;
            double s = 0.0;
            for (int64_t d = 0; d < D; d++) s += ((double)za[d] - zb[d]) * ((double)za[d] - zb[d]);
            all[k++] = (float)sqrt(s);
        }
    CHECK(k == w);
    qsort(all, (size_t)w, sizeof(float), cmp_float);
    const double expect = (w & 1) ? all[w / 2] : 0.5 * ((double)all[w / 2 - 1] + all[w / 2]);
    CHECK(med == expect);
    free(x); free(y); free(work); free(all);
}

/* ---- timings ------------------------------------------------------------- */
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void timings(int64_t N, int reps) {
    const int64_t F = 8;
    float *x = malloc((size_t)(N * F) * sizeof(float)), *y = malloc((size_t)(N * F) * sizeof(float));
    float *dx = malloc((size_t)(N * F) * sizeof(float)), *dy = malloc((size_t)(N * F) * sizeof(float));
    fill(x, N * F, 0.0, 1.0);
    fill(y, N * F, 0.1, 1.0);
    double out[8];
    float dl[8];
    for (int f = 0; f < 8; f++) dl[f] = 1.0f / 8.0f;
    double best_f = 1e30, best_b = 1e30, best_fg = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        hm_mmd_columns_forward(out, x, y, N, N, F, HM_MMD_MULTISCALE, NULL, 0, 0, 0);
        double t1 = now();
        hm_mmd_columns_backward(dx, dy, dl, x, y, N, N, F, HM_MMD_MULTISCALE, NULL, 0, 0, 0);
        double t2 = now();
        hm_mmd_columns_forward_grad(out, dx, dy, x, y, N, N, F, HM_MMD_MULTISCALE, NULL, 0, 0, 0);
        double t3 = now();
        best_f = fmin(best_f, t1 - t0);
        best_b = fmin(best_b, t2 - t1);
        best_fg = fmin(best_fg, t3 - t2);
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("  timing multiscale, 8 columns, N = M = %lld, %d threads: forward %.2f ms, "
           "backward %.2f ms, fused forward+grad %.2f ms (best of %d)\n",
           (long long)N, threads, 1e3 * best_f, 1e3 * best_b, 1e3 * best_fg, reps);
    free(x); free(y); free(dx); free(dy);
}

int main(int argc, char **argv) {
    static const float ms7[7] = {0.05f, 0.1f, 0.2f, 0.5f, 0.9f, 1.4f, 2.0f};
    static const float ms13[13] = {0.1f, 0.15f, 0.2f, 0.3f, 0.5f, 0.7f, 0.9f,
                                   1.1f, 1.4f, 1.7f, 2.0f, 3.0f, 5.0f};
    static const float rbf2[2] = {0.3f, 1.0f};
    static const float sigma[1] = {0.7f};
    /* c^2 outside [1e-18, 1e18] forces one division per bandwidth (huge here: a
     * tiny c makes K spike at near-duplicate points, where finite differences
     * cannot follow; it is checked forward-only below) */
    static const float huge[2] = {2e9f, 0.5f};
    static const float tiny[2] = {1e-10f, 0.5f};
    const kcfg cfgs[] = {
        {HM_MMD_MULTISCALE, NULL, 0, 0, "multiscale"},
        {HM_MMD_RBF, NULL, 0, 0, "rbf"},
        {HM_MMD_GAUSSIAN, sigma, 1, 0, "gaussian"},
        {HM_MMD_POLYNOMIAL, NULL, 0, 3, "poly3"},
        {HM_MMD_POLYNOMIAL, NULL, 0, 4, "poly4"},
        {HM_MMD_POLYNOMIAL, NULL, 0, 2, "poly2"},
        {HM_MMD_POLYNOMIAL, NULL, 0, 5, "poly5"},
        {HM_MMD_MULTISCALE, ms7, 7, 0, "multiscale7"},
        {HM_MMD_MULTISCALE, ms13, 13, 0, "multiscale13"},
        {HM_MMD_RBF, rbf2, 2, 0, "rbf2"},
        {HM_MMD_MULTISCALE, huge, 2, 0, "multiscale-unpaired"},
    };
    const int ncfg = (int)(sizeof cfgs / sizeof cfgs[0]);

    /* Every kernel on small problems (one tile per sample: all the block code
     * paths of that kernel); the tiling and the rounds do not depend on the
     * kernel, so the multi-tile sizes run for a representative subset. */
    for (int i = 0; i < ncfg; i++) {
        check_config(&cfgs[i], 70, 70, 1, 0, 0.3);
        check_config(&cfgs[i], 70, 45, 1, 1, 0.3);
        check_config(&cfgs[i], 5, 7, 1, 1, 0.3);
        check_config(&cfgs[i], 5, 7, 1, 0, 0.3);
        check_config(&cfgs[i], 40, 40, 3, 0, 0.3);
        check_config(&cfgs[i], 40, 29, 3, 1, 0.3);
        check_config(&cfgs[i], 9, 4, 2, 1, 0.3);
        check_columns(&cfgs[i], 90, 90, 8, 0);
        check_columns(&cfgs[i], 90, 61, 3, 1);
    }
    const int rep[] = {0, 2, 3, 6}; /* multiscale, gaussian, poly3, poly (generic degree) */
    for (int r = 0; r < 4; r++) {
        const kcfg *c = &cfgs[rep[r]];
        /* D = 1: 256-point tiles; 600 + 300 points give 5 tiles, an odd count
         * (a bye in every round) */
        check_config(c, 600, 600, 1, 0, 0.3);
        check_config(c, 600, 300, 1, 1, 0.3);
        /* D = 3: tiles of 150 and 197 points walked in 32 x 128 micro-blocks
         * (several row blocks, two column blocks, the diagonal skip) */
        check_config(c, 300, 300, 3, 0, 0.3);
        check_config(c, 300, 197, 3, 1, 0.3);
        check_threads(c, 700, 650, 1, 0);
        check_threads(c, 300, 250, 3, 1);
        check_null(c, 300, 1);
        check_null(c, 150, 3);
    }
    for (int i = 0; i < ncfg; i++) check_null(&cfgs[i], 200, 1);
    {
        const kcfg c = {HM_MMD_MULTISCALE, tiny, 2, 0, "multiscale-tiny"};
        for (int unbiased = 0; unbiased <= 1; unbiased++) {
            float x[300], y[200];
            fill(x, 300, 0.0, 1.0);
            fill(y, 200, 0.2, 1.0);
            double *z = pooled(x, y, 300, 200, 1), mag;
            const double ref = ref_mmd(&c, z, 300, 200, 1, unbiased, &mag);
            CHECK_CLOSE(hm_mmd_forward(x, y, 300, 200, 1, c.kernel, c.bw, c.nbw, 0, unbiased), ref,
                        1e-6 * mag, 0.0);
            free(z);
        }
    }
    check_columns(&cfgs[0], 300, 300, 8, 0); /* several tiles, columns in parallel */
    check_columns(&cfgs[0], 300, 170, 3, 1); /* several tiles, rounds in parallel */
    check_columns(&cfgs[0], 40, 40, 19, 0);  /* more columns than one group */

    /* 1-D tiles at their 512-point limit with more than 64 tiles (x takes 50
     * distinct values, so the reference sums over value pairs with counts) */
    if (!HM_SANITIZED) {
        const kcfg *c = &cfgs[0];
        const int64_t N = 33000, M = 40;
        enum { NV = 50 };
        float vals[NV], *x = malloc((size_t)N * sizeof(float)), y[40];
        double cnt[NV] = {0};
        fill(vals, NV, 0.0, 1.0);
        fill(y, M, 0.5, 1.0);
        for (int64_t i = 0; i < N; i++) {
            const int u = (int)((i * 7919) % NV);
            x[i] = vals[u];
            cnt[u] += 1.0;
        }
        double dv[NV], dy_[40];
        for (int u = 0; u < NV; u++) dv[u] = vals[u];
        for (int j = 0; j < M; j++) dy_[j] = y[j];
        double sxx = 0.0, syy = 0.0, sxy = 0.0;
        for (int u = 0; u < NV; u++)
            for (int w = 0; w < NV; w++) /* ordered pairs i != j: n_u n_w, minus n_u on u == w */
                sxx += (cnt[u] * cnt[w] - (u == w ? cnt[u] : 0.0)) * ref_k(c, &dv[u], &dv[w], 1);
        for (int a = 0; a < M; a++)
            for (int b = 0; b < M; b++)
                if (a != b) syy += ref_k(c, &dy_[a], &dy_[b], 1);
        for (int u = 0; u < NV; u++)
            for (int b = 0; b < M; b++) sxy += cnt[u] * ref_k(c, &dv[u], &dy_[b], 1);
        const double n = (double)N, m = (double)M;
        const double mag = sxx / (n * (n - 1)) + syy / (m * (m - 1)) + 2.0 * sxy / (n * m);
        const double ref = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m);
        const double v = hm_mmd_forward(x, y, N, M, 1, c->kernel, c->bw, c->nbw, c->degree, 1);
        CHECK_CLOSE(v, ref, 1e-6 * mag, 0.0);
        free(x);
    }

    check_median(50, 40, 3, 1000); /* all 90 points: 4005 pairs (odd) */
    check_median(50, 40, 2, 30);   /* 435 pairs */
    check_median(30, 20, 1, 21);   /* 210 pairs (even) */
    CHECK(isnan(hm_mmd_median_distance(NULL, NULL, NULL, 1, 0, 1, 5)));

    /* invalid arguments: NaN values, zero gradients */
    {
        float x[4] = {1, 2, 3, 4}, y[4] = {0, 1, 2, 3}, dx[4] = {9, 9, 9, 9}, dy[4] = {9, 9, 9, 9};
        CHECK(isnan(hm_mmd_forward(x, y, 1, 4, 1, HM_MMD_MULTISCALE, NULL, 0, 0, 1)));
        CHECK(isnan(hm_mmd_forward(x, y, 4, 4, 1, 7, NULL, 0, 0, 0)));
        CHECK(isnan(hm_mmd_forward(x, y, 4, 4, 1, HM_MMD_GAUSSIAN, NULL, 0, 0, 0)));
        CHECK(isnan(hm_mmd_forward(x, y, 4, 4, 1, HM_MMD_POLYNOMIAL, NULL, 0, 0, 0)));
        const float neg[1] = {-1.0f};
        CHECK(isnan(hm_mmd_forward(x, y, 4, 4, 1, HM_MMD_RBF, neg, 1, 0, 0)));
        hm_mmd_backward(dx, dy, 1.0f, x, y, 4, 4, 1, HM_MMD_RBF, neg, 1, 0, 0);
        CHECK(maxabs(dx, 4) == 0.0 && maxabs(dy, 4) == 0.0);
        /* a single point per sample is fine for the biased estimator */
        const double v = hm_mmd_forward(x, y, 1, 1, 1, HM_MMD_MULTISCALE, NULL, 0, 0, 0);
        double k = 0.0;
        for (int i = 0; i < 6; i++) k += (double)ms_def[i] * ms_def[i] / ((double)ms_def[i] * ms_def[i] + 1.0);
        CHECK_CLOSE(v, 2.0 * (6.0 - k), 1e-6, 0.0);
    }

    /* the course's case: 8 one-dimensional features (N = 4096 too unless "quick") */
    if (HM_SANITIZED) {
        printf("  timings skipped in a sanitizer build (build with -O2 to see them)\n");
    } else {
        timings(1024, 5);
        if (!(argc > 1 && strcmp(argv[1], "quick") == 0)) timings(4096, 2);
    }
    return CHECK_REPORT();
}
