/* Tests of the two-sample statistics (csrc/kernels/metrics.c).
 *
 * Reference numbers marked "scipy" were computed with scipy 1.17.1 / numpy 2.4
 * on the formula data of data() below, which C and numpy produce bit for bit
 * (products of doubles and floor only):
 *   stats.wasserstein_distance, stats.ks_2samp, stats.kstwo.sf,
 *   the Frechet distance with scipy.linalg.sqrtm(s1 @ s2) (jetnet's formula),
 *   the MMD with jetnet's dense-matrix _mmd_poly_quadratic_unbiased,
 *   jetnet fpd's sizes (1 / np.linspace(1/20000, 1/50000, 10)).astype(int32).
 * The last part prints timings at N = M = 50,000, D = 6 (see main()).
 */
#include "check.h"
#include "metrics.h"
#include "rng.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <time.h>

/* ---- scipy references (see the header comment) ---- */
static const double refS_w1[] = {0.0086556300420052665, 0.050846133950223103, 0.084417562521660189};
static const double refS_ks[] = {0.020285714285714285, 0.065428571428571433, 0.090571428571428567};
static const double refS_ksp[] = {0.99958098088478531, 0.15726374518659456, 0.015642873451468683};
static const double refS_fgd = 0.0098275035399342237;
static const double refS_mmd3 = 0.058020882629378434;
static const double refS_mmd4s = 0.0084753212360428876; /* degree 4, features / max|a| */
static const double refS_mean_a[] = {0.99990952575086633, 0.99490952575086633, 1.0113380971794306};
static const double refS_cov_a[] = {0.16681469593127787, -0.00044357592526824796, 0.0017375493478129114,
                                    -0.00044357592526824796, 0.16844622088771286, 0.0039213375771042459,
                                    0.0017375493478129114, 0.0039213375771042459, 0.16651529751194732};
static const double refL_w1[] = {0.00061628428688412771, 0.050333560701897088};
static const double refL_ks[] = {0.0012833333333333585, 0.053066666666666706};
static const double refL_ksp[] = {1, 9.2990517611085151e-17};
static const double refE_w1[] = {0.0034809949419352362};
static const double refE_ks[] = {0.0085000000000000006};
static const double refE_ksp[] = {0.99999965057631335};
/* kstwo.sf at one point of each of scipy's branches */
static const double ref_kstwo_x[] = {0.15, 0.92, 0.55, 0.1, 0.25, 0.012, 0.004, 0.006, 0.0015, 0.3};
static const int64_t ref_kstwo_n[] = {5, 10, 30, 100, 100, 25000, 1000, 25000, 2000000, 7};
static const double ref_kstwo_sf[] = {0.99880000000000002, 2.1474836479999892e-11, 4.7403072360055897e-09,
                                      0.25269275700638738, 5.4088717764348473e-06, 0.0014810269244871926, 1,
                                      0.32780946298251068, 0.00024657290508461606, 0.46626387699002947};
static const double ref_fd_fixed = 1.0547007081835833;
static const int64_t ref_fpd_sizes[] = {20000, 21428, 23076, 24999, 27272, 30000, 33333, 37499, 42857, 49999};

/* ---- data ---- */

static double frac(double x) { return x - floor(x); }

/* which = 0: a[i, j] = frac(i c1_j) + frac(i c2_j); which = 1: other constants
 * and a shift 0.05 j (i from 1). Low-discrepancy, so tiny statistics. */
static void data(double *x, int64_t n, int64_t d, int which) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            double ii = (double)(i + 1), jj = (double)j;
            if (which == 0)
                x[i * d + j] = frac(ii * (0.6180339887498949 + 0.1 * jj)) + frac(ii * (0.41421356237309515 + 0.07 * jj));
            else
                x[i * d + j] = frac(ii * (0.7320508075688772 + 0.03 * jj)) + frac(ii * (0.2360679774997898 + 0.11 * jj)) +
                               0.05 * jj;
        }
}

/* Normal samples in double: column j has mean mu[j] and std sd[j] (NULL: 0 / 1). */
static void gauss(double *x, int64_t n, int64_t d, uint64_t seed, const double *mu, const double *sd) {
    for (int64_t i = 0; i < n; i++) {
        hm_stream s;
        hm_stream_init(&s, seed, (uint64_t)i);
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (mu ? mu[j] : 0.0) + (sd ? sd[j] : 1.0) * hm_stream_normal(&s);
    }
}

