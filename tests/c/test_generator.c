/* Tests of the same-sign WW teaching generator (csrc/kernels/generator.c):
 * exact four-momentum conservation, W -> l nu masses, the W line shape, acceptance
 * and selection, charges, sane VBS kinematics, and bitwise determinism across
 * calls, chunkings and thread counts. */
#include "check.h"
#include "generator.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PI_F 3.14159274f /* float(pi) */
#define NX HM_WW_MAX_NONVBS

typedef struct {
    int64_t n;
    hm_ww_events ev;
} buffers;

static void alloc_buffers(buffers *b, int64_t n, int with_truth) {
    b->n = n;
    hm_ww_events *e = &b->ev;
    memset(e, 0, sizeof *e);
    e->vbs_jets = calloc((size_t)n * 8, sizeof(float));
    e->nonvbs_jets = calloc((size_t)n * NX * 4, sizeof(float));
    e->n_nonvbs = calloc((size_t)n, sizeof(int32_t));
    e->leptons = calloc((size_t)n * 6, sizeof(float));
    e->lepton_pdgid = calloc((size_t)n * 2, sizeof(int32_t));
    e->met = calloc((size_t)n * 2, sizeof(float));
    e->neutrinos = calloc((size_t)n * 6, sizeof(float));
    e->w_bosons = calloc((size_t)n * 8, sizeof(float));
    e->vbs_partons = calloc((size_t)n * 8, sizeof(float));
    e->x1x2 = calloc((size_t)n * 2, sizeof(float));
    e->trials = calloc((size_t)n, sizeof(int32_t));
    if (with_truth) {
        e->leptons_truth = calloc((size_t)n * 6, sizeof(float));
        e->extra_jets_truth = calloc((size_t)n * NX * 4, sizeof(float));
        e->n_extra_truth = calloc((size_t)n, sizeof(int32_t));
    }
}

static void free_buffers(buffers *b) {
    hm_ww_events *e = &b->ev;
    free(e->vbs_jets); free(e->nonvbs_jets); free(e->n_nonvbs); free(e->leptons); free(e->lepton_pdgid);
    free(e->met); free(e->neutrinos); free(e->w_bosons); free(e->vbs_partons); free(e->x1x2); free(e->trials);
    free(e->leptons_truth); free(e->extra_jets_truth); free(e->n_extra_truth);
}

/* Byte comparison of every output array of events [0, n) of a and [off, off + n) of b. */
static int same_bytes(const buffers *a, const buffers *b, int64_t off, int64_t n) {
    const hm_ww_events *x = &a->ev, *y = &b->ev;
#define SAME(field, per) (memcmp(x->field, y->field + (per) * off, (size_t)((per) * n) * sizeof(*x->field)) == 0)
    int ok = SAME(vbs_jets, 8) && SAME(nonvbs_jets, NX * 4) && SAME(n_nonvbs, 1) && SAME(leptons, 6) &&
             SAME(lepton_pdgid, 2) && SAME(met, 2) && SAME(neutrinos, 6) && SAME(w_bosons, 8) &&
             SAME(vbs_partons, 8) && SAME(x1x2, 2) && SAME(trials, 1);
    if (x->leptons_truth && y->leptons_truth)
        ok = ok && SAME(leptons_truth, 6) && SAME(extra_jets_truth, NX * 4) && SAME(n_extra_truth, 1);
#undef SAME
    return ok;
}

/* (pt, eta, phi, m) -> (E, px, py, pz) in double */
static void p4(const float *r, double m, double out[4]) {
    double pt = r[0], eta = r[1], phi = r[2];
    out[1] = pt * cos(phi); out[2] = pt * sin(phi); out[3] = pt * sinh(eta);
    out[0] = sqrt(pt * pt + out[3] * out[3] + m * m);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double *v, int64_t n, double q) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[(int64_t)(q * (double)(n - 1))];
}

static int phi_ok(float phi) { return phi > -PI_F && phi <= PI_F; }

