/* Tests of the physics / data-preparation kernels (csrc/kernels/physics.c):
 * four-vector conversions and sums against double references, phi wrapping and
 * rotation, every scaling with its inverse, masked statistics against a direct double
 * computation (and bitwise equal for 1 and 2 threads), eta ordering, jet padding. */
#include "check.h"
#include "physics.h"
#include "rng.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PI_D 3.14159265358979323846
#define PI_F 3.14159274f /* float(pi) */

static double U(hm_stream *s, double lo, double hi) { return lo + (hi - lo) * hm_stream_uniform(s); }

/* ---------------------------------------------------------------- four-vectors */

static void test_fourvectors(void) {
    hm_stream s;
    hm_stream_init(&s, 11, 1);
    const int64_t n = 40000; /* above the parallel threshold */
    float *in = malloc(sizeof(float) * 4 * n), *car = malloc(sizeof(float) * 4 * n), *back = malloc(sizeof(float) * 4 * n);
    for (int64_t i = 0; i < n; i++) {
        in[4 * i] = (float)U(&s, 1.0, 1000.0);
        in[4 * i + 1] = (float)U(&s, -5.0, 5.0);
        in[4 * i + 2] = (float)U(&s, -PI_D, PI_D);
        in[4 * i + 3] = (float)U(&s, 0.0, 100.0);
    }
    memset(in + 4 * 7, 0, 4 * sizeof(float)); /* a padded row */
    hm_ptetaphim_to_pxpypze(car, in, n, 4);
    hm_pxpypze_to_ptetaphim(back, car, n);
    double e_px = 0, e_e = 0, e_pt = 0, e_eta = 0, e_phi = 0, e_m = 0;
    int nan_seen = 0;
    for (int64_t i = 0; i < n; i++) {
        double pt = in[4 * i], eta = in[4 * i + 1], phi = in[4 * i + 2], m = in[4 * i + 3];
        double px = pt * cos(phi), pz = pt * sinh(eta), e = sqrt(pt * pt + pz * pz + m * m);
        for (int j = 0; j < 4; j++) nan_seen += isnan(car[4 * i + j]) || isnan(back[4 * i + j]);
        if (i == 7) continue;
        e_px = fmax(e_px, fabs(car[4 * i] - px) / pt);
        e_e = fmax(e_e, fabs(car[4 * i + 3] - e) / e);
        e_pt = fmax(e_pt, fabs(back[4 * i] - pt) / pt);
        e_eta = fmax(e_eta, fabs(back[4 * i + 1] - eta));
        e_phi = fmax(e_phi, fabs(back[4 * i + 2] - phi));
        /* m from float (px, py, pz, E) is ill-conditioned for light energetic objects:
         * |dm| ~ E * sqrt(float eps), inherent to the storage, not the kernel */
        e_m = fmax(e_m, fabs(back[4 * i + 3] - m) / (e * 1e-3 + 1e-6 * m));
    }
    CHECK(nan_seen == 0);
    CHECK(e_px < 2e-7);
    CHECK(e_e < 2e-7);
    CHECK(e_pt < 4e-7);
    CHECK(e_eta < 2e-6);
    CHECK(e_phi < 1e-6);
    CHECK(e_m < 1.0);
    for (int j = 0; j < 4; j++) { CHECK(car[28 + j] == 0.0f); CHECK(back[28 + j] == 0.0f); }

    /* pt = 0 but along the beam: eta is infinite, output is zeros, not NaN */
    float beam[4] = {0.0f, 0.0f, 50.0f, 50.0f}, o[4];
    hm_pxpypze_to_ptetaphim(o, beam, 1);
    CHECK(o[0] == 0.0f && o[1] == 0.0f && o[2] == 0.0f && o[3] == 0.0f);

    /* leptons (pt, eta, phi: m = 0) and MET (pt, phi: eta = m = 0) */
    float lep[3] = {40.0f, 1.0f, 0.5f}, met[2] = {30.0f, -2.0f};
    hm_ptetaphim_to_pxpypze(o, lep, 1, 3);
    CHECK_CLOSE(o[3], 40.0 * cosh(1.0), 1e-4, 1e-6);
    CHECK_CLOSE(o[2], 40.0 * sinh(1.0), 1e-4, 1e-6);
    hm_ptetaphim_to_pxpypze(o, met, 1, 2);
    CHECK_CLOSE(o[0], 30.0 * cos(-2.0), 1e-5, 1e-6);
    CHECK_CLOSE(o[1], 30.0 * sin(-2.0), 1e-5, 1e-6);
    CHECK(o[2] == 0.0f);
    CHECK_CLOSE(o[3], 30.0, 1e-5, 0);
    /* in_f = 5: the label column is ignored */
    float jet5[5] = {50.0f, -1.0f, 1.0f, 8.0f, 1.0f}, jet4[4] = {50.0f, -1.0f, 1.0f, 8.0f}, o2[4];
    hm_ptetaphim_to_pxpypze(o, jet5, 1, 5);
    hm_ptetaphim_to_pxpypze(o2, jet4, 1, 4);
    CHECK(memcmp(o, o2, sizeof o) == 0);
    free(in); free(car); free(back);
}