static double *dalloc(int64_t n) {
    double *p = malloc((size_t)n * sizeof(double));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* The relabelling documented in metrics.h, written out independently: Fisher-Yates
 * over the pool with stream HM_METRIC_STREAM_PERM + p, the smaller sample drawn
 * first, 32-bit Lemire reduction. Fills xa [n, d] and xb [m, d]. */
static void split_of_perm(double *xa, double *xb, const double *a, int64_t n, const double *b, int64_t m,
                          int64_t d, uint64_t seed, int64_t p) {
    int64_t L = n + m, s = n <= m ? n : m;
    uint32_t *idx = malloc((size_t)L * sizeof(uint32_t));
    for (int64_t i = 0; i < L; i++) idx[i] = (uint32_t)i;
    hm_stream st;
    hm_stream_init(&st, seed, HM_METRIC_STREAM_PERM + (uint64_t)p);
    for (int64_t i = 0; i < s; i++) {
        uint32_t r = (uint32_t)(L - i);
        uint64_t prod = (uint64_t)hm_stream_u32(&st) * r;
        if ((uint32_t)prod < r) {
            uint32_t th = (uint32_t)(0u - r) % r;
            while ((uint32_t)prod < th) prod = (uint64_t)hm_stream_u32(&st) * r;
        }
        int64_t j = i + (int64_t)(prod >> 32);
        uint32_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
    for (int64_t i = 0; i < L; i++) {
        int64_t src = idx[i];
        const double *row = src < n ? a + src * d : b + (src - n) * d;
        int in_a = n <= m ? i < n : i >= m;
        double *dst = in_a ? xa + (n <= m ? i : i - m) * d : xb + (n <= m ? i - n : i) * d;
        memcpy(dst, row, (size_t)d * sizeof(double));
    }
    free(idx);
}

/* ---- tests ---- */

static void test_hand_cases(void) {
    double w, s, p;
    double a1[] = {0.0}, b1[] = {1.0, 3.0};
    CHECK(hm_metric_w1(&w, a1, 1, b1, 2) == 0);
    CHECK_CLOSE(w, 2.0, 1e-15, 0);                      /* |1-0| on [0,1) + |1-1/2| on [1,3) */
    double a2[] = {0, 1, 2, 3}, b2[] = {3.5, 0.5, 2.5, 1.5};
    hm_metric_w1(&w, a2, 4, b2, 4);
    CHECK_CLOSE(w, 0.5, 1e-15, 0);                      /* a shifted by 0.5 */
    double a3[] = {0, 0, 1, 1}, b3[] = {5, 6};
    hm_metric_w1(&w, a3, 4, b3, 2);
    CHECK_CLOSE(w, 5.0, 1e-15, 0);                      /* N != M, same distribution shifted */
    double a4[] = {1, 2, 2, 3}, b4[] = {2, 4};
    hm_metric_w1(&w, a4, 4, b4, 2);
    CHECK_CLOSE(w, 1.0, 1e-15, 0);                      /* scipy: 1.0 */
    CHECK(hm_metric_ks(&s, &p, a4, 4, b4, 2) == 0);
    CHECK_CLOSE(s, 0.5, 1e-15, 0);                      /* CDFs compared after the tied 2s */
    CHECK_CLOSE(p, 0.93333333333333324, 0, 1e-14);      /* scipy exact */
    hm_metric_ks(&s, &p, b4, 2, a4, 4);                 /* symmetric */
    CHECK_CLOSE(s, 0.5, 1e-15, 0);
    CHECK_CLOSE(p, 0.93333333333333324, 0, 1e-14);
    double a5[] = {1, 2, 3}, b5[] = {4, 5, 6};
    hm_metric_ks(&s, &p, a5, 3, b5, 3);
    CHECK_CLOSE(s, 1.0, 0, 0);
    CHECK_CLOSE(p, 0.1, 0, 1e-14);                      /* 2 / C(6, 3) */
    hm_metric_ks(&s, &p, b5, 3, a5, 3);
    CHECK_CLOSE(s, 1.0, 0, 0);
    double a6[] = {-0.0, -1.0, 2.0}, b6[] = {0.0, -1.0, 2.0};
    hm_metric_w1(&w, a6, 3, b6, 3);
    hm_metric_ks(&s, &p, a6, 3, b6, 3);
    CHECK(w == 0.0 && s == 0.0 && p == 1.0);            /* -0 and +0 are the same value */

    /* N != M: a grid repeated twice against the shifted grid: W1 = the shift */
    int64_t g = 300;
    double *ga = dalloc(2 * g), *gb = dalloc(g);
    for (int64_t i = 0; i < g; i++) { ga[2 * i] = ga[2 * i + 1] = (double)i / g; gb[i] = (double)(g - 1 - i) / g + 0.37; }
    hm_metric_w1(&w, ga, 2 * g, gb, g);
    CHECK_CLOSE(w, 0.37, 1e-12, 0);
    /* two uniform samples, the second shifted by 0.25: W1 = 0.25 */
    double *ua = dalloc(5000), *ub = dalloc(5000);
    for (int64_t i = 0; i < 5000; i++) ua[i] = frac((double)(i + 1) * 0.6180339887498949);
    for (int64_t i = 0; i < 5000; i++) ub[i] = ua[(i * 7) % 5000] + 0.25; /* a permutation of ua, shifted */
    hm_metric_w1(&w, ua, 5000, ub, 5000);
    CHECK_CLOSE(w, 0.25, 1e-12, 0);
    free(ga); free(gb); free(ua); free(ub);

    /* failures are reported, not crashed on */
    CHECK(hm_metric_w1(&w, a1, 0, b1, 2) == HM_METRIC_EINVAL);
    double mu[2], cv[4];
    CHECK(hm_metric_mean_cov(mu, cv, a1, 1, 1) == HM_METRIC_EINVAL);
    CHECK(hm_metric_mmd_poly(&w, a2, 1, b2, 4, 1, 3, NULL) == HM_METRIC_EINVAL);
}

/* An independent reference: qsort both samples, then walk the merged distinct values. */
static int cmp_dbl(const void *x, const void *y) {
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}
static void ref_w1_ks(double *w1, double *ks, const double *a, int64_t n, const double *b, int64_t m) {
    double *sa = dalloc(n), *sb = dalloc(m);
    memcpy(sa, a, (size_t)n * sizeof(double));
    memcpy(sb, b, (size_t)m * sizeof(double));
    qsort(sa, (size_t)n, sizeof(double), cmp_dbl);
    qsort(sb, (size_t)m, sizeof(double), cmp_dbl);
    int64_t i = 0, j = 0;
    double w = 0, k = 0;
    while (i < n || j < m) {
        double x = (j >= m || (i < n && sa[i] <= sb[j])) ? sa[i] : sb[j];
        while (i < n && sa[i] == x) i++;
        while (j < m && sb[j] == x) j++;
        double f = fabs((double)i / n - (double)j / m);
        if (f > k) k = f;
        if (i < n || j < m) {
            double nx = (j >= m || (i < n && sa[i] <= sb[j])) ? sa[i] : sb[j];
            w += f * (nx - x);
        }
    }
    *w1 = w;
    *ks = k;
    free(sa); free(sb);
}

/* The packed-key radix sort, its repair pass and its full-key fallback. */
static void test_sort_paths(void) {
    int64_t n = 4000, m = 3000;
    double *a = dalloc(n), *b = dalloc(m), w, s, p, rw, rs;
    for (int kind = 0; kind < 4; kind++) {
        for (int64_t i = 0; i < n + m; i++) {
            hm_stream st;
            hm_stream_init(&st, 123 + kind, (uint64_t)i);
            double g = hm_stream_normal(&st), *dst = i < n ? &a[i] : &b[i - n];
            if (kind == 0) *dst = g * 3.0 + (i < n ? 0.0 : 0.1);                  /* plain doubles */
            else if (kind == 1) *dst = (double)(float)(g * 0.01f);                 /* float32 values, many ties */
            else if (kind == 2) *dst = (i & 1) ? dst[-1] / (1.0 + 0x1p-40) : g;     /* near-ties, reversed pairs */
            else *dst = 1.0 + (double)(n + m - i) * 0x1p-45;                        /* one reversed cluster */
        }
        hm_metric_w1(&w, a, n, b, m);
        hm_metric_ks(&s, &p, a, n, b, m);
        ref_w1_ks(&rw, &rs, a, n, b, m);
        CHECK_CLOSE(w, rw, 1e-300, 1e-12);
        CHECK_CLOSE(s, rs, 1e-15, 0);
    }
    free(a); free(b);
}

static void test_vs_scipy(void) {
    struct { int64_t n, m, d; const double *w1, *ks, *ksp; } sets[] = {
        {700, 500, 3, refS_w1, refS_ks, refS_ksp},        /* exact KS, n != m */
        {12000, 15000, 2, refL_w1, refL_ks, refL_ksp},    /* asymptotic KS */
        {2000, 2000, 1, refE_w1, refE_ks, refE_ksp},      /* exact KS, n == m */
    };
    for (int t = 0; t < 3; t++) {
        int64_t n = sets[t].n, m = sets[t].m, d = sets[t].d;
        double *a = dalloc(n * d), *b = dalloc(m * d), w[3], s[3], p[3];
        data(a, n, d, 0);
        data(b, m, d, 1);
        CHECK(hm_metric_features(w, s, p, a, n, b, m, d) == 0);
        for (int64_t j = 0; j < d; j++) {
            CHECK_CLOSE(w[j], sets[t].w1[j], 0, 1e-12);
            CHECK_CLOSE(s[j], sets[t].ks[j], 1e-15, 0);
            CHECK_CLOSE(p[j], sets[t].ksp[j], 1e-300, 1e-9);
            CHECK_CLOSE(hm_metric_ks_pvalue(sets[t].ks[j], n, m), sets[t].ksp[j], 1e-300, 1e-9);
        }
        free(a); free(b);
    }
    for (int i = 0; i < (int)(sizeof ref_kstwo_n / sizeof ref_kstwo_n[0]); i++)
        CHECK_CLOSE(hm_metric_kstwo_sf(ref_kstwo_x[i], ref_kstwo_n[i]), ref_kstwo_sf[i], 1e-300, 1e-9);
    /* limits */
    CHECK(hm_metric_kstwo_sf(0.0, 10) == 1.0 && hm_metric_kstwo_sf(1.0, 10) == 0.0);
    CHECK(hm_metric_ks_pvalue(0.0, 50, 70) == 1.0);
}

static void test_sliced(void) {
    int64_t n = 3000, m = 2000, d = 4, k = 16;
    double *a = dalloc(n * d), *b = dalloc(m * d), *dirs = dalloc(k * d), *dirs2 = dalloc(k * d);
    gauss(a, n, d, 11, NULL, NULL);
    const double c[4] = {0.3, -0.1, 0.0, 0.2};
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < d; j++) b[i * d + j] = a[(i * 3 % n) * d + j] + c[j];
    CHECK(hm_metric_random_directions(dirs, k, d, 5) == 0);
    hm_metric_random_directions(dirs2, k, d, 5);
    CHECK(memcmp(dirs, dirs2, (size_t)(k * d) * sizeof(double)) == 0);
    for (int64_t i = 0; i < k; i++) {
        double nrm = 0;
        for (int64_t j = 0; j < d; j++) nrm += dirs[i * d + j] * dirs[i * d + j];
        CHECK_CLOSE(nrm, 1.0, 1e-14, 0);
    }
    /* a sample against the translate of a subsample of itself... */
    double *ws = dalloc(k), *ks = dalloc(k), wm, wsd, km, ksd;
    CHECK(hm_metric_sliced(&wm, &wsd, &km, &ksd, ws, ks, a, n, b, m, d, k, 5) == 0);
    /* ...each slice must equal the 1-D statistics of the explicit projections */
    double *pa = dalloc(n), *pb = dalloc(m);
    double sum = 0, sum2 = 0;
    for (int64_t s = 0; s < k; s++) {
        const double *u = dirs + s * d;
        for (int64_t i = 0; i < n; i++) { double v = 0; for (int64_t j = 0; j < d; j++) v += a[i * d + j] * u[j]; pa[i] = v; }
        for (int64_t i = 0; i < m; i++) { double v = 0; for (int64_t j = 0; j < d; j++) v += b[i * d + j] * u[j]; pb[i] = v; }
        double w, st, pv;
        hm_metric_w1(&w, pa, n, pb, m);
        hm_metric_ks(&st, &pv, pa, n, pb, m);
        CHECK(w == ws[s] && st == ks[s]);
        sum += w;
        sum2 += w * w;
    }
    CHECK_CLOSE(wm, sum / k, 1e-15, 1e-13);
    CHECK_CLOSE(wsd, sqrt(sum2 / k - (sum / k) * (sum / k)), 1e-10, 1e-8);
    /* the exact translate: W1 of every slice is |c . u| */
    double *bb = dalloc(n * d);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) bb[i * d + j] = a[i * d + j] + c[j];
    hm_metric_sliced(&wm, NULL, NULL, NULL, ws, NULL, a, n, bb, n, d, k, 5);
    for (int64_t s = 0; s < k; s++) {
        double cu = 0;
        for (int64_t j = 0; j < d; j++) cu += c[j] * dirs[s * d + j];
        CHECK_CLOSE(ws[s], fabs(cu), 1e-12, 0);
    }
    free(a); free(b); free(bb); free(dirs); free(dirs2); free(ws); free(ks); free(pa); free(pb);
}

