/* Physics and data-preparation kernels: see physics.h for the contracts. */
#include "physics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HM_PHYS_PI 3.14159265358979323846
#define HM_PHYS_TWO_PI 6.28318530717958647692
/* Below this many rows a call stays on one thread (fork/join costs a few us). */
#define HM_PHYS_PAR_MIN 16384

/* ---------------------------------------------------------------- helpers */

/* Wrap in double, round once to float. Values already inside [-float(pi), float(pi)]
 * are left alone (so wrapping is idempotent in float and never perturbs an in-range
 * angle); others are reduced exactly by remainder(). Finally -float(pi), which lies
 * below -pi, becomes +float(pi): the range is (-float(pi), float(pi)]. NaN stays NaN. */
static inline float wrap_to_float(double x) {
    const double fpi = (double)(float)HM_PHYS_PI; /* 3.14159274..., just above pi */
    if (!(x >= -fpi && x <= fpi)) {
        if (isnan(x)) return (float)x;
        x = remainder(x, HM_PHYS_TWO_PI);
    }
    float f = (float)x;
    if (f == -(float)HM_PHYS_PI) f = (float)HM_PHYS_PI;
    return f;
}

/* Row of in_f features -> (pt, eta, phi, m) in double, following the in_f convention. */
static inline void read_ptetaphim(const float *r, int64_t in_f, double *pt, double *eta, double *phi, double *m) {
    *pt = r[0];
    if (in_f >= 3) { *eta = r[1]; *phi = r[2]; *m = in_f >= 4 ? r[3] : 0.0; }
    else { *eta = 0.0; *phi = r[1]; *m = 0.0; }
}

static inline void to_cartesian(double pt, double eta, double phi, double m, double p[4]) {
    p[0] = pt * cos(phi);
    p[1] = pt * sin(phi);
    p[2] = pt * sinh(eta);
    p[3] = sqrt(pt * pt + p[2] * p[2] + m * m);
}

static inline double mass_from(double e, double px, double py, double pz) {
    double m2 = e * e - (px * px + py * py + pz * pz);
    return m2 > 0.0 ? sqrt(m2) : 0.0;
}

/* ---------------------------------------------------------------- four-vectors */

void hm_ptetaphim_to_pxpypze(float *out, const float *in, int64_t n, int64_t in_f) {
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double pt, eta, phi, m, p[4];
        read_ptetaphim(in + i * in_f, in_f, &pt, &eta, &phi, &m);
        to_cartesian(pt, eta, phi, m, p);
        for (int j = 0; j < 4; j++) out[4 * i + j] = (float)p[j];
    }
}

void hm_pxpypze_to_ptetaphim(float *out, const float *in, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        /* float inputs squared in double are exact, so m^2 = E^2 - p^2 carries only the
         * rounding of the inputs themselves */
        double px = in[4 * i], py = in[4 * i + 1], pz = in[4 * i + 2], e = in[4 * i + 3];
        double pt2 = px * px + py * py;
        float *o = out + 4 * i;
        if (!(pt2 > 0.0)) { o[0] = o[1] = o[2] = o[3] = 0.0f; continue; }
        double pt = sqrt(pt2);
        o[0] = (float)pt;
        o[1] = (float)asinh(pz / pt);
        o[2] = wrap_to_float(atan2(py, px));
        o[3] = (float)mass_from(e, px, py, pz);
    }
}

void hm_p4_sum(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t k,
               int64_t in_f, int accumulate) {
    #pragma omp parallel for schedule(static) if (n * k > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double s[4] = {0.0, 0.0, 0.0, 0.0};
        for (int64_t j = 0; j < k; j++) {
            if (valid && !valid[i * k + j]) continue;
            double pt, eta, phi, m, p[4];
            read_ptetaphim(in + (i * k + j) * in_f, in_f, &pt, &eta, &phi, &m);
            to_cartesian(pt, eta, phi, m, p);
            for (int c = 0; c < 4; c++) s[c] += p[c];
        }
        for (int c = 0; c < 4; c++) {
            if (accumulate) s[c] += out[4 * i + c];
            out[4 * i + c] = (float)s[c];
        }
    }
}