static void test_sums_and_masses(void) {
    hm_stream s;
    hm_stream_init(&s, 12, 1);
    const int64_t n = 9000, k = 5;
    float *in = malloc(sizeof(float) * n * k * 4), *sum = malloc(sizeof(float) * n * 4), *m = malloc(sizeof(float) * n);
    uint8_t *valid = malloc((size_t)(n * k));
    for (int64_t r = 0; r < n * k; r++) {
        valid[r] = hm_stream_uniform(&s) < 0.7;
        in[4 * r] = valid[r] ? (float)U(&s, 20, 300) : 0.0f;
        in[4 * r + 1] = valid[r] ? (float)U(&s, -4, 4) : 0.0f;
        in[4 * r + 2] = valid[r] ? (float)U(&s, -PI_D, PI_D) : 0.0f;
        in[4 * r + 3] = valid[r] ? (float)U(&s, 0, 20) : 0.0f;
    }
    hm_p4_sum(sum, in, valid, n, k, 4, 0);
    hm_p4_mass(m, in, valid, n, k, 4);
    double worst = 0, worst_m = 0;
    for (int64_t i = 0; i < n; i++) {
        double t[4] = {0, 0, 0, 0};
        for (int64_t j = 0; j < k; j++) {
            const float *r = in + 4 * (i * k + j);
            if (!valid[i * k + j]) continue;
            double pz = r[0] * sinh((double)r[1]);
            t[0] += r[0] * cos((double)r[2]); t[1] += r[0] * sin((double)r[2]); t[2] += pz;
            t[3] += sqrt((double)r[0] * r[0] + pz * pz + (double)r[3] * r[3]);
        }
        for (int c = 0; c < 4; c++) worst = fmax(worst, fabs(sum[4 * i + c] - t[c]) / (t[3] + 1.0));
        double mm = sqrt(fmax(t[3] * t[3] - t[0] * t[0] - t[1] * t[1] - t[2] * t[2], 0));
        worst_m = fmax(worst_m, fabs(m[i] - mm) / (mm + 1.0));
    }
    CHECK(worst < 3e-7);
    CHECK(worst_m < 1e-6);

    /* accumulate adds a second collection (here MET-like rows, in_f = 2) */
    float met[2 * 9000];
    for (int64_t i = 0; i < n; i++) { met[2 * i] = (float)U(&s, 0, 100); met[2 * i + 1] = (float)U(&s, -3, 3); }
    float *sum2 = malloc(sizeof(float) * n * 4);
    memcpy(sum2, sum, sizeof(float) * n * 4);
    hm_p4_sum(sum2, met, NULL, n, 1, 2, 1);
    double worst_acc = 0;
    for (int64_t i = 0; i < n; i++) {
        double px = sum[4 * i] + met[2 * i] * cos((double)met[2 * i + 1]);
        double pz = sum[4 * i + 2], e = sum[4 * i + 3] + met[2 * i];
        worst_acc = fmax(worst_acc, fmax(fabs(sum2[4 * i] - px), fabs(sum2[4 * i + 2] - pz)) / (e + 1));
        worst_acc = fmax(worst_acc, fabs(sum2[4 * i + 3] - e) / (e + 1));
    }
    CHECK(worst_acc < 3e-7);

    /* two massless back-to-back objects: m = 2E; all masked: zeros */
    float pair[6] = {45.0f, 0.0f, 0.0f, 45.0f, 0.0f, (float)PI_D};
    float mm;
    hm_p4_mass(&mm, pair, NULL, 1, 2, 3);
    CHECK_CLOSE(mm, 90.0, 1e-4, 0);
    uint8_t none[2] = {0, 0};
    float zs[4];
    hm_p4_sum(zs, pair, none, 1, 2, 3, 0);
    CHECK(zs[0] == 0 && zs[1] == 0 && zs[2] == 0 && zs[3] == 0);
    hm_p4_mass(&mm, pair, none, 1, 2, 3);
    CHECK(mm == 0.0f);
    free(in); free(sum); free(sum2); free(m); free(valid);
}

