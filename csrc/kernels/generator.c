/*
 * Same-sign WW VBS teaching generator: see generator.h for the contract and
 * datasets/README.md for the physics model (every density below is described
 * there, with its default parameters and why it was chosen).
 *
 * Structure of one candidate (all in double precision):
 *   1. x1, x2 ~ Beta(a+1, b+1) each (the density x^a (1-x)^b, sampled exactly)
 *   2. charge of the pair, two Breit-Wigner W masses (exact inverse CDF in s)
 *   3. extra jets (truth, lab frame) take their four-momentum out of the incoming
 *      one; what is left, P_hard, must have mass >= sqrt_shat_min
 *   4. in the rest frame H of P_hard: two tagging quarks by a Sudakov
 *      (light-cone) construction with t-channel-like transverse momenta; the WW
 *      system is what remains, so four-momentum is conserved by construction
 *   5. WW -> W W isotropic in the WW rest frame, W -> l nu in each W rest frame
 *      with a helicity mixture (cos theta* sampled exactly), boost all to the lab
 *   6. detector smearing, acceptance and selection; a failed candidate restarts
 *      at step 1 on the same random stream (so the event stays a function of
 *      (seed, event index) only).
 */
#include "generator.h"
#include "rng.h"

#include <math.h>
#include <string.h>

#define HM_PI 3.14159265358979323846
#define HM_TWO_PI 6.28318530717958647692

typedef struct { double e, x, y, z; } v4;

static inline v4 v4_add(v4 a, v4 b) { return (v4){a.e + b.e, a.x + b.x, a.y + b.y, a.z + b.z}; }
static inline v4 v4_sub(v4 a, v4 b) { return (v4){a.e - b.e, a.x - b.x, a.y - b.y, a.z - b.z}; }
static inline double v4_m2(v4 p) { return p.e * p.e - (p.x * p.x + p.y * p.y + p.z * p.z); }
static inline double v4_pt(v4 p) { return hypot(p.x, p.y); }

static inline v4 v4_from_ptetaphim(double pt, double eta, double phi, double m) {
    double px = pt * cos(phi), py = pt * sin(phi), pz = pt * sinh(eta);
    double p2 = pt * pt + pz * pz;
    return (v4){sqrt(p2 + m * m), px, py, pz};
}

/*
 * Boost p out of the rest frame of P (mass M) into the frame in which P has the
 * four-momentum P. Written with gamma = E/M and beta = p/E taken from P itself, and
 * (gamma - 1)/beta^2 rewritten as gamma^2/(gamma + 1): no 1 - beta^2 cancellation
 * for the very boosted forward systems this generator makes.
 */
static inline v4 boost_from_rest(v4 p, v4 P, double M) {
    double gamma = P.e / M;
    double bx = P.x / P.e, by = P.y / P.e, bz = P.z / P.e;
    double bp = bx * p.x + by * p.y + bz * p.z;
    double k = gamma * gamma / (gamma + 1.0) * bp + gamma * p.e;
    return (v4){gamma * (p.e + bp), p.x + k * bx, p.y + k * by, p.z + k * bz};
}

static inline double wrap_phi_d(double phi) {
    if (phi > HM_PI) phi -= HM_TWO_PI;
    else if (phi <= -HM_PI) phi += HM_TWO_PI;
    return phi;
}

/* Store an angle in (-pi, pi] as float: float(pi) rounds up and float(-pi + tiny)
 * may round to -float(pi), which we map to +float(pi) to keep the half-open range
 * in float terms as well (same convention as hm_wrap_phi in physics.c). */
static inline float phi_to_float(double phi) {
    float f = (float)phi;
    if (f == -(float)HM_PI) f = (float)HM_PI;
    return f;
}

/* ------------------------------------------------------------------ sampling */

/* The event's random stream plus the spare member of the last Box-Muller pair
 * (the Gamma sampler alone uses about one normal per call). It is still a pure
 * function of the Philox stream, so determinism is unaffected. */
typedef struct {
    hm_stream ph;
    double spare;
    int has_spare;
} ev_stream;

static inline double unif(ev_stream *s) { return hm_stream_uniform(&s->ph); }
static inline double gauss(ev_stream *s) {
    if (s->has_spare) { s->has_spare = 0; return s->spare; }
    double r = sqrt(-2.0 * log(unif(s))), t = HM_TWO_PI * unif(s);
    s->spare = r * sin(t);
    s->has_spare = 1;
    return r * cos(t);
}