static void test_config(void) {
    hm_ww_config c;
    hm_ww_default_config(&c);
    CHECK(hm_ww_config_error(&c) == NULL);
    CHECK_CLOSE(c.sqrt_s, 13000.0, 0, 0);
    CHECK_CLOSE(c.w_mass, 80.377, 0, 0);
    CHECK_CLOSE(c.w_width, 2.085, 0, 0);
    CHECK_CLOSE(c.jet_pt_min, 30.0, 0, 0);
    CHECK_CLOSE(c.lep_abs_eta_max, 2.5, 0, 0);

    hm_ww_config bad = c; bad.w_width = NAN;
    CHECK(hm_ww_config_error(&bad) != NULL);
    bad = c; bad.pol_long = 0.7; bad.pol_left = 0.5;
    CHECK(hm_ww_config_error(&bad) != NULL);
    bad = c; bad.pdf_a = -1.0;
    CHECK(hm_ww_config_error(&bad) != NULL);
    bad = c; bad.extra_jet_ratio = 1.0;
    CHECK(hm_ww_config_error(&bad) != NULL);
    bad = c; bad.w_bw_cutoff = 40.0; /* window would reach m = 0 */
    CHECK(hm_ww_config_error(&bad) != NULL);
    bad = c; bad.max_trials = 0;
    CHECK(hm_ww_config_error(&bad) != NULL);

    buffers b;
    alloc_buffers(&b, 4, 0);
    bad = c; bad.extra_jet_pt_power = 1.0;
    CHECK(hm_ww_generate(&b.ev, 0, 4, 1, &bad) == 1);
    CHECK(hm_ww_generate(&b.ev, -1, 4, 1, &c) == 1);
    CHECK(hm_ww_generate(&b.ev, 0, 0, 1, &c) == 0);
    float *keep = b.ev.met; b.ev.met = NULL;
    CHECK(hm_ww_generate(&b.ev, 0, 4, 1, &c) == 1);
    b.ev.met = keep;
    free_buffers(&b);
}