void hm_p4_mass(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t k, int64_t in_f) {
    #pragma omp parallel for schedule(static) if (n * k > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double s[4] = {0.0, 0.0, 0.0, 0.0};
        for (int64_t j = 0; j < k; j++) {
            if (valid && !valid[i * k + j]) continue;
            double pt, eta, phi, m, p[4];
            read_ptetaphim(in + (i * k + j) * in_f, in_f, &pt, &eta, &phi, &m);
            to_cartesian(pt, eta, phi, m, p);
            for (int c = 0; c < 4; c++) s[c] += p[c];
        }
        out[i] = (float)mass_from(s[3], s[0], s[1], s[2]);
    }
}

/* ---------------------------------------------------------------- azimuth */

float hm_wrap_phi1(float phi) { return wrap_to_float((double)phi); }

void hm_wrap_phi(float *out, const float *in, int64_t n, int64_t stride) {
    #pragma omp parallel for schedule(static) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i * stride] = wrap_to_float((double)in[i * stride]);
}

void hm_delta_phi(float *out, const float *a, const float *b, int64_t n, int64_t stride_a, int64_t stride_b) {
    #pragma omp parallel for schedule(static) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = wrap_to_float((double)a[i * stride_a] - (double)b[i * stride_b]);
}

void hm_phi_rotate_copies(float *out, const float *in, const uint8_t *valid, const float *angles,
                          int64_t n_copies, int64_t n, int64_t k, int64_t f, int64_t phi_col) {
    int64_t total = n_copies * n, row = k * f;
    #pragma omp parallel for schedule(static) if (total * k > HM_PHYS_PAR_MIN)
    for (int64_t ci = 0; ci < total; ci++) {
        int64_t i = ci % n;
        double angle = angles[ci];
        const float *src = in + i * row;
        float *dst = out + ci * row; /* copy-major: (c * n + i) * row */
        for (int64_t j = 0; j < k; j++) {
            if (valid && !valid[i * k + j]) {
                memset(dst + j * f, 0, (size_t)f * sizeof(float));
                continue;
            }
            memcpy(dst + j * f, src + j * f, (size_t)f * sizeof(float));
            dst[j * f + phi_col] = wrap_to_float((double)src[j * f + phi_col] + angle);
        }
    }
}

/* ---------------------------------------------------------------- scalings */

int64_t hm_scale_log_pt(float *out, const float *in, int64_t n, int64_t stride, float pt_min) {
    int64_t bad = 0;
    #pragma omp parallel for schedule(static) reduction(+:bad) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double x = in[i * stride], y;
        if (x <= 0.0) y = 0.0; /* padding keeps the value the course's zero padding takes */
        else {
            double a = x - (double)pt_min;
            y = a > -1.0 ? log1p(a) : NAN; /* NaN input also lands here and stays NaN */
        }
        float fy = (float)y;
        if (!isfinite(fy)) bad++;
        out[i * stride] = fy;
    }
    return bad;
}

void hm_unscale_log_pt(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t stride, float pt_min) {
    #pragma omp parallel for schedule(static) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (valid && !valid[i]) { out[i * stride] = 0.0f; continue; }
        out[i * stride] = (float)(expm1((double)in[i * stride]) + (double)pt_min);
    }
}

int64_t hm_scale_logit_phi(float *out, const float *in, int64_t n, int64_t stride) {
    const double pi = (double)HM_COURSE_PI, lo = HM_PHI_LOGIT_CLIP, hi = 1.0 - HM_PHI_LOGIT_CLIP;
    int64_t bad = 0;
    #pragma omp parallel for schedule(static) reduction(+:bad) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double p = ((double)in[i * stride] + pi) / (2.0 * pi);
        /* comparisons rather than fmin/fmax, which would turn a NaN into the clip value */
        p = p < lo ? lo : (p > hi ? hi : p);
        float fy = (float)log(p / (1.0 - p)); /* p = 0.5 (phi = 0, padding) gives exactly 0 */
        if (!isfinite(fy)) bad++;
        out[i * stride] = fy;
    }
    return bad;
}