static void test_frechet(void) {
    /* fixed non-commuting covariances: scipy sqrtm reference */
    const double A[16] = {2.0, 0.3, -0.2, 0.1, 0.3, 1.5, 0.4, 0.0, -0.2, 0.4, 1.0, 0.25, 0.1, 0.0, 0.25, 0.8};
    const double B[16] = {1.0, -0.5, 0.0, 0.2, -0.5, 2.5, 0.1, 0.3, 0.0, 0.1, 0.7, -0.1, 0.2, 0.3, -0.1, 1.2};
    const double mu1[4] = {0.1, -0.2, 0.3, 0.0}, mu2[4] = {0.0, 0.1, 0.1, -0.4};
    double fd;
    CHECK(hm_metric_frechet(&fd, mu1, A, mu2, B, 4) == 0);
    CHECK_CLOSE(fd, ref_fd_fixed, 0, 1e-12);
    /* diagonal: |dmu|^2 + sum (s1 - s2)^2 */
    double D1[9] = {1, 0, 0, 0, 4, 0, 0, 0, 0.25}, D2[9] = {1.21, 0, 0, 0, 3.24, 0, 0, 0, 0.25};
    double m1[3] = {0, 0, 0}, m2[3] = {0.1, 0, -0.2};
    hm_metric_frechet(&fd, m1, D1, m2, D2, 3);
    CHECK_CLOSE(fd, 0.05 + 0.01 + 0.04, 1e-14, 0);
    /* commuting: c2 = 4 c1 gives tr(c1) (1 + 4 - 2 * 2) */
    double A4[16];
    for (int i = 0; i < 16; i++) A4[i] = 4 * A[i];
    hm_metric_frechet(&fd, mu1, A, mu1, A4, 4);
    CHECK_CLOSE(fd, 2.0 + 1.5 + 1.0 + 0.8, 1e-13, 0);
    /* singular c1 = v v^T against I: sqrt terms give |v|, FD = |v|^2 + d - 2|v|. The zero
     * eigenvalues come out at rounding level (~1e-15) and their square roots at ~3e-8:
     * singular covariances keep only half the digits (as with scipy's sqrtm). */
    double v[3] = {1, 2, 2}, V[9], I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) V[i * 3 + j] = v[i] * v[j];
    hm_metric_frechet(&fd, m1, V, m1, I3, 3);
    CHECK_CLOSE(fd, 9.0 + 3.0 - 6.0, 1e-6, 0);

    /* mean / covariance and FGD of the formula data */
    int64_t n = 700, m = 500, d = 3;
    double *a = dalloc(n * d), *b = dalloc(m * d), mu[3], cov[9];
    data(a, n, d, 0);
    data(b, m, d, 1);
    CHECK(hm_metric_mean_cov(mu, cov, a, n, d) == 0);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(mu[i], refS_mean_a[i], 0, 1e-14);
    for (int i = 0; i < 9; i++) CHECK_CLOSE(cov[i], refS_cov_a[i], 1e-16, 1e-12);
    CHECK(hm_metric_fgd(&fd, a, n, b, m, d, NULL) == 0);
    CHECK_CLOSE(fd, refS_fgd, 0, 1e-10);
    /* col_scale equals scaling the data */
    double sc[3] = {2.0, 0.5, 3.0}, fd2;
    double *as = dalloc(n * d), *bs = dalloc(m * d);
    for (int64_t i = 0; i < n * d; i++) as[i] = a[i] * sc[i % d];
    for (int64_t i = 0; i < m * d; i++) bs[i] = b[i] * sc[i % d];
    hm_metric_fgd(&fd, a, n, b, m, d, sc);
    hm_metric_fgd(&fd2, as, n, bs, m, d, NULL);
    CHECK_CLOSE(fd, fd2, 0, 1e-12);
    free(a); free(b); free(as); free(bs);

    /* sample covariances of Gaussians against the analytic formula (diagonal):
     * FD = 0.1; the estimate's spread at N = 1e5 is ~0.004. */
    int64_t N = 100000;
    double *ga = dalloc(N * 3), *gb = dalloc(N * 3);
    const double sd1[3] = {1, 2, 0.5}, sd2[3] = {1.1, 1.8, 0.5}, mm2[3] = {0.1, 0, -0.2};
    gauss(ga, N, 3, 21, NULL, sd1);
    gauss(gb, N, 3, 22, mm2, sd2);
    hm_metric_fgd(&fd, ga, N, gb, N, 3, NULL);
    CHECK_CLOSE(fd, 0.1, 0.015, 0);
    free(ga); free(gb);
}