static void test_physics_content(void) {
    const int64_t n = 20000;
    hm_ww_config c;
    hm_ww_default_config(&c);
    buffers b;
    alloc_buffers(&b, n, 1);
    CHECK(hm_ww_generate(&b.ev, 0, n, 2024, &c) == 0);
    const hm_ww_events *e = &b.ev;

    double max_cons = 0.0, max_wmass = 0.0, max_wpt = 0.0;
    int64_t bad_acc = 0, bad_order = 0, bad_sign = 0, bad_pad = 0, bad_phi = 0, bad_x = 0, n_plus = 0;
    int64_t in_core = 0, bad_window = 0, bad_trials = 0, match_ok = 0;
    double *mw = malloc(sizeof(double) * 2 * n), *mjj = malloc(sizeof(double) * n);
    double *deta = malloc(sizeof(double) * n), *nupt = malloc(sizeof(double) * 2 * n);
    const double lo = c.w_mass - c.w_bw_cutoff * c.w_width, hi = c.w_mass + c.w_bw_cutoff * c.w_width;

    for (int64_t i = 0; i < n; i++) {
        const float *w = e->w_bosons + 8 * i, *q = e->vbs_partons + 8 * i, *j = e->vbs_jets + 8 * i;
        const float *l = e->leptons + 6 * i, *nu = e->neutrinos + 6 * i, *lt = e->leptons_truth + 6 * i;
        const float *xj = e->nonvbs_jets + 4 * NX * i, *xt = e->extra_jets_truth + 4 * NX * i;
        double x1 = e->x1x2[2 * i], x2 = e->x1x2[2 * i + 1];
        if (!(x1 > 0 && x1 < 1 && x2 > 0 && x2 < 1 && sqrt(x1 * x2) * c.sqrt_s >= c.sqrt_shat_min * 0.999999)) bad_x++;
        if (e->trials[i] < 1) bad_trials++;

        /* exact conservation: W1 + W2 + partons + all extra truth jets = incoming partons */
        double tot[4] = {0, 0, 0, 0}, v[4];
        for (int k = 0; k < 2; k++) {
            p4(w + 4 * k, w[4 * k + 3], v); for (int d = 0; d < 4; d++) tot[d] += v[d];
            p4(q + 4 * k, 0.0, v); for (int d = 0; d < 4; d++) tot[d] += v[d];
        }
        for (int k = 0; k < e->n_extra_truth[i]; k++) {
            p4(xt + 4 * k, xt[4 * k + 3], v); for (int d = 0; d < 4; d++) tot[d] += v[d];
        }
        double ein = 0.5 * c.sqrt_s * (x1 + x2), pzin = 0.5 * c.sqrt_s * (x1 - x2);
        double res = fmax(fmax(fabs(tot[0] - ein), fabs(tot[3] - pzin)), fmax(fabs(tot[1]), fabs(tot[2]))) / ein;
        if (res > max_cons) max_cons = res;

        /* W -> l nu from the truth leptons and neutrinos: the mass and the pt vector */
        for (int k = 0; k < 2; k++) {
            double a[4], bb[4];
            p4(lt + 3 * k, 0.0, a); p4(nu + 3 * k, 0.0, bb);
            double s0 = a[0] + bb[0], s1 = a[1] + bb[1], s2 = a[2] + bb[2], s3 = a[3] + bb[3];
            double m = sqrt(fmax(s0 * s0 - s1 * s1 - s2 * s2 - s3 * s3, 0.0));
            double dm = fabs(m - w[4 * k + 3]) / w[4 * k + 3];
            if (dm > max_wmass) max_wmass = dm;
            double dpt = fabs(hypot(s1, s2) - w[4 * k]) / (w[4 * k] + 1.0);
            if (dpt > max_wpt) max_wpt = dpt;
            mw[2 * i + k] = w[4 * k + 3];
            if (fabs(w[4 * k + 3] - c.w_mass) < 0.5 * c.w_width) in_core++;
            if (w[4 * k + 3] < lo - 1e-3 || w[4 * k + 3] > hi + 1e-3) bad_window++;
            nupt[2 * i + k] = nu[3 * k];
        }
        if (w[0] < w[4]) bad_order++;

        /* acceptance and ordering of the reco objects */
        for (int k = 0; k < 2; k++) {
            if (!(l[3 * k] > c.lep_pt_min && fabs(l[3 * k + 1]) < c.lep_abs_eta_max)) bad_acc++;
            if (!(j[4 * k] > c.jet_pt_min && fabs(j[4 * k + 1]) < c.jet_abs_eta_max)) bad_acc++;
            if (!phi_ok(l[3 * k + 2]) || !phi_ok(j[4 * k + 2]) || !phi_ok(nu[3 * k + 2]) ||
                !phi_ok(w[4 * k + 2]) || !phi_ok(q[4 * k + 2])) bad_phi++;
        }
        if (!phi_ok(e->met[2 * i + 1]) || !(e->met[2 * i] >= 0)) bad_phi++;
        if (l[0] < l[3] || j[0] < j[4]) bad_order++;
        int nx = e->n_nonvbs[i];
        if (nx < 0 || nx > NX || nx > e->n_extra_truth[i]) bad_pad++;
        for (int k = 0; k < NX; k++) {
            const float *r = xj + 4 * k;
            if (k < nx) {
                if (!(r[0] > c.jet_pt_min && fabs(r[1]) < c.jet_abs_eta_max) || !phi_ok(r[2])) bad_acc++;
                if (k > 0 && r[0] > r[-4]) bad_order++;
            } else if (r[0] != 0 || r[1] != 0 || r[2] != 0 || r[3] != 0) bad_pad++;
        }

        /* same-sign e/mu pair */
        int32_t id0 = e->lepton_pdgid[2 * i], id1 = e->lepton_pdgid[2 * i + 1];
        if ((id0 > 0) != (id1 > 0) || (abs(id0) != 11 && abs(id0) != 13) || (abs(id1) != 11 && abs(id1) != 13)) bad_sign++;
        if (id0 < 0) n_plus++;

        /* parton k is the origin of jet k: closer to it than to the other jet */
        double d00 = hypot(q[1] - j[1], remainder((double)q[2] - j[2], 2 * 3.141592653589793));
        double d01 = hypot(q[1] - j[5], remainder((double)q[2] - j[6], 2 * 3.141592653589793));
        if (d00 <= d01) match_ok++;

        double ja[4], jb[4];
        p4(j, j[3], ja); p4(j + 4, j[7], jb);
        double s0 = ja[0] + jb[0], s1 = ja[1] + jb[1], s2 = ja[2] + jb[2], s3 = ja[3] + jb[3];
        mjj[i] = sqrt(fmax(s0 * s0 - s1 * s1 - s2 * s2 - s3 * s3, 0.0));
        deta[i] = fabs((double)j[1] - j[5]);
    }
    /* every float output is finite */
    int64_t nonfinite = 0;
    const float *arrs[9] = {e->vbs_jets, e->nonvbs_jets, e->leptons, e->met, e->neutrinos, e->w_bosons,
                            e->vbs_partons, e->x1x2, e->leptons_truth};
    const int64_t per[9] = {8, 4 * NX, 6, 2, 6, 8, 8, 2, 6};
    for (int a = 0; a < 9; a++)
        for (int64_t t = 0; t < per[a] * n; t++) nonfinite += !isfinite(arrs[a][t]);
    CHECK(nonfinite == 0);
    /* float storage of (pt, eta, phi) limits the closure to a few 1e-7 of the energy */
    CHECK(max_cons < 3e-6);
    CHECK(max_wmass < 2e-5);
    CHECK(max_wpt < 2e-5);
    CHECK(bad_x == 0);
    CHECK(bad_trials == 0);
    CHECK(bad_acc == 0);
    CHECK(bad_order == 0);
    CHECK(bad_sign == 0);
    CHECK(bad_pad == 0);
    CHECK(bad_phi == 0);
    CHECK(bad_window == 0);
    CHECK((double)match_ok / n > 0.99);
    /* W+W+ : W-W- is 2 : 1 at generation; after the lepton cuts W+W+ is a little lower
     * (~0.63) because left-handed W+ emit their lepton backwards, i.e. softer */
    CHECK(n_plus > 0.55 * n && n_plus < 2.0 / 3.0 * n);
    /* Breit-Wigner: ~51% of the (+-15 width truncated) line within +-width/2 of the pole,
     * median at the pole, quartiles at about +-width/2 */
    CHECK_CLOSE((double)in_core / (2.0 * n), 0.51, 0.03, 0);
    double q25 = quantile(mw, 2 * n, 0.25), q50 = quantile(mw, 2 * n, 0.5), q75 = quantile(mw, 2 * n, 0.75);
    CHECK_CLOSE(q50, c.w_mass, 0.1, 0);
    CHECK_CLOSE(q75 - q25, c.w_width, 0.25, 0);
    /* VBS-like kinematics: large m_jj and rapidity gap, neutrinos of tens of GeV */
    double mjj50 = quantile(mjj, n, 0.5), deta50 = quantile(deta, n, 0.5), nu50 = quantile(nupt, 2 * n, 0.5);
    printf("  median m_jj %.0f GeV, |deta_jj| %.2f, neutrino pt %.1f GeV; W mass quartiles %.2f %.2f %.2f\n",
           mjj50, deta50, nu50, q25, q50, q75);
    CHECK(mjj50 > 400.0 && mjj50 < 3000.0);
    CHECK(deta50 > 3.0);
    CHECK(nu50 > 20.0 && nu50 < 200.0);
    free(mw); free(mjj); free(deta); free(nupt);
    free_buffers(&b);
}