/* Gamma(alpha, 1): Marsaglia & Tsang (2000) squeeze/rejection, exact for alpha >= 1;
 * alpha < 1 through Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha). */
static double sample_gamma(ev_stream *s, double alpha) {
    double boost = 1.0;
    if (alpha < 1.0) {
        boost = pow(unif(s), 1.0 / alpha);
        alpha += 1.0;
    }
    double d = alpha - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = gauss(s), v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = unif(s), x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2) return boost * d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) return boost * d * v;
    }
}

/* x with density x^(alpha-1) (1-x)^(beta-1): the ratio of two Gamma variates. */
static double sample_beta(ev_stream *s, double alpha, double beta) {
    for (;;) {
        double g1 = sample_gamma(s, alpha), g2 = sample_gamma(s, beta);
        double x = g1 / (g1 + g2);
        if (x > 0.0 && x < 1.0) return x; /* underflow guard for tiny alpha; never hit at defaults */
    }
}

/* Relativistic Breit-Wigner in s = m^2, density 1/((s - M^2)^2 + M^2 G^2), truncated to
 * m in [lo, hi]: its CDF is an arctangent, so the inverse CDF is exact. The angles of the
 * window, atan((lo^2 - M^2)/(M G)) and atan((hi^2 - M^2)/(M G)), depend on the config only
 * and are computed once per call (bw_angles). */
static void bw_angles(const hm_ww_config *c, double *tlo, double *thi) {
    double M = c->w_mass, mg = c->w_mass * c->w_width;
    double lo = M - c->w_bw_cutoff * c->w_width, hi = M + c->w_bw_cutoff * c->w_width; /* lo > 0 (config check) */
    *tlo = atan((lo * lo - M * M) / mg);
    *thi = atan((hi * hi - M * M) / mg);
}

static double sample_bw_mass(ev_stream *s, double M, double G, double tlo, double thi) {
    double t = tlo + (thi - tlo) * unif(s);
    double s2 = M * M + M * G * tan(t);
    return sqrt(s2 > 0.0 ? s2 : 0.0);
}

/* Energy fraction z taken by the W from an incoming quark, density ~ (1 + (1-z)^2)/z on
 * [zlo, 1) (the q -> q W_T splitting function of the effective-W approximation):
 * log-uniform proposal 2/z, accepted with probability (1 + (1-z)^2)/2 >= 1/2. */
static double sample_z(ev_stream *s, double zlo) {
    double lz = log(zlo);
    for (;;) {
        double z = exp(lz * unif(s));
        double w = 0.5 * (1.0 + (1.0 - z) * (1.0 - z));
        if (unif(s) < w) return z;
    }
}

/* Transverse momentum of a tagging quark: t = (pt/scale)^2 with density t/(1+t)^4
 * (a beta-prime(2, 2) law: a t-channel propagator 1/(pt^2 + scale^2)^2 times
 * pt^2 / (pt^2 + scale^2)^2, which vanishes at pt -> 0 as W emission does).
 * Exact: t = G1/G2 with G1, G2 ~ Gamma(2) = -log(u u'). */
static double sample_vbs_pt(ev_stream *s, double scale) {
    double g1 = -log(unif(s) * unif(s));
    double g2 = -log(unif(s) * unif(s));
    return scale * sqrt(g1 / g2);
}

/* Jet mass fraction m/pt ~ Gamma(3) scaled to the requested mean. */
static double sample_mass_fraction(ev_stream *s, double mean) {
    return mean / 3.0 * -log(unif(s) * unif(s) * unif(s));
}

/* cos theta* of the charged lepton in the W rest frame, relative to the W direction
 * of flight in the hard frame. Helicity 0: (3/4)(1 - c^2) = density of the median of
 * three uniforms on (-1, 1). Helicity -1 for W+ (lepton emitted backwards): (3/8)(1 - c)^2,
 * inverse CDF c = 1 - 2 u^(1/3); helicity +1 for W+: (3/8)(1 + c)^2. For W- the two
 * transverse shapes swap (the lepton is left-handed instead of right-handed). */