static void test_fgd_inf(void) {
    int64_t n = 5000, d = 2;
    double *a = dalloc(n * d), *b = dalloc(n * d), *c = dalloc(n * d);
    const double shift[2] = {0.3, 0.0};
    gauss(a, n, d, 31, NULL, NULL);
    gauss(b, n, d, 32, NULL, NULL);
    gauss(c, n, d, 33, shift, NULL);
    double val, err, sizes[10], fdm[10];
    CHECK(hm_metric_fgd_inf(&val, &err, sizes, fdm, a, n, c, n, d, NULL, 20000, 50000, 20, 10, 1) == 0);
    for (int i = 0; i < 10; i++) CHECK(sizes[i] == (double)ref_fpd_sizes[i]);
    /* the intercept of the unconstrained least-squares line (feasible here) */
    double xm = 0, ym = 0, sxx = 0, sxy = 0, sx2 = 0;
    for (int i = 0; i < 10; i++) { xm += 1 / sizes[i] / 10; ym += fdm[i] / 10; }
    for (int i = 0; i < 10; i++) {
        double x = 1 / sizes[i];
        sxx += (x - xm) * (x - xm); sxy += (x - xm) * (fdm[i] - ym); sx2 += x * x;
    }
    double b1 = sxy / sxx, b0 = ym - b1 * xm, ssr = 0;
    for (int i = 0; i < 10; i++) { double r = fdm[i] - b0 - b1 / sizes[i]; ssr += r * r; }
    CHECK(b0 > 0 && b1 > 0);
    CHECK_CLOSE(val, b0, 1e-15, 1e-10);
    CHECK_CLOSE(err, sqrt(ssr / 8 * sx2 / (10 * sxx)), 1e-15, 1e-8);
    /* the population FD of the two empirical distributions is ~0.09 (0.3^2) */
    CHECK_CLOSE(val, 0.09, 0.03, 0);
    /* same distribution: the intercept is clamped at >= 0 and small */
    CHECK(hm_metric_fgd_inf(&val, &err, NULL, fdm, a, n, b, n, d, NULL, 2000, 5000, 10, 5, 2) == 0);
    CHECK(val >= 0 && val < 0.01);
    CHECK(fdm[0] > fdm[4]); /* FD decreases with the subsample size (bias c / N) */
    free(a); free(b); free(c);
}