/* Boost p = (E, px, py, pz) into the rest frame of P (all double). */
static void to_rest(const double p[4], const double P[4], double out[4]) {
    double m = sqrt(P[0] * P[0] - P[1] * P[1] - P[2] * P[2] - P[3] * P[3]);
    double g = P[0] / m, b[3] = {-P[1] / P[0], -P[2] / P[0], -P[3] / P[0]};
    double bp = b[0] * p[1] + b[1] * p[2] + b[2] * p[3];
    double k = g * g / (g + 1.0) * bp + g * p[0];
    out[0] = g * (p[0] + bp);
    for (int d = 0; d < 3; d++) out[d + 1] = p[d + 1] + k * b[d];
}

/* cos theta* of the charged lepton: its direction in the W rest frame against the W
 * direction in the hard frame (the rest frame of incoming partons minus extra jets),
 * rebuilt from the stored truth only. */
static double cos_theta_star(const hm_ww_events *e, int64_t i, int k, double sqrt_s) {
    double x1 = e->x1x2[2 * i], x2 = e->x1x2[2 * i + 1];
    double H[4] = {0.5 * sqrt_s * (x1 + x2), 0.0, 0.0, 0.5 * sqrt_s * (x1 - x2)}, v[4];
    for (int j = 0; j < e->n_extra_truth[i]; j++) {
        const float *r = e->extra_jets_truth + 4 * NX * i + 4 * j;
        p4(r, r[3], v);
        for (int d = 0; d < 4; d++) H[d] -= v[d];
    }
    const float *w = e->w_bosons + 8 * i + 4 * k;
    double W[4], L[4], Wh[4], Lh[4], Lw[4];
    p4(w, w[3], W);
    p4(e->leptons_truth + 6 * i + 3 * k, 0.0, L);
    to_rest(W, H, Wh);
    to_rest(L, H, Lh);
    to_rest(Lh, Wh, Lw);
    double nw = sqrt(Wh[1] * Wh[1] + Wh[2] * Wh[2] + Wh[3] * Wh[3]);
    double nl = sqrt(Lw[1] * Lw[1] + Lw[2] * Lw[2] + Lw[3] * Lw[3]);
    return (Wh[1] * Lw[1] + Wh[2] * Lw[2] + Wh[3] * Lw[3]) / (nw * nl);
}