void hm_unscale_logit_phi(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t stride) {
    const double pi = (double)HM_COURSE_PI;
    #pragma omp parallel for schedule(static) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (valid && !valid[i]) { out[i * stride] = 0.0f; continue; }
        double s = 1.0 / (1.0 + exp(-(double)in[i * stride]));
        out[i * stride] = (float)(2.0 * pi * s - pi);
    }
}

int64_t hm_scale_log1p(float *out, const float *in, int64_t n, int64_t stride) {
    int64_t bad = 0;
    #pragma omp parallel for schedule(static) reduction(+:bad) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double x = in[i * stride];
        float fy = (float)(x > -1.0 ? log1p(x) : NAN);
        if (!isfinite(fy)) bad++;
        out[i * stride] = fy;
    }
    return bad;
}

void hm_unscale_log1p(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t stride) {
    #pragma omp parallel for schedule(static) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (valid && !valid[i]) { out[i * stride] = 0.0f; continue; }
        out[i * stride] = (float)expm1((double)in[i * stride]);
    }
}

/* ---------------------------------------------------------------- standardisation */

/* Rows per chunk of the deterministic reduction: a function of n only (never of the
 * thread count), large enough that the partial sums stay small (<= ~4096 chunks). */
static int64_t stats_chunk(int64_t n) {
    int64_t c = 8192, want = (n + 4095) / 4096;
    return want > c ? want : c;
}

int64_t hm_masked_mean_std(double *mean, double *std, const float *x, const uint8_t *valid,
                           int64_t n, int64_t f, int64_t row_stride) {
    int64_t chunk = stats_chunk(n);
    int64_t nch = n > 0 ? (n + chunk - 1) / chunk : 0;
    int64_t w = f + 1; /* per chunk: f sums, then the count */
    double *part = NULL;
    if (nch > 0) {
        part = (double *)calloc((size_t)(nch * w), sizeof(double));
        if (!part) return -1;
    }

    /* pass 1: sums and counts per chunk */
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        double *p = part + c * w;
        int64_t r1 = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (int64_t r = c * chunk; r < r1; r++) {
            if (valid && !valid[r]) continue;
            const float *row = x + r * row_stride;
            for (int64_t j = 0; j < f; j++) p[j] += row[j];
            p[f] += 1.0;
        }
    }
    double count = 0.0;
    for (int64_t j = 0; j < f; j++) mean[j] = 0.0;
    for (int64_t c = 0; c < nch; c++) {
        for (int64_t j = 0; j < f; j++) mean[j] += part[c * w + j];
        count += part[c * w + f];
    }
    if (count == 0.0) {
        for (int64_t j = 0; j < f; j++) mean[j] = std[j] = 0.0;
        free(part);
        return 0;
    }
    for (int64_t j = 0; j < f; j++) mean[j] /= count;

    /* pass 2: squared deviations about the mean (no E[x^2] - E[x]^2 cancellation) */
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        double *p = part + c * w;
        for (int64_t j = 0; j < f; j++) p[j] = 0.0;
        int64_t r1 = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (int64_t r = c * chunk; r < r1; r++) {
            if (valid && !valid[r]) continue;
            const float *row = x + r * row_stride;
            for (int64_t j = 0; j < f; j++) {
                double d = row[j] - mean[j];
                p[j] += d * d;
            }
        }
    }
    for (int64_t j = 0; j < f; j++) {
        double ss = 0.0;
        for (int64_t c = 0; c < nch; c++) ss += part[c * w + j];
        std[j] = sqrt(ss / count);
    }
    free(part);
    return (int64_t)count;
}

static void standardize_rows(float *out, const float *x, const uint8_t *valid, const double *mean,
                             const double *std, int64_t n, int64_t f, int64_t row_stride, int inverse) {
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *src = x + r * row_stride;
        float *dst = out + r * row_stride;
        int ok = !valid || valid[r];
        for (int64_t j = 0; j < f; j++) {
            double sd = std[j] != 0.0 ? std[j] : 1.0;
            double v = src[j];
            dst[j] = ok ? (float)(inverse ? v * sd + mean[j] : (v - mean[j]) / sd) : 0.0f;
        }
        if (dst != src)
            for (int64_t j = f; j < row_stride; j++) dst[j] = src[j];
    }
}