/* ---------------------------------------------------------------- azimuth */

static void test_phi(void) {
    CHECK(hm_wrap_phi1(0.0f) == 0.0f);
    CHECK(hm_wrap_phi1(PI_F) == PI_F);
    CHECK(hm_wrap_phi1(-PI_F) == PI_F);
    CHECK(hm_wrap_phi1(1.0f) == 1.0f);
    CHECK(isnan(hm_wrap_phi1(NAN)));
    CHECK_CLOSE(hm_wrap_phi1(4.0f), 4.0 - 2 * PI_D, 1e-6, 0);
    CHECK_CLOSE(hm_wrap_phi1(-7.0f), -7.0 + 2 * PI_D, 1e-6, 0);

    const int64_t n = 100001;
    float *x = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n), *w2 = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(-100.0 + 200.0 * (double)i / (double)(n - 1));
    hm_wrap_phi(w, x, n, 1);
    hm_wrap_phi(w2, w, n, 1);
    int bad_range = 0, bad_period = 0, not_idem = 0;
    for (int64_t i = 0; i < n; i++) {
        bad_range += !(w[i] > -PI_F && w[i] <= PI_F);
        double k = ((double)x[i] - w[i]) / (2 * PI_D);
        bad_period += fabs(k - nearbyint(k)) > 1e-6;
        not_idem += w2[i] != w[i];
    }
    CHECK(bad_range == 0);
    CHECK(bad_period == 0);
    CHECK(not_idem == 0);

    /* strided in place: only every second element changes */
    float y[6] = {4.0f, 4.0f, -4.0f, -4.0f, 1.0f, 1.0f};
    hm_wrap_phi(y, y, 3, 2);
    CHECK(y[1] == 4.0f && y[3] == -4.0f && y[5] == 1.0f);
    CHECK_CLOSE(y[0], 4.0 - 2 * PI_D, 1e-6, 0);
    CHECK_CLOSE(y[2], -4.0 + 2 * PI_D, 1e-6, 0);

    float a[4] = {3.0f, 0.0f, -3.0f, 0.0f}, b[2] = {-3.0f, 3.0f}, d[2];
    hm_delta_phi(d, a, b, 2, 2, 1); /* a = {3, -3} (stride 2) */
    CHECK_CLOSE(d[0], 6.0 - 2 * PI_D, 1e-6, 0);
    CHECK_CLOSE(d[1], -6.0 + 2 * PI_D, 1e-6, 0);
    free(x); free(w); free(w2);
}