/* Helicity fractions show up in the decay angle: <cos> = -1/2 for a left-handed W+
 * (lepton backwards), +1/2 for a left-handed W-, <cos^2> = 1/5 for longitudinal W.
 * The lepton cuts are opened so that acceptance does not sculpt the distribution. */
static void test_decay_angles(void) {
    const int64_t n = 3000;
    struct { double wplus, pol_long, pol_left, mean, mean2; } cases[4] = {
        {1.0, 0.0, 1.0, -0.5, 0.4}, /* W+ left:  (3/8)(1 - c)^2 */
        {0.0, 0.0, 1.0, 0.5, 0.4},  /* W- left:  (3/8)(1 + c)^2 */
        {1.0, 0.0, 0.0, 0.5, 0.4},  /* W+ right: (3/8)(1 + c)^2 */
        {1.0, 1.0, 0.0, 0.0, 0.2},  /* longitudinal: (3/4)(1 - c^2) */
    };
    buffers b;
    alloc_buffers(&b, n, 1);
    for (int t = 0; t < 4; t++) {
        hm_ww_config c;
        hm_ww_default_config(&c);
        c.w_plus_fraction = cases[t].wplus;
        c.pol_long = cases[t].pol_long;
        c.pol_left = cases[t].pol_left;
        c.lep_pt_min = 0.0;
        c.lep_abs_eta_max = 1e3;
        CHECK(hm_ww_generate(&b.ev, 0, n, 77 + t, &c) == 0);
        double s1 = 0, s2 = 0;
        int out_of_range = 0;
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < 2; k++) {
                double ct = cos_theta_star(&b.ev, i, k, c.sqrt_s);
                out_of_range += !(fabs(ct) <= 1.0 + 1e-6);
                s1 += ct; s2 += ct * ct;
            }
        CHECK(out_of_range == 0);
        /* standard errors ~0.005 (mean) and ~0.004 (mean of squares) with 6000 decays */
        CHECK_CLOSE(s1 / (2.0 * n), cases[t].mean, 0.03, 0);
        CHECK_CLOSE(s2 / (2.0 * n), cases[t].mean2, 0.025, 0);
    }
    free_buffers(&b);
}