static double sample_cos_theta(ev_stream *s, const hm_ww_config *c, int w_plus) {
    double u = unif(s);
    if (u < c->pol_long) {
        double a = 2.0 * unif(s) - 1.0, b = 2.0 * unif(s) - 1.0, d = 2.0 * unif(s) - 1.0;
        double lo = a < b ? a : b, hi = a < b ? b : a;
        return d < lo ? lo : (d > hi ? hi : d);
    }
    int backward = (u < c->pol_long + c->pol_left) ? w_plus : !w_plus;
    double r = 2.0 * cbrt(unif(s));
    return backward ? 1.0 - r : r - 1.0;
}

/* Relative response 1 + sigma * N(0,1), redrawn while <= 0: an exactly truncated
 * Gaussian (never redrawn at the default resolutions, but kept honest). */
static double sample_response(ev_stream *s, double sigma) {
    for (;;) {
        double r = 1.0 + sigma * gauss(s);
        if (r > 0.0) return r;
    }
}

/* ------------------------------------------------------------------ one event */

typedef struct {
    double x1, x2;
    int w_plus;
    int flavour[2];        /* 11 or 13, per W (index = W a / b as generated) */
    double wm[2];          /* sampled W masses */
    v4 w[2], lep[2], nu[2], parton[2];
    int n_extra;
    double extra_truth[HM_WW_MAX_NONVBS][4]; /* pt, eta, phi, m */
    double jet_reco[2][4];                   /* VBS jets, parton order */
    int n_extra_acc;
    double extra_reco[HM_WW_MAX_NONVBS][4];
    double lep_reco[2][3];                   /* W order */
    double met[2];
} ww_event;

static void decay_w(ev_stream *s, const hm_ww_config *c, v4 W, double m, int w_plus, v4 *lep, v4 *nu) {
    double ct = sample_cos_theta(s, c, w_plus);
    double phi = HM_TWO_PI * unif(s);
    double st = sqrt(fmax(0.0, 1.0 - ct * ct));
    /* helicity axis n = W direction in the hard frame, and any orthonormal e1, e2 */
    double p = sqrt(W.x * W.x + W.y * W.y + W.z * W.z);
    double nx = 0.0, ny = 0.0, nz = 1.0;
    if (p > 0.0) { nx = W.x / p; ny = W.y / p; nz = W.z / p; }
    double e1x, e1y, e1z;
    if (fabs(nz) < 0.9) { e1x = -ny; e1y = nx; e1z = 0.0; }  /* z x n */
    else { e1x = 0.0; e1y = -nz; e1z = ny; }                   /* x x n */
    double l1 = sqrt(e1x * e1x + e1y * e1y + e1z * e1z);
    e1x /= l1; e1y /= l1; e1z /= l1;
    double e2x = ny * e1z - nz * e1y, e2y = nz * e1x - nx * e1z, e2z = nx * e1y - ny * e1x;
    double cp = cos(phi) * st, sp = sin(phi) * st;
    double dx = cp * e1x + sp * e2x + ct * nx;
    double dy = cp * e1y + sp * e2y + ct * ny;
    double dz = cp * e1z + sp * e2z + ct * nz;
    double q = 0.5 * m; /* massless lepton and neutrino */
    v4 l_rest = {q, q * dx, q * dy, q * dz}, n_rest = {q, -q * dx, -q * dy, -q * dz};
    *lep = boost_from_rest(l_rest, W, m);
    *nu = boost_from_rest(n_rest, W, m);
}

static void to_ptetaphim(const v4 *p, double out[4]) {
    double pt = v4_pt(*p);
    out[0] = pt;
    out[1] = pt > 0.0 ? asinh(p->z / pt) : 0.0;
    out[2] = pt > 0.0 ? atan2(p->y, p->x) : 0.0;
    double m2 = v4_m2(*p);
    out[3] = m2 > 0.0 ? sqrt(m2) : 0.0;
}

/* Smear a jet given at truth level by pt, eta, phi and its (particle-level) mass. */
static void smear_jet(ev_stream *s, const hm_ww_config *c, double pt, double eta, double phi, double m,
                      double out[4]) {
    double a = c->jet_resolution_stochastic, k = c->jet_resolution_constant;
    double sigma = sqrt(a * a / pt + k * k);
    double r = sample_response(s, sigma);
    out[0] = pt * r;
    out[1] = eta + c->jet_angle_resolution * gauss(s);
    out[2] = wrap_phi_d(phi + c->jet_angle_resolution * gauss(s));
    out[3] = m * r;
}

static inline int jet_accepted(const hm_ww_config *c, const double j[4]) {
    return j[0] > c->jet_pt_min && fabs(j[1]) < c->jet_abs_eta_max;
}