static void test_mmd(void) {
    struct { int64_t n, m, d; int deg; int scaled; } cases[] = {
        {40, 30, 1, 3, 0}, {200, 150, 3, 4, 1}, {300, 250, 6, 3, 0}, {120, 200, 6, 4, 1}, {50, 60, 2, 1, 0}, {80, 70, 9, 2, 1},
    };
    for (int t = 0; t < 6; t++) {
        int64_t n = cases[t].n, m = cases[t].m, d = cases[t].d;
        double *a = dalloc(n * d), *b = dalloc(m * d), sc[16], x1, x2;
        const double mu[9] = {1, 0.5, 0, 2, 0, 0, 1, 0, 0};
        gauss(a, n, d, 40 + t, mu, NULL);
        gauss(b, m, d, 50 + t, NULL, NULL);
        hm_metric_maxabs_inv(sc, a, n, d);
        const double *s = cases[t].scaled ? sc : NULL;
        CHECK(hm_metric_mmd_poly(&x1, a, n, b, m, d, cases[t].deg, s) == 0);
        CHECK(hm_metric_mmd_poly_pairwise(&x2, a, n, b, m, d, cases[t].deg, s) == 0);
        CHECK_CLOSE(x1, x2, 1e-13, 1e-10);
        free(a); free(b);
    }
    int64_t n = 700, m = 500, d = 3;
    double *a = dalloc(n * d), *b = dalloc(m * d), sc[3], x;
    data(a, n, d, 0);
    data(b, m, d, 1);
    hm_metric_mmd_poly(&x, a, n, b, m, d, 3, NULL);
    CHECK_CLOSE(x, refS_mmd3, 0, 1e-10);
    hm_metric_maxabs_inv(sc, a, n, d);
    hm_metric_mmd_poly(&x, a, n, b, m, d, 4, sc);
    CHECK_CLOSE(x, refS_mmd4s, 0, 1e-10);
    free(a); free(b);

    /* KPD: median and half the 16.275-83.725 percentile range of the batch values */
    n = 20000;
    d = 3;
    double *ga = dalloc(n * d), *gb = dalloc(n * d), vals[10], srt[10], med, err, med2, err2;
    gauss(ga, n, d, 61, NULL, NULL);
    gauss(gb, n, d, 62, NULL, NULL);
    CHECK(hm_metric_kpd(&med, &err, vals, ga, n, gb, n, d, 4, NULL, 10, 2000, 42) == 0);
    memcpy(srt, vals, sizeof srt);
    for (int i = 0; i < 10; i++)
        for (int j = i + 1; j < 10; j++)
            if (srt[j] < srt[i]) { double t = srt[i]; srt[i] = srt[j]; srt[j] = t; }
    CHECK_CLOSE(med, 0.5 * (srt[4] + srt[5]), 0, 1e-15);
    double plo = 0.16275 * 9, phi = 0.83725 * 9; /* numpy 'linear' positions */
    double qlo = srt[1] + (plo - 1) * (srt[2] - srt[1]), qhi = srt[7] + (phi - 7) * (srt[8] - srt[7]);
    CHECK_CLOSE(err, 0.5 * (qhi - qlo), 1e-16, 1e-12);
    CHECK(fabs(med) < 3 * err + 1e-4); /* same distribution */
    hm_metric_kpd(&med2, &err2, NULL, ga, n, gb, n, d, 4, NULL, 10, 2000, 42);
    CHECK(med == med2 && err == err2);
    for (int64_t i = 0; i < n; i++) gb[i * d] += 0.5;
    hm_metric_kpd(&med2, &err2, NULL, ga, n, gb, n, d, 4, NULL, 10, 2000, 42);
    CHECK(med2 > 10 * err2 && med2 > 0.01);
    free(ga); free(gb);
}