static void test_rotation(void) {
    hm_stream s;
    hm_stream_init(&s, 13, 1);
    const int64_t n = 50, k = 3, f = 4, nc = 4;
    float in[50 * 3 * 4], out[4 * 50 * 3 * 4], back[50 * 3 * 4], angles[4 * 50], neg[50];
    uint8_t valid[50 * 3];
    for (int64_t r = 0; r < n * k; r++) {
        valid[r] = (r % k) < 2 || (r / k) % 2 == 0;
        for (int64_t j = 0; j < f; j++) in[r * f + j] = valid[r] ? (float)U(&s, -3, 3) : 0.0f;
        if (valid[r]) in[r * f] = (float)U(&s, 20, 100);
    }
    for (int64_t i = 0; i < nc * n; i++) angles[i] = (float)U(&s, -PI_D, PI_D);
    hm_phi_rotate_copies(out, in, valid, angles, nc, n, k, f, 2);
    int bad = 0;
    for (int64_t c = 0; c < nc; c++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < k; j++) {
                const float *src = in + (i * k + j) * f, *dst = out + ((c * n + i) * k + j) * f;
                if (!valid[i * k + j]) { for (int64_t q = 0; q < f; q++) bad += dst[q] != 0.0f; continue; }
                bad += dst[0] != src[0] || dst[1] != src[1] || dst[3] != src[3];
                bad += fabs(remainder((double)dst[2] - src[2] - angles[c * n + i], 2 * PI_D)) > 3e-7;
                bad += !(dst[2] > -PI_F && dst[2] <= PI_F);
            }
    CHECK(bad == 0);
    /* rotating copy 1 back by minus its angles recovers the original */
    for (int64_t i = 0; i < n; i++) neg[i] = -angles[n + i];
    hm_phi_rotate_copies(back, out + n * k * f, valid, neg, 1, n, k, f, 2);
    double worst = 0;
    for (int64_t r = 0; r < n * k; r++)
        worst = fmax(worst, fabs(remainder((double)back[r * f + 2] - in[r * f + 2], 2 * PI_D)));
    CHECK(worst < 1e-6);
    /* NULL mask: every row rotated */
    hm_phi_rotate_copies(out, in, NULL, angles, 1, n, k, f, 2);
    CHECK(fabs(remainder((double)out[(1 * k + 2) * f + 2] - in[(1 * k + 2) * f + 2] - angles[1], 2 * PI_D)) < 3e-7);
}

/* ---------------------------------------------------------------- scalings */