/* One candidate. Returns 1 if it passed the selection (ev filled), 0 if rejected. */
static int gen_candidate(ev_stream *s, const hm_ww_config *c, double bw_tlo, double bw_thi, ww_event *ev) {
    const double ebeam = 0.5 * c->sqrt_s;
    const double mmin2 = c->sqrt_shat_min * c->sqrt_shat_min;

    /* 1. parton momentum fractions */
    double x1 = sample_beta(s, c->pdf_a + 1.0, c->pdf_b + 1.0);
    double x2 = sample_beta(s, c->pdf_a + 1.0, c->pdf_b + 1.0);
    if (x1 * x2 * c->sqrt_s * c->sqrt_s < mmin2) return 0;
    v4 p_in = {ebeam * (x1 + x2), 0.0, 0.0, ebeam * (x1 - x2)};

    /* 2. charges, flavours and W masses */
    int w_plus = unif(s) < c->w_plus_fraction;
    double m1 = sample_bw_mass(s, c->w_mass, c->w_width, bw_tlo, bw_thi);
    double m2 = sample_bw_mass(s, c->w_mass, c->w_width, bw_tlo, bw_thi);
    int flav0 = unif(s) < c->electron_fraction ? 11 : 13;
    int flav1 = unif(s) < c->electron_fraction ? 11 : 13;

    /* 3. extra jets: truncated geometric multiplicity, power-law pt, flat-top eta */
    int n_extra = 0;
    if (c->extra_jet_ratio > 0.0) {
        double r = c->extra_jet_ratio;
        double tail = 1.0 - pow(r, HM_WW_MAX_NONVBS + 1);
        n_extra = (int)floor(log(1.0 - unif(s) * tail) / log(r));
        if (n_extra > HM_WW_MAX_NONVBS) n_extra = HM_WW_MAX_NONVBS;
        if (n_extra < 0) n_extra = 0;
    }
    v4 k_sum = {0.0, 0.0, 0.0, 0.0};
    for (int j = 0; j < n_extra; j++) {
        double pt = c->extra_jet_pt_min * pow(unif(s), -1.0 / (c->extra_jet_pt_power - 1.0));
        double eta = c->extra_jet_eta_flat * (2.0 * unif(s) - 1.0) + c->extra_jet_eta_smear * gauss(s);
        double phi = HM_TWO_PI * unif(s) - HM_PI;
        double f = sample_mass_fraction(s, c->jet_mass_fraction);
        ev->extra_truth[j][0] = pt; ev->extra_truth[j][1] = eta;
        ev->extra_truth[j][2] = phi; ev->extra_truth[j][3] = pt * f;
        k_sum = v4_add(k_sum, v4_from_ptetaphim(pt, eta, phi, pt * f));
    }

    /* 4. what the hard process has left */
    v4 p_hard = v4_sub(p_in, k_sum);
    double mh2 = v4_m2(p_hard);
    if (!(p_hard.e > 0.0) || mh2 < mmin2) return 0;
    double mh = sqrt(mh2);
    double mww_min = m1 + m2;
    double zlo = mww_min * mww_min / mh2;
    if (zlo >= 1.0) return 0;

    /* 5. tagging quarks in the hard frame H (P_hard = (mh, 0, 0, 0), beams along +-z):
     * quark 1 keeps the light-cone fraction 1 - z1 of p+ = mh, quark 2 the fraction
     * 1 - z2 of p- = mh; their other light-cone component follows from masslessness. */
    double z1 = sample_z(s, zlo), z2 = sample_z(s, zlo);
    double pt1 = sample_vbs_pt(s, c->vbs_pt_scale), ph1 = HM_TWO_PI * unif(s) - HM_PI;
    double pt2 = sample_vbs_pt(s, c->vbs_pt_scale), ph2 = HM_TWO_PI * unif(s) - HM_PI;
    double j1p = (1.0 - z1) * mh, j1m = pt1 * pt1 / j1p;
    double j2m = (1.0 - z2) * mh, j2p = pt2 * pt2 / j2m;
    v4 q1 = {0.5 * (j1p + j1m), pt1 * cos(ph1), pt1 * sin(ph1), 0.5 * (j1p - j1m)};
    v4 q2 = {0.5 * (j2p + j2m), pt2 * cos(ph2), pt2 * sin(ph2), 0.5 * (j2p - j2m)};
    v4 p_ww = v4_sub(v4_sub((v4){mh, 0.0, 0.0, 0.0}, q1), q2);
    double mww2 = v4_m2(p_ww);
    if (!(p_ww.e > 0.0) || mww2 <= mww_min * mww_min) return 0;
    double mww = sqrt(mww2);

    /* 6. WW -> W W, isotropic in the WW rest frame */
    double lam = (mww2 - mww_min * mww_min) * (mww2 - (m1 - m2) * (m1 - m2));
    double q = sqrt(fmax(lam, 0.0)) / (2.0 * mww);
    double ct = 2.0 * unif(s) - 1.0, st = sqrt(fmax(0.0, 1.0 - ct * ct));
    double phw = HM_TWO_PI * unif(s);
    double dx = st * cos(phw), dy = st * sin(phw), dz = ct;
    v4 wa = {sqrt(q * q + m1 * m1), q * dx, q * dy, q * dz};
    v4 wb = {sqrt(q * q + m2 * m2), -q * dx, -q * dy, -q * dz};
    wa = boost_from_rest(wa, p_ww, mww);
    wb = boost_from_rest(wb, p_ww, mww);

    /* 7. decays in the hard frame, then everything to the lab */
    v4 la, na, lb, nb;
    decay_w(s, c, wa, m1, w_plus, &la, &na);
    decay_w(s, c, wb, m2, w_plus, &lb, &nb);
    ev->w[0] = boost_from_rest(wa, p_hard, mh);
    ev->w[1] = boost_from_rest(wb, p_hard, mh);
    ev->lep[0] = boost_from_rest(la, p_hard, mh);
    ev->lep[1] = boost_from_rest(lb, p_hard, mh);
    ev->nu[0] = boost_from_rest(na, p_hard, mh);
    ev->nu[1] = boost_from_rest(nb, p_hard, mh);
    ev->parton[0] = boost_from_rest(q1, p_hard, mh);
    ev->parton[1] = boost_from_rest(q2, p_hard, mh);
    ev->x1 = x1; ev->x2 = x2; ev->w_plus = w_plus;
    ev->flavour[0] = flav0; ev->flavour[1] = flav1;
    ev->wm[0] = m1; ev->wm[1] = m2;
    ev->n_extra = n_extra;

    /* 8. detector: leptons first (cheap rejection), then VBS jets, then extra jets */
    double met_x = 0.0, met_y = 0.0;
    for (int l = 0; l < 2; l++) {
        double t[4];
        to_ptetaphim(&ev->lep[l], t);
        double pt = t[0] * sample_response(s, c->lep_resolution);
        if (!(pt > c->lep_pt_min && fabs(t[1]) < c->lep_abs_eta_max)) return 0;
        ev->lep_reco[l][0] = pt; ev->lep_reco[l][1] = t[1]; ev->lep_reco[l][2] = t[2];
        met_x -= pt * cos(t[2]); met_y -= pt * sin(t[2]);
    }
    for (int j = 0; j < 2; j++) {
        double t[4];
        to_ptetaphim(&ev->parton[j], t);
        double f = sample_mass_fraction(s, c->jet_mass_fraction);
        smear_jet(s, c, t[0], t[1], t[2], f * t[0], ev->jet_reco[j]);
        if (!jet_accepted(c, ev->jet_reco[j])) return 0;
        met_x -= ev->jet_reco[j][0] * cos(ev->jet_reco[j][2]);
        met_y -= ev->jet_reco[j][0] * sin(ev->jet_reco[j][2]);
    }
    int n_acc = 0;
    for (int j = 0; j < n_extra; j++) {
        double r[4];
        smear_jet(s, c, ev->extra_truth[j][0], ev->extra_truth[j][1], ev->extra_truth[j][2],
                  ev->extra_truth[j][3], r);
        /* jets outside the calorimeter are invisible (they fake MET); jets inside it but
         * below the pt threshold still enter MET, as particle-flow candidates do */
        if (fabs(r[1]) < c->jet_abs_eta_max) {
            met_x -= r[0] * cos(r[2]); met_y -= r[0] * sin(r[2]);
        }
        if (jet_accepted(c, r)) {
            memcpy(ev->extra_reco[n_acc], r, sizeof r);
            n_acc++;
        }
    }
    ev->n_extra_acc = n_acc;
    met_x += c->met_resolution * gauss(s);
    met_y += c->met_resolution * gauss(s);
    ev->met[0] = hypot(met_x, met_y);
    ev->met[1] = atan2(met_y, met_x);
    if (ev->met[0] < c->met_min) return 0;
    return 1;
}