/* The permutation nulls recomputed from the documented relabelling. */
static void test_perm_consistency(void) {
    int64_t n = 400, m = 300, d = 3, P = 5;
    double *a = dalloc(n * d), *b = dalloc(m * d), *xa = dalloc(n * d), *xb = dalloc(m * d);
    const double mu[3] = {0.2, 0, 0};
    gauss(a, n, d, 71, NULL, NULL);
    gauss(b, m, d, 72, mu, NULL);
    double w[3], s[3], wn[15], sn[15], fo, fp, fn[5], mo, mp, mn[5];
    CHECK(hm_metric_columns(w, s, NULL, wn, sn, a, n, b, m, d, NULL, d, P, 9) == 0);
    CHECK(hm_metric_fgd_perm(&fo, &fp, fn, a, n, b, m, d, NULL, P, 9) == 0);
    CHECK(hm_metric_mmd_perm(&mo, &mp, mn, a, n, b, m, d, 3, NULL, P, 9) == 0);
    for (int64_t p = 0; p < P; p++) {
        split_of_perm(xa, xb, a, n, b, m, d, 9, p);
        double w2[3], s2[3], f2, m2;
        hm_metric_features(w2, s2, NULL, xa, n, xb, m, d);
        for (int j = 0; j < 3; j++) {
            CHECK_CLOSE(wn[p * 3 + j], w2[j], 0, 1e-13);
            CHECK(sn[p * 3 + j] == s2[j]);
        }
        hm_metric_fgd(&f2, xa, n, xb, m, d, NULL);
        CHECK_CLOSE(fn[p], f2, 0, 1e-12);
        hm_metric_mmd_poly_pairwise(&m2, xa, n, xb, m, d, 3, NULL);
        CHECK_CLOSE(mn[p], m2, 1e-13, 1e-9);
    }
    /* n <= m: the other branch of the relabelling (above, n > m) */
    double wn2[3], w3;
    CHECK(hm_metric_columns(&w3, NULL, NULL, wn2, NULL, b, m, a, n, d, NULL, 1, 3, 4) == HM_METRIC_EINVAL);
    CHECK(hm_metric_columns(w, NULL, NULL, wn, NULL, b, m, a, n, d, NULL, d, 2, 4) == 0);
    for (int64_t p = 0; p < 2; p++) {
        split_of_perm(xb, xa, b, m, a, n, d, 4, p);
        double w2[3];
        hm_metric_features(w2, NULL, NULL, xb, m, xa, n, d);
        for (int j = 0; j < 3; j++) CHECK_CLOSE(wn[p * 3 + j], w2[j], 0, 1e-13);
    }
    /* a clear difference: every permutation is smaller, p = 1 / (1 + P) */
    for (int64_t i = 0; i < m * d; i++) b[i] += 1.0;
    double pv[3];
    hm_metric_columns(w, s, NULL, wn, sn, a, n, b, m, d, NULL, d, P, 9);
    hm_metric_perm_pvalues(pv, w, wn, P, d);
    for (int j = 0; j < 3; j++) CHECK(pv[j] == 1.0 / 6.0);
    free(a); free(b); free(xa); free(xb);
}