static void test_scalings(void) {
    hm_stream s;
    hm_stream_init(&s, 14, 1);
    const int64_t n = 70000, f = 3;
    float *x = malloc(sizeof(float) * n * f), *y = malloc(sizeof(float) * n * f), *z = malloc(sizeof(float) * n * f);
    uint8_t *valid = malloc((size_t)n);
    const float pt_min = 15.0f;

    /* log(1 + pt - pt_min) on column 0 of an [n, 3] array, padding where pt = 0 */
    for (int64_t i = 0; i < n; i++) {
        valid[i] = i % 5 != 0;
        x[f * i] = valid[i] ? (float)(pt_min - 0.99 + 2000.0 * pow(hm_stream_uniform(&s), 3)) : 0.0f;
        x[f * i + 1] = (float)i;
        x[f * i + 2] = -(float)i;
    }
    memcpy(y, x, sizeof(float) * n * f);
    CHECK(hm_scale_log_pt(y, y, n, f, pt_min) == 0);
    memcpy(z, y, sizeof(float) * n * f);
    hm_unscale_log_pt(z, z, valid, n, f, pt_min);
    double worst = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        bad += y[f * i + 1] != (float)i || y[f * i + 2] != -(float)i; /* other columns untouched */
        if (!valid[i]) { bad += y[f * i] != 0.0f || z[f * i] != 0.0f; continue; }
        double e = log1p((double)x[f * i] - pt_min);
        bad += fabs(y[f * i] - e) > 1e-7 + 1e-7 * fabs(e);
        worst = fmax(worst, fabs(z[f * i] - x[f * i]) / x[f * i]);
    }
    CHECK(bad == 0);
    CHECK(worst < 3e-7);
    /* without the mask the padding would come back as pt_min: the mask is needed */
    float pad = 0.0f, pad_y, pad_back;
    hm_scale_log_pt(&pad_y, &pad, 1, 1, pt_min);
    hm_unscale_log_pt(&pad_back, &pad_y, NULL, 1, 1, pt_min);
    CHECK(pad_y == 0.0f && pad_back == pt_min);
    /* no logarithm below pt_min - 1, and NaN input: NaN, counted */
    float badv[4] = {13.0f, 14.0f, NAN, 16.0f}, bady[4];
    CHECK(hm_scale_log_pt(bady, badv, 4, 1, pt_min) == 3);
    CHECK(isnan(bady[0]) && isnan(bady[1]) && isnan(bady[2]) && isfinite(bady[3]));

    /* logit phi: round trip over the whole float range [-float(pi), float(pi)] */
    for (int64_t i = 0; i < n; i++) x[i] = (float)U(&s, -PI_D, PI_D);
    x[0] = PI_F; x[1] = -PI_F; x[2] = 0.0f; x[3] = 1e-30f;
    CHECK(hm_scale_logit_phi(y, x, n, 1) == 0);
    hm_unscale_logit_phi(z, y, NULL, n, 1);
    worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double p = ((double)x[i] + 3.1416015625) / (2 * 3.1416015625), e = log(p / (1 - p));
        bad += fabs(y[i] - e) > 1e-7 * (1 + fabs(e));
        worst = fmax(worst, fabs(z[i] - x[i]));
    }
    CHECK(bad == 0);
    CHECK(worst < 3e-7);
    CHECK(y[2] == 0.0f && z[2] == 0.0f);
    /* the course's PI is above pi: the clip does not act on real angles ... */
    CHECK(fabs(y[0]) < 13.8 && fabs(y[1]) < 13.8);
    /* ... but saturates outside, and NaN is counted */
    float far[3] = {10.0f, -10.0f, NAN}, fy[3];
    CHECK(hm_scale_logit_phi(fy, far, 3, 1) == 1);
    CHECK_CLOSE(fy[0], log((1 - 1e-6) / 1e-6), 1e-5, 0);
    CHECK_CLOSE(fy[1], -log((1 - 1e-6) / 1e-6), 1e-5, 0);
    CHECK(isnan(fy[2]));
    /* masked inverse */
    float yy[2] = {1.0f, 1.0f}, zz[2];
    uint8_t vm[2] = {1, 0};
    hm_unscale_logit_phi(zz, yy, vm, 2, 1);
    CHECK(zz[1] == 0.0f && zz[0] != 0.0f);

    /* log(1 + m) */
    for (int64_t i = 0; i < n; i++) x[i] = i % 7 == 0 ? 0.0f : (float)U(&s, 0, 500);
    CHECK(hm_scale_log1p(y, x, n, 1) == 0);
    hm_unscale_log1p(z, y, NULL, n, 1);
    worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] == 0.0f) { bad += y[i] != 0.0f || z[i] != 0.0f; continue; }
        worst = fmax(worst, fabs(z[i] - x[i]) / x[i]);
    }
    CHECK(bad == 0);
    CHECK(worst < 3e-7);
    float mneg[2] = {-1.0f, -0.5f}, my[2];
    CHECK(hm_scale_log1p(my, mneg, 2, 1) == 1);
    CHECK(isnan(my[0]) && isfinite(my[1]));
    uint8_t v0 = 0;
    float one = 3.0f, out1;
    hm_unscale_log1p(&out1, &one, &v0, 1, 1);
    CHECK(out1 == 0.0f);

    /* E_cm and p_z */
    float xx[4] = {0.1f, 0.05f, 0.3f, 0.3f}, ep[4];
    hm_ecm_pz_from_x1x2(ep, xx, 2, 6500.0f);
    CHECK_CLOSE(ep[0], 6500.0 * (0.1 + 0.05), 1e-3, 1e-6);
    CHECK_CLOSE(ep[1], 6500.0 * (0.1 - 0.05), 1e-3, 1e-6);
    CHECK_CLOSE(ep[2], 3900.0, 1e-3, 1e-6);
    CHECK(ep[3] == 0.0f);
    free(x); free(y); free(z); free(valid);
}

/* ---------------------------------------------------------------- standardisation */