/* ------------------------------------------------------------------ output */

static void put_ptetaphim(float *dst, const double src[4], int n) {
    dst[0] = (float)src[0];
    dst[1] = (float)src[1];
    dst[2] = phi_to_float(src[2]);
    if (n > 3) dst[3] = (float)src[3];
}

static void zero_slot(const hm_ww_events *o, int64_t i) {
    memset(o->vbs_jets + 8 * i, 0, 8 * sizeof(float));
    memset(o->nonvbs_jets + 4 * HM_WW_MAX_NONVBS * i, 0, 4 * HM_WW_MAX_NONVBS * sizeof(float));
    o->n_nonvbs[i] = 0;
    memset(o->leptons + 6 * i, 0, 6 * sizeof(float));
    o->lepton_pdgid[2 * i] = o->lepton_pdgid[2 * i + 1] = 0;
    o->met[2 * i] = o->met[2 * i + 1] = 0.0f;
    memset(o->neutrinos + 6 * i, 0, 6 * sizeof(float));
    memset(o->w_bosons + 8 * i, 0, 8 * sizeof(float));
    memset(o->vbs_partons + 8 * i, 0, 8 * sizeof(float));
    o->x1x2[2 * i] = o->x1x2[2 * i + 1] = 0.0f;
    o->trials[i] = 0;
    if (o->leptons_truth) memset(o->leptons_truth + 6 * i, 0, 6 * sizeof(float));
    if (o->extra_jets_truth)
        memset(o->extra_jets_truth + 4 * HM_WW_MAX_NONVBS * i, 0, 4 * HM_WW_MAX_NONVBS * sizeof(float));
    if (o->n_extra_truth) o->n_extra_truth[i] = 0;
}