/* Under the null the permutation p-value is (nearly) uniform on {1/50, ..., 1}. */
static void test_perm_null_uniform(void) {
    int R = 400;
    int64_t n = 20, m = 25, P = 49;
    double a[50], b[50];
    int le10_w = 0, le50_w = 0, le10_k = 0, le10_f = 0, le10_m = 0;
    double sw = 0, sk = 0, sf = 0, sm = 0;
    for (int r = 0; r < R; r++) {
        gauss(a, n, 2, 1000 + 2 * r, NULL, NULL);
        gauss(b, m, 2, 1001 + 2 * r, NULL, NULL);
        double w[2], s[2], wn[98], sn[98], pw[2], pk[2];
        hm_metric_columns(w, s, NULL, wn, sn, a, n, b, m, 2, NULL, 2, P, (uint64_t)r);
        hm_metric_perm_pvalues(pw, w, wn, P, 2);
        hm_metric_perm_pvalues(pk, s, sn, P, 2);
        sw += pw[0]; sk += pk[0];
        le10_w += pw[0] <= 0.1; le50_w += pw[0] <= 0.5; le10_k += pk[0] <= 0.1;
        if (r < 200) {
            double o, pf, pm;
            hm_metric_fgd_perm(&o, &pf, NULL, a, n, b, m, 2, NULL, P, (uint64_t)r);
            hm_metric_mmd_perm(&o, &pm, NULL, a, n, b, m, 2, 3, NULL, P, (uint64_t)r);
            sf += pf; sm += pm;
            le10_f += pf <= 0.1; le10_m += pm <= 0.1;
        }
    }
    /* E[p] = 0.51, sd(mean) ~ 0.015 (R = 400) and ~0.02 (R = 200);
     * P(p <= 0.1) = 0.1, sd ~ 0.015 / 0.021 */
    CHECK_CLOSE(sw / R, 0.51, 0.06, 0);
    CHECK_CLOSE((double)le10_w / R, 0.1, 0.06, 0);
    CHECK_CLOSE((double)le50_w / R, 0.5, 0.08, 0);
    CHECK_CLOSE(sk / R, 0.53, 0.07, 0);     /* KS is discrete: ties make it slightly conservative */
    CHECK((double)le10_k / R < 0.16);
    CHECK_CLOSE(sf / 200, 0.51, 0.08, 0);
    CHECK_CLOSE((double)le10_f / 200, 0.1, 0.07, 0);
    CHECK_CLOSE(sm / 200, 0.51, 0.08, 0);
    CHECK_CLOSE((double)le10_m / 200, 0.1, 0.07, 0);
}

/* Every output bit-identical for 1, 2 and 3 threads. The sizes are chosen so
 * that every parallel region of metrics.c is above its work threshold. */