static void test_determinism(void) {
    const int64_t n = 3000;
    hm_ww_config c;
    hm_ww_default_config(&c);
    buffers a, b, d;
    alloc_buffers(&a, n, 1);
    alloc_buffers(&b, n, 1);
    alloc_buffers(&d, n, 1);

    CHECK(hm_ww_generate(&a.ev, 0, n, 99, &c) == 0);
    CHECK(hm_ww_generate(&b.ev, 0, n, 99, &c) == 0);
    CHECK(same_bytes(&a, &b, 0, n));

    /* chunked: [0, 1000) [1000, 1001) [1001, 3000) written into the matching slots */
    hm_ww_events part = b.ev;
    memset(b.ev.w_bosons, 0, sizeof(float) * 8 * n);
    int64_t cuts[4] = {0, 1000, 1001, n};
    for (int s = 0; s < 3; s++) {
        int64_t o = cuts[s];
        part.vbs_jets = b.ev.vbs_jets + 8 * o; part.nonvbs_jets = b.ev.nonvbs_jets + NX * 4 * o;
        part.n_nonvbs = b.ev.n_nonvbs + o; part.leptons = b.ev.leptons + 6 * o;
        part.lepton_pdgid = b.ev.lepton_pdgid + 2 * o; part.met = b.ev.met + 2 * o;
        part.neutrinos = b.ev.neutrinos + 6 * o; part.w_bosons = b.ev.w_bosons + 8 * o;
        part.vbs_partons = b.ev.vbs_partons + 8 * o; part.x1x2 = b.ev.x1x2 + 2 * o; part.trials = b.ev.trials + o;
        part.leptons_truth = b.ev.leptons_truth + 6 * o; part.extra_jets_truth = b.ev.extra_jets_truth + NX * 4 * o;
        part.n_extra_truth = b.ev.n_extra_truth + o;
        CHECK(hm_ww_generate(&part, o, cuts[s + 1] - o, 99, &c) == 0);
    }
    CHECK(same_bytes(&a, &b, 0, n));

    /* an event is a function of its global index: events [500, 3000) of the first run
     * are events [0, 2500) of a run starting at 500 */
    CHECK(hm_ww_generate(&d.ev, 500, n - 500, 99, &c) == 0);
    CHECK(same_bytes(&d, &a, 500, n - 500));

    /* thread counts */
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(hm_ww_generate(&b.ev, 0, n, 99, &c) == 0);
    CHECK(same_bytes(&a, &b, 0, n));
    omp_set_num_threads(2);
    CHECK(hm_ww_generate(&b.ev, 0, n, 99, &c) == 0);
    CHECK(same_bytes(&a, &b, 0, n));
    omp_set_num_threads(3);
    CHECK(hm_ww_generate(&b.ev, 0, n, 99, &c) == 0);
    CHECK(same_bytes(&a, &b, 0, n));
    omp_set_num_threads(saved);
#endif
    /* the optional truth arrays do not change the stream */
    buffers plain;
    alloc_buffers(&plain, n, 0);
    CHECK(hm_ww_generate(&plain.ev, 0, n, 99, &c) == 0);
    CHECK(same_bytes(&plain, &a, 0, n));
    free_buffers(&plain);

    /* another seed gives other events */
    CHECK(hm_ww_generate(&b.ev, 0, n, 100, &c) == 0);
    CHECK(!same_bytes(&a, &b, 0, n));

    free_buffers(&a); free_buffers(&b); free_buffers(&d);
}

static void test_impossible_selection(void) {
    hm_ww_config c;
    hm_ww_default_config(&c);
    c.lep_pt_min = 1e5; /* nothing passes */
    c.max_trials = 5;
    buffers b;
    alloc_buffers(&b, 3, 1);
    memset(b.ev.met, 0xff, 6 * sizeof(float));
    CHECK(hm_ww_generate(&b.ev, 0, 3, 1, &c) == 2);
    for (int i = 0; i < 3; i++) {
        CHECK(b.ev.trials[i] == 0);
        CHECK(b.ev.met[2 * i] == 0.0f && b.ev.met[2 * i + 1] == 0.0f);
    }
    free_buffers(&b);

    /* without lepton cuts the charge ratio is the generated 2 : 1 (binomial sigma 0.0067) */
    hm_ww_default_config(&c);
    c.lep_pt_min = 0.0;
    c.lep_abs_eta_max = 1e3;
    alloc_buffers(&b, 5000, 0);
    CHECK(hm_ww_generate(&b.ev, 0, 5000, 5, &c) == 0);
    int plus = 0;
    for (int i = 0; i < 5000; i++) plus += b.ev.lepton_pdgid[2 * i] < 0;
    CHECK_CLOSE(plus / 5000.0, 2.0 / 3.0, 0.025, 0);
    free_buffers(&b);

    /* a MET cut is honoured */
    hm_ww_default_config(&c);
    c.met_min = 40.0;
    alloc_buffers(&b, 500, 0);
    CHECK(hm_ww_generate(&b.ev, 0, 500, 3, &c) == 0);
    int low = 0;
    for (int i = 0; i < 500; i++) low += b.ev.met[2 * i] < 40.0f;
    CHECK(low == 0);
    free_buffers(&b);
}

int main(void) {
    test_config();
    test_physics_content();
    test_decay_angles();
    test_determinism();
    test_impossible_selection();
    return CHECK_REPORT();
}