static void write_event(const hm_ww_events *o, int64_t i, const ww_event *ev, int32_t trials) {
    zero_slot(o, i);
    double t[4];

    /* W1 = larger truth pt; neutrinos and truth leptons follow the W order */
    int w1 = v4_pt(ev->w[1]) > v4_pt(ev->w[0]) ? 1 : 0;
    for (int k = 0; k < 2; k++) {
        int w = k == 0 ? w1 : 1 - w1;
        to_ptetaphim(&ev->w[w], t);
        t[3] = ev->wm[w]; /* the sampled mass, exact (the four-vector agrees to rounding) */
        put_ptetaphim(o->w_bosons + 8 * i + 4 * k, t, 4);
        to_ptetaphim(&ev->nu[w], t);
        put_ptetaphim(o->neutrinos + 6 * i + 3 * k, t, 3);
        if (o->leptons_truth) {
            to_ptetaphim(&ev->lep[w], t);
            put_ptetaphim(o->leptons_truth + 6 * i + 3 * k, t, 3);
        }
    }

    /* reco leptons pt-ordered, with their PDG ids (negative for the positive leptons) */
    int l1 = ev->lep_reco[1][0] > ev->lep_reco[0][0] ? 1 : 0;
    int sign = ev->w_plus ? -1 : 1;
    for (int k = 0; k < 2; k++) {
        int l = k == 0 ? l1 : 1 - l1;
        put_ptetaphim(o->leptons + 6 * i + 3 * k, ev->lep_reco[l], 3);
        o->lepton_pdgid[2 * i + k] = sign * ev->flavour[l];
    }

    /* VBS jets pt-ordered, partons in the same order */
    int j1 = ev->jet_reco[1][0] > ev->jet_reco[0][0] ? 1 : 0;
    for (int k = 0; k < 2; k++) {
        int j = k == 0 ? j1 : 1 - j1;
        put_ptetaphim(o->vbs_jets + 8 * i + 4 * k, ev->jet_reco[j], 4);
        to_ptetaphim(&ev->parton[j], t);
        t[3] = 0.0; /* massless quarks; the computed value is rounding noise */
        put_ptetaphim(o->vbs_partons + 8 * i + 4 * k, t, 4);
    }

    /* accepted extra jets, pt-ordered (insertion sort of at most 11 indices) */
    int idx[HM_WW_MAX_NONVBS];
    for (int a = 0; a < ev->n_extra_acc; a++) {
        int b = a;
        while (b > 0 && ev->extra_reco[idx[b - 1]][0] < ev->extra_reco[a][0]) { idx[b] = idx[b - 1]; b--; }
        idx[b] = a;
    }
    for (int k = 0; k < ev->n_extra_acc; k++)
        put_ptetaphim(o->nonvbs_jets + 4 * HM_WW_MAX_NONVBS * i + 4 * k, ev->extra_reco[idx[k]], 4);
    o->n_nonvbs[i] = ev->n_extra_acc;

    o->met[2 * i] = (float)ev->met[0];
    o->met[2 * i + 1] = phi_to_float(ev->met[1]);
    o->x1x2[2 * i] = (float)ev->x1;
    o->x1x2[2 * i + 1] = (float)ev->x2;
    o->trials[i] = trials;

    if (o->extra_jets_truth)
        for (int k = 0; k < ev->n_extra; k++)
            put_ptetaphim(o->extra_jets_truth + 4 * HM_WW_MAX_NONVBS * i + 4 * k, ev->extra_truth[k], 4);
    if (o->n_extra_truth) o->n_extra_truth[i] = ev->n_extra;
}