static void test_thread_independence(void) {
    int64_t n = 40000, m = 30000, d = 8, k = 10, P = 40;
    double *a = dalloc(n * d), *b = dalloc(m * d), *dirs = dalloc(k * d);
    gauss(a, n, d, 81, NULL, NULL);
    gauss(b, m, d, 82, NULL, NULL);
    hm_metric_random_directions(dirs, k, d, 3);
    int64_t nout = 5 * k + 2 * P * k + 3 * d + 2 * (2 + P) + 2 + 5 + 2 + 10 + 4;
    double *out[3];
    int threads[3] = {1, 2, 3}, saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(threads[t]);
        double *o = out[t] = dalloc(nout);
        memset(o, 0, (size_t)nout * sizeof(double));
        CHECK(hm_metric_columns(o, o + k, o + 2 * k, o + 3 * k, o + 3 * k + P * k, a, n, b, m, d, dirs, k, P, 7) == 0);
        o += 3 * k + 2 * P * k;
        CHECK(hm_metric_features(o, o + d, o + 2 * d, a, n, b, m, d) == 0);
        o += 3 * d;
        CHECK(hm_metric_fgd_perm(o, o + 1, o + 2, a, n, b, m, d, NULL, P, 7) == 0);
        o += 2 + P;
        CHECK(hm_metric_mmd_perm(o, o + 1, o + 2, a, n, b, m, d, 3, NULL, P, 7) == 0);
        o += 2 + P;
        CHECK(hm_metric_fgd_inf(o, o + 1, NULL, o + 2, a, n, b, m, d, NULL, 1000, 3000, 4, 5, 7) == 0);
        o += 7;
        CHECK(hm_metric_kpd(o, o + 1, o + 2, a, n, b, m, d, 3, NULL, 10, 4000, 7) == 0);
        o += 12;
        CHECK(hm_metric_mmd_poly(o, a, n, b, m, d, 4, NULL) == 0);
        CHECK(hm_metric_fgd(o + 1, a, n, b, m, d, NULL) == 0);
        CHECK(hm_metric_mmd_poly_pairwise(o + 2, a, 2000, b, 1500, d, 3, NULL) == 0);
        CHECK(hm_metric_sliced(o + 3, NULL, NULL, NULL, NULL, NULL, a, n, b, m, d, k, 3) == 0);
        o += 4;
        CHECK(o - out[t] <= nout);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(out[0], out[1], (size_t)nout * sizeof(double)) == 0);
    CHECK(memcmp(out[0], out[2], (size_t)nout * sizeof(double)) == 0);
    for (int t = 0; t < 3; t++) free(out[t]);
    free(a); free(b); free(dirs);
}

/* Wall and process CPU time (all threads) of one call: the machine may be shared. */
#define TIME(label, call) do { \
        double w0_ = omp_get_wtime(); clock_t c0_ = clock(); call; \
        printf("  %-46s wall %8.1f ms   cpu %8.1f ms\n", label, 1e3 * (omp_get_wtime() - w0_), \
               1e3 * (double)(clock() - c0_) / CLOCKS_PER_SEC); \
    } while (0)

static void timings(void) {
    int64_t N = 50000, d = 6, K = 50, P = 100;
    double *a = dalloc(N * d), *b = dalloc(N * d), *dirs = dalloc(K * d), *nul = dalloc(P * K), *nul2 = dalloc(P * K);
    const double mu[6] = {0.01, 0, 0, 0, 0, 0};
    gauss(a, N, d, 91, NULL, NULL);
    gauss(b, N, d, 92, mu, NULL);
    hm_metric_random_directions(dirs, K, d, 1);
    double w[64], s[64], p[64], x, y;
    printf("timings at N = M = %lld, D = %lld, %d threads:\n", (long long)N, (long long)d, omp_get_max_threads());
    TIME("per-feature W1 + KS + scipy p-values", hm_metric_features(w, s, p, a, N, b, N, d));
    TIME("sliced W1 + KS, 50 slices", hm_metric_sliced(&x, &y, &x, &y, NULL, NULL, a, N, b, N, d, K, 1));
    TIME("FGD", hm_metric_fgd(&x, a, N, b, N, d, NULL));
    TIME("FGD-inf (jetnet defaults: 10 sizes x 20)", hm_metric_fgd_inf(&x, &y, NULL, NULL, a, N, b, N, d, NULL, 20000, 50000, 20, 10, 1));
    TIME("MMD (degree 4, full samples)", hm_metric_mmd_poly(&x, a, N, b, N, d, 4, NULL));
    TIME("KPD (jetnet defaults: 10 x 5000, degree 4)", hm_metric_kpd(&x, &y, NULL, a, N, b, N, d, 4, NULL, 10, 5000, 42));
    TIME("per-feature W1 + KS, 100 permutations", hm_metric_columns(w, s, NULL, nul, nul2, a, N, b, N, d, NULL, d, P, 1));
    TIME("sliced W1 + KS (50), 100 permutations", hm_metric_columns(w, s, NULL, nul, nul2, a, N, b, N, d, dirs, K, P, 1));
    TIME("FGD, 100 permutations", hm_metric_fgd_perm(&x, &y, NULL, a, N, b, N, d, NULL, P, 1));
    TIME("MMD (degree 4), 100 permutations", hm_metric_mmd_perm(&x, &y, NULL, a, N, b, N, d, 4, NULL, P, 1));
    free(a); free(b); free(dirs); free(nul); free(nul2);
}

int main(void) {
    test_hand_cases();
    test_sort_paths();
    test_vs_scipy();
    test_sliced();
    test_frechet();
    test_fgd_inf();
    test_mmd();
    test_perm_consistency();
    test_perm_null_uniform();
    test_thread_independence();
    /* Timings print by default in optimised builds. Under the sanitizers
     * (make ctest) they take ~25 s and mean nothing, so they are skipped unless
     * HM_METRICS_TIMINGS=1; HM_SKIP_TIMINGS=1 skips them everywhere. */
#if defined(__SANITIZE_ADDRESS__)
    int want = getenv("HM_METRICS_TIMINGS") != NULL;
#else
    int want = 1;
#endif
    if (want && !getenv("HM_SKIP_TIMINGS")) timings();
    return CHECK_REPORT();
}