static void test_stats(void) {
    hm_stream s;
    hm_stream_init(&s, 15, 1);
    const int64_t n = 60000, f = 3, rs = 4; /* a trailing label column to skip */
    float *x = malloc(sizeof(float) * n * rs), *y = malloc(sizeof(float) * n * rs), *z = malloc(sizeof(float) * n * rs);
    uint8_t *valid = malloc((size_t)n);
    for (int64_t r = 0; r < n; r++) {
        valid[r] = hm_stream_uniform(&s) < 0.6;
        x[r * rs] = (float)(1000.0 + 5.0 * hm_stream_normal(&s)); /* large offset: tests the two-pass variance */
        x[r * rs + 1] = (float)U(&s, -4, 4);
        x[r * rs + 2] = valid[r] ? (float)hm_stream_normal(&s) : 1e6f; /* garbage in padding must not count */
        x[r * rs + 3] = (float)(r % 2);
    }
    double mean[3], sd[3], m1[3], s1[3];
    CHECK(hm_masked_mean_std(mean, sd, x, valid, n, f, rs) > 0);
    /* straightforward double reference */
    double cnt = 0, ref_m[3] = {0, 0, 0}, ref_s[3] = {0, 0, 0};
    for (int64_t r = 0; r < n; r++) if (valid[r]) { cnt++; for (int j = 0; j < 3; j++) ref_m[j] += x[r * rs + j]; }
    for (int j = 0; j < 3; j++) ref_m[j] /= cnt;
    for (int64_t r = 0; r < n; r++)
        if (valid[r]) for (int j = 0; j < 3; j++) ref_s[j] += (x[r * rs + j] - ref_m[j]) * (x[r * rs + j] - ref_m[j]);
    for (int j = 0; j < 3; j++) {
        ref_s[j] = sqrt(ref_s[j] / cnt); /* ddof = 0, as numpy */
        CHECK_CLOSE(mean[j], ref_m[j], 1e-12, 1e-12);
        CHECK_CLOSE(sd[j], ref_s[j], 1e-12, 1e-11);
    }
    CHECK(hm_masked_mean_std(mean, sd, x, valid, n, f, rs) == (int64_t)cnt);

    /* thread-count independence, bit for bit */
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    hm_masked_mean_std(m1, s1, x, valid, n, f, rs);
    omp_set_num_threads(2);
    hm_masked_mean_std(mean, sd, x, valid, n, f, rs);
    omp_set_num_threads(saved);
    CHECK(memcmp(m1, mean, sizeof mean) == 0);
    CHECK(memcmp(s1, sd, sizeof sd) == 0);
#else
    (void)m1; (void)s1;
#endif

    /* standardise: valid rows to (x - mean)/std, padding to 0, label column copied */
    hm_masked_standardize(y, x, valid, mean, sd, n, f, rs);
    int bad = 0;
    for (int64_t r = 0; r < n; r++) {
        bad += y[r * rs + 3] != x[r * rs + 3];
        for (int j = 0; j < 3; j++) {
            if (!valid[r]) { bad += y[r * rs + j] != 0.0f; continue; }
            double e = (x[r * rs + j] - mean[j]) / sd[j];
            bad += fabs(y[r * rs + j] - e) > 1e-6 * (1 + fabs(e));
        }
    }
    CHECK(bad == 0);
    double m2[3], s2[3];
    hm_masked_mean_std(m2, s2, y, valid, n, f, rs);
    for (int j = 0; j < 3; j++) { CHECK_CLOSE(m2[j], 0.0, 1e-6, 0); CHECK_CLOSE(s2[j], 1.0, 1e-6, 0); }
    /* inverse */
    memcpy(z, y, sizeof(float) * n * rs);
    hm_masked_unstandardize(z, z, valid, mean, sd, n, f, rs);
    double worst = 0;
    for (int64_t r = 0; r < n; r++)
        if (valid[r]) for (int j = 0; j < 3; j++) worst = fmax(worst, fabs(z[r * rs + j] - x[r * rs + j]) / (fabs(x[r * rs + j]) + 1));
    CHECK(worst < 1e-6);

    /* a constant feature: std 0, standardised to 0 (not NaN) and back */
    float cst[8] = {5, 1, 5, 2, 5, 3, 5, 4}, cy[8], cz[8];
    double cm[2], cs[2];
    CHECK(hm_masked_mean_std(cm, cs, cst, NULL, 4, 2, 2) == 4);
    CHECK(cm[0] == 5.0 && cs[0] == 0.0);
    CHECK_CLOSE(cm[1], 2.5, 1e-15, 0);
    CHECK_CLOSE(cs[1], sqrt(1.25), 1e-15, 1e-15);
    hm_masked_standardize(cy, cst, NULL, cm, cs, 4, 2, 2);
    CHECK(cy[0] == 0.0f && cy[6] == 0.0f);
    hm_masked_unstandardize(cz, cy, NULL, cm, cs, 4, 2, 2);
    CHECK(cz[0] == 5.0f && cz[6] == 5.0f);
    /* nothing valid */
    uint8_t nv[4] = {0, 0, 0, 0};
    CHECK(hm_masked_mean_std(cm, cs, cst, nv, 4, 2, 2) == 0);
    CHECK(cm[0] == 0.0 && cs[0] == 0.0);
    CHECK(hm_masked_mean_std(cm, cs, cst, NULL, 0, 2, 2) == 0);
    free(x); free(y); free(z); free(valid);
}