/* ------------------------------------------------------------------ API */

void hm_ww_default_config(hm_ww_config *c) {
    memset(c, 0, sizeof *c);
    c->sqrt_s = 13000.0;
    c->pdf_a = -0.5;
    c->pdf_b = 3.0;
    c->sqrt_shat_min = 300.0;
    c->w_mass = 80.377;
    c->w_width = 2.085;
    c->w_bw_cutoff = 15.0;
    c->w_plus_fraction = 2.0 / 3.0;
    c->electron_fraction = 0.5;
    c->pol_long = 0.25;
    c->pol_left = 0.55;
    c->vbs_pt_scale = 80.377;
    c->extra_jet_ratio = 0.5;
    c->extra_jet_pt_min = 25.0;
    c->extra_jet_pt_power = 4.0;
    c->extra_jet_eta_flat = 2.5;
    c->extra_jet_eta_smear = 0.8;
    c->jet_mass_fraction = 0.1;
    c->jet_resolution_stochastic = 1.0;
    c->jet_resolution_constant = 0.05;
    c->jet_angle_resolution = 0.02;
    c->lep_resolution = 0.02;
    c->met_resolution = 20.0;
    c->jet_pt_min = 30.0;
    c->jet_abs_eta_max = 4.7;
    c->lep_pt_min = 20.0;
    c->lep_abs_eta_max = 2.5;
    c->met_min = 15.0; /* so the course's log(1 + MET - 15) is always defined (datasets/README.md) */
    c->max_trials = 100000;
}