void hm_masked_standardize(float *out, const float *x, const uint8_t *valid, const double *mean,
                           const double *std, int64_t n, int64_t f, int64_t row_stride) {
    standardize_rows(out, x, valid, mean, std, n, f, row_stride, 0);
}

void hm_masked_unstandardize(float *out, const float *y, const uint8_t *valid, const double *mean,
                             const double *std, int64_t n, int64_t f, int64_t row_stride) {
    standardize_rows(out, y, valid, mean, std, n, f, row_stride, 1);
}

/* ---------------------------------------------------------------- targets and padding */

void hm_order_pairs_by_eta(float *out, uint8_t *swapped, const float *in, int64_t n, int64_t f,
                           int64_t eta_col) {
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *a = in + 2 * f * i, *b = a + f;
        int s = b[eta_col] > a[eta_col]; /* strict: ties and NaN keep the order */
        float *o = out + 2 * f * i;
        for (int64_t j = 0; j < f; j++) {
            float va = a[j], vb = b[j]; /* both read before either write: in-place safe */
            o[j] = s ? vb : va;
            o[f + j] = s ? va : vb;
        }
        if (swapped) swapped[i] = (uint8_t)s;
    }
}

void hm_swap_pairs(float *out, const float *in, const uint8_t *swapped, int64_t n, int64_t f) {
    #pragma omp parallel for schedule(static) if (n > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *a = in + 2 * f * i, *b = a + f;
        int s = swapped[i] != 0;
        float *o = out + 2 * f * i;
        for (int64_t j = 0; j < f; j++) {
            float va = a[j], vb = b[j];
            o[j] = s ? vb : va;
            o[f + j] = s ? va : vb;
        }
    }
}

int64_t hm_pad_jets(float *out, uint8_t *valid, const float *lead, const float *other_flat,
                    const int64_t *other_offsets, int64_t n, int64_t n_lead, int64_t f,
                    int64_t n_slots, int64_t out_f) {
    if (n < 0 || n_lead < 0 || f < 1 || n_slots < n_lead || (out_f != f && out_f != f + 1)) return -1;
    if (n > 0 && (!other_offsets || other_offsets[0] < 0)) return -1;
    for (int64_t i = 0; i < n; i++)
        if (other_offsets[i + 1] < other_offsets[i]) return -1;

    int64_t room = n_slots - n_lead, truncated = 0;
    #pragma omp parallel for schedule(static) reduction(+:truncated) if (n * n_slots > HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float *o = out + i * n_slots * out_f;
        uint8_t *v = valid ? valid + i * n_slots : NULL;
        int64_t n_other = other_offsets[i + 1] - other_offsets[i];
        if (n_other > room) { truncated++; n_other = room; }
        for (int64_t s = 0; s < n_slots; s++) {
            float *dst = o + s * out_f;
            const float *src = NULL;
            if (s < n_lead) src = lead + (i * n_lead + s) * f;
            else if (s - n_lead < n_other) src = other_flat + (other_offsets[i] + s - n_lead) * f;
            if (src) memcpy(dst, src, (size_t)f * sizeof(float));
            else memset(dst, 0, (size_t)f * sizeof(float));
            int ok = src && src[0] > 0.0f;
            if (out_f > f) dst[f] = (s < n_lead && src) ? 1.0f : 0.0f;
            if (v) v[s] = (uint8_t)ok;
        }
    }
    return truncated;
}

void hm_ecm_pz_from_x1x2(float *out, const float *x1x2, int64_t n, float beam_energy) {
    #pragma omp parallel for schedule(static) if (n > 4 * HM_PHYS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double x1 = x1x2[2 * i], x2 = x1x2[2 * i + 1], eb = beam_energy;
        out[2 * i] = (float)(eb * (x1 + x2));
        out[2 * i + 1] = (float)(eb * (x1 - x2));
    }
}