/* ---------------------------------------------------------------- targets and padding */

static void test_ordering(void) {
    /* [3, 2, 4] rows (pt, eta, phi, m) */
    float in[24] = {10, -1, 0.1f, 80,   20, 2, 0.2f, 81,
                    30, 3, 0.3f, 82,    40, -3, 0.4f, 83,
                    50, 1, 0.5f, 84,    60, 1, 0.6f, 85};
    float out[24], nu[18], nu2[18];
    uint8_t sw[3];
    hm_order_pairs_by_eta(out, sw, in, 3, 4, 1);
    CHECK(sw[0] == 1 && sw[1] == 0 && sw[2] == 0);
    CHECK(out[0] == 20 && out[1] == 2 && out[4] == 10 && out[5] == -1);
    CHECK(memcmp(out + 8, in + 8, 16 * sizeof(float)) == 0);
    /* in place gives the same */
    float inpl[24];
    memcpy(inpl, in, sizeof in);
    hm_order_pairs_by_eta(inpl, NULL, inpl, 3, 4, 1);
    CHECK(memcmp(inpl, out, sizeof out) == 0);
    /* a partner array follows the same permutation */
    for (int i = 0; i < 18; i++) nu[i] = (float)i;
    hm_swap_pairs(nu2, nu, sw, 3, 3);
    CHECK(nu2[0] == 3 && nu2[3] == 0 && nu2[6] == 6 && nu2[9] == 9);
    hm_swap_pairs(nu2, nu2, sw, 3, 3);
    CHECK(memcmp(nu2, nu, sizeof nu) == 0);
}

static void test_pad_jets(void) {
    /* 3 events: 0, 3 and 12 other jets; 13 slots = 2 VBS + 11 others */
    const int64_t n = 3, f = 4, slots = 13;
    float lead[3 * 2 * 4];
    for (int i = 0; i < 24; i++) lead[i] = 100.0f + (float)i;
    int64_t off[4] = {0, 0, 3, 15};
    float other[15 * 4];
    for (int i = 0; i < 60; i++) other[i] = 1.0f + (float)i;
    float out[3 * 13 * 5];
    uint8_t valid[3 * 13];
    memset(out, 0xff, sizeof out);
    CHECK(hm_pad_jets(out, valid, lead, other, off, n, 2, f, slots, f + 1) == 1);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t no = off[i + 1] - off[i];
        if (no > 11) no = 11;
        for (int64_t s = 0; s < slots; s++) {
            const float *o = out + (i * slots + s) * 5;
            const float *src = s < 2 ? lead + (i * 2 + s) * f : (s - 2 < no ? other + (off[i] + s - 2) * f : NULL);
            for (int j = 0; j < 4; j++) bad += o[j] != (src ? src[j] : 0.0f);
            bad += o[4] != (s < 2 ? 1.0f : 0.0f);
            bad += valid[i * slots + s] != (src != NULL);
        }
    }
    CHECK(bad == 0);
    /* no label column; a zero-pt object counts as padding in the mask, as pt > 0 does */
    float out4[3 * 13 * 4];
    other[4 * 1] = 0.0f; /* event 1, second other jet */
    CHECK(hm_pad_jets(out4, valid, lead, other, off, n, 2, f, slots, f) == 1);
    CHECK(valid[13 + 2] == 1 && valid[13 + 3] == 0 && valid[13 + 4] == 1 && valid[13 + 5] == 0);
    CHECK(out4[(13 + 4) * 4] == other[8]);
    /* NULL mask is allowed; inconsistent input is refused */
    CHECK(hm_pad_jets(out4, NULL, lead, other, off, n, 2, f, slots, f) == 1);
    int64_t badoff[4] = {0, 5, 3, 15};
    CHECK(hm_pad_jets(out4, valid, lead, other, badoff, n, 2, f, slots, f) == -1);
    CHECK(hm_pad_jets(out4, valid, lead, other, off, n, 2, f, slots, f + 2) == -1);
    CHECK(hm_pad_jets(out4, valid, lead, other, off, n, 14, f, slots, f) == -1);
}

int main(void) {
    test_fourvectors();
    test_sums_and_masses();
    test_phi();
    test_rotation();
    test_scalings();
    test_stats();
    test_ordering();
    test_pad_jets();
    return CHECK_REPORT();
}