/* Comparisons are written as !(x > y) so that NaN fields are rejected too. */
const char *hm_ww_config_error(const hm_ww_config *c) {
    if (!c) return "config is NULL";
    if (!(c->sqrt_s > 0.0) || isinf(c->sqrt_s)) return "sqrt_s must be positive and finite";
    if (!(c->pdf_a > -1.0) || isinf(c->pdf_a)) return "pdf_a must be > -1 and finite";
    if (!(c->pdf_b > -1.0) || isinf(c->pdf_b)) return "pdf_b must be > -1 and finite";
    if (!(c->sqrt_shat_min >= 0.0) || !(c->sqrt_shat_min < c->sqrt_s)) return "sqrt_shat_min must be in [0, sqrt_s)";
    if (!(c->w_mass > 0.0) || isinf(c->w_mass)) return "w_mass must be positive and finite";
    if (!(c->w_width > 0.0) || isinf(c->w_width)) return "w_width must be positive and finite";
    if (!(c->w_bw_cutoff > 0.0) || !(c->w_bw_cutoff * c->w_width < c->w_mass))
        return "w_bw_cutoff must be positive with w_bw_cutoff * w_width < w_mass";
    if (!(c->w_plus_fraction >= 0.0 && c->w_plus_fraction <= 1.0)) return "w_plus_fraction must be in [0, 1]";
    if (!(c->electron_fraction >= 0.0 && c->electron_fraction <= 1.0)) return "electron_fraction must be in [0, 1]";
    if (!(c->pol_long >= 0.0) || !(c->pol_left >= 0.0) || !(c->pol_long + c->pol_left <= 1.0))
        return "pol_long and pol_left must be >= 0 with pol_long + pol_left <= 1";
    if (!(c->vbs_pt_scale > 0.0) || isinf(c->vbs_pt_scale)) return "vbs_pt_scale must be positive and finite";
    if (!(c->extra_jet_ratio >= 0.0 && c->extra_jet_ratio < 1.0)) return "extra_jet_ratio must be in [0, 1)";
    if (!(c->extra_jet_pt_min > 0.0) || isinf(c->extra_jet_pt_min)) return "extra_jet_pt_min must be positive and finite";
    if (!(c->extra_jet_pt_power > 1.0) || isinf(c->extra_jet_pt_power)) return "extra_jet_pt_power must be > 1 and finite";
    if (!(c->extra_jet_eta_flat >= 0.0) || isinf(c->extra_jet_eta_flat)) return "extra_jet_eta_flat must be >= 0 and finite";
    if (!(c->extra_jet_eta_smear >= 0.0) || isinf(c->extra_jet_eta_smear)) return "extra_jet_eta_smear must be >= 0 and finite";
    if (!(c->jet_mass_fraction >= 0.0) || isinf(c->jet_mass_fraction)) return "jet_mass_fraction must be >= 0 and finite";
    if (!(c->jet_resolution_stochastic >= 0.0) || isinf(c->jet_resolution_stochastic)) return "jet_resolution_stochastic must be >= 0 and finite";
    if (!(c->jet_resolution_constant >= 0.0) || isinf(c->jet_resolution_constant)) return "jet_resolution_constant must be >= 0 and finite";
    if (!(c->jet_angle_resolution >= 0.0) || isinf(c->jet_angle_resolution)) return "jet_angle_resolution must be >= 0 and finite";
    if (!(c->lep_resolution >= 0.0) || isinf(c->lep_resolution)) return "lep_resolution must be >= 0 and finite";
    if (!(c->met_resolution >= 0.0) || isinf(c->met_resolution)) return "met_resolution must be >= 0 and finite";
    if (!(c->jet_pt_min >= 0.0) || isinf(c->jet_pt_min)) return "jet_pt_min must be >= 0 and finite";
    if (!(c->jet_abs_eta_max > 0.0)) return "jet_abs_eta_max must be positive";
    if (!(c->lep_pt_min >= 0.0) || isinf(c->lep_pt_min)) return "lep_pt_min must be >= 0 and finite";
    if (!(c->lep_abs_eta_max > 0.0)) return "lep_abs_eta_max must be positive";
    if (!(c->met_min >= 0.0) || isinf(c->met_min)) return "met_min must be >= 0 and finite";
    if (c->max_trials < 1 || c->max_trials > INT32_MAX) return "max_trials must be in [1, 2^31 - 1]";
    return NULL;
}

int hm_ww_generate(const hm_ww_events *out, int64_t first_event, int64_t n_events,
                   uint64_t seed, const hm_ww_config *cfg) {
    if (!out || !cfg || n_events < 0 || first_event < 0) return 1;
    if (hm_ww_config_error(cfg)) return 1;
    if (n_events == 0) return 0;
    if (!out->vbs_jets || !out->nonvbs_jets || !out->n_nonvbs || !out->leptons || !out->lepton_pdgid ||
        !out->met || !out->neutrinos || !out->w_bosons || !out->vbs_partons || !out->x1x2 || !out->trials)
        return 1;

    int failed = 0;
    const int64_t max_trials = cfg->max_trials;
    double bw_tlo, bw_thi;
    bw_angles(cfg, &bw_tlo, &bw_thi);
    /* Dynamic schedule: events cost a variable number of candidates, and slot i is
     * fixed whatever thread fills it, so load balancing cannot change the output. */
    #pragma omp parallel for schedule(dynamic, 64) reduction(|:failed) if (n_events > 64)
    for (int64_t i = 0; i < n_events; i++) {
        ev_stream s;
        hm_stream_init(&s.ph, seed, HM_STREAM_EVENTS + (uint64_t)(first_event + i));
        s.has_spare = 0;
        ww_event ev;
        int64_t t = 0;
        int ok = 0;
        while (t < max_trials) {
            t++;
            if (gen_candidate(&s, cfg, bw_tlo, bw_thi, &ev)) { ok = 1; break; }
        }
        if (ok) write_event(out, i, &ev, (int32_t)t);
        else { zero_slot(out, i); failed = 1; }
    }
    return failed ? 2 : 0;
}
