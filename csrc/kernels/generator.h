/*
 * Same-sign WW vector-boson-scattering event generator (teaching model).
 *
 *   p p -> j j W(+/-) W(+/-) -> j j l nu l nu   at sqrt(s) = 13 TeV
 *
 * This is NOT a matrix-element generator. It is a short, fully documented chain of
 * exactly-sampled densities that produces events whose distributions look like a
 * real VBS sample (W mass peak, forward tagging jets with a large rapidity gap and
 * m_jj of hundreds of GeV to TeV, neutrinos of tens to hundreds of GeV) and that
 * conserve four-momentum exactly. Every modelling choice and every default is
 * described in datasets/README.md; the comments here say where each one lives.
 *
 * Determinism: event slot i of a call with `first_event` is global event
 * e = first_event + i, and all of its random numbers (including those of rejected
 * candidates) come from Philox stream HM_STREAM_EVENTS + e of `seed`. An event is
 * therefore a pure function of (seed, e, config): the output is byte-identical for
 * any thread count and any way of splitting the event range into calls.
 *
 * Memory: the caller allocates every output array (sizes below, N = n_events);
 * the generator never allocates.
 */
#ifndef HM_GENERATOR_H
#define HM_GENERATOR_H

#include <stdint.h>

#define HM_WW_MAX_NONVBS 11 /* extra (non-VBS) jets kept per event, and generated at most */

typedef struct {
    /* beams and parton densities */
    double sqrt_s;            /* pp centre-of-mass energy [GeV] (13000) */
    double pdf_a, pdf_b;      /* x ~ x^a (1-x)^b, a > -1, b > -1 (Beta(a+1, b+1) sampled exactly) */
    double sqrt_shat_min;     /* minimum invariant mass left for the hard process [GeV] */
    /* W bosons */
    double w_mass, w_width;   /* Breit-Wigner pole and width [GeV] (80.377, 2.085) */
    double w_bw_cutoff;       /* masses sampled in [m - k*width, m + k*width], k = this (15, as MadGraph) */
    double w_plus_fraction;   /* probability of W+W+ (else W-W-) */
    double electron_fraction; /* probability that a W decays to e nu (else mu nu) */
    double pol_long, pol_left;/* helicity fractions f0, f-; f+ = 1 - f0 - f- */
    /* VBS tagging quarks */
    double vbs_pt_scale;      /* t-channel transverse-momentum scale [GeV] (m_W) */
    /* extra (non-VBS) jets: radiation, also standing in for pile-up */
    double extra_jet_ratio;   /* P(n) ~ ratio^n, n = 0..11 */
    double extra_jet_pt_min;  /* truth threshold [GeV] */
    double extra_jet_pt_power;/* dN/dpt ~ pt^-power above the threshold, power > 1 */
    double extra_jet_eta_flat;/* eta = flat in [-this, this] ... */
    double extra_jet_eta_smear;/*   ... plus a Gaussian of this width (a flat top with soft edges) */
    double jet_mass_fraction; /* mean jet m/pt (Gamma distributed, shape 3) */
    /* detector */
    double jet_resolution_stochastic; /* sigma(pt)/pt = a / sqrt(pt/GeV) (+) c ; a */
    double jet_resolution_constant;   /*                                        c */
    double jet_angle_resolution;      /* Gaussian sigma on jet eta and phi */
    double lep_resolution;            /* sigma(pt)/pt of leptons (angles exact) */
    double met_resolution;            /* Gaussian sigma per MET component [GeV] */
    /* acceptance and selection */
    double jet_pt_min, jet_abs_eta_max; /* 30 GeV, 4.7 */
    double lep_pt_min, lep_abs_eta_max; /* 20 GeV, 2.5 */
    double met_min;                     /* MET cut [GeV]; default 15 so the course scaling log(1 + MET - 15) is defined */
    int64_t max_trials;                 /* give up on an event after this many candidates */
} hm_ww_config;

/* Fill `cfg` with the documented defaults (datasets/README.md). */
void hm_ww_default_config(hm_ww_config *cfg);

/* NULL if `cfg` is usable, else a static message naming the offending field. */
const char *hm_ww_config_error(const hm_ww_config *cfg);

/*
 * Output arrays, all row-major, N = n_events of the call. float32 unless noted.
 * The arrays marked "optional" may be NULL (not written); all others are required.
 */
typedef struct {
    float *vbs_jets;        /* [N,2,4]  reco pt, eta, phi, mass of the two VBS tagging jets, pt-ordered */
    float *nonvbs_jets;     /* [N,11,4] accepted extra jets, pt-ordered, zero-padded */
    int32_t *n_nonvbs;      /* [N]      number of valid rows in nonvbs_jets */
    float *leptons;         /* [N,2,3]  reco pt, eta, phi (massless), pt-ordered */
    int32_t *lepton_pdgid;  /* [N,2]    PDG id in the order of `leptons`: -11/-13 for e+/mu+ (W+W+), +11/+13 for W-W- */
    float *met;             /* [N,2]    reco missing transverse momentum pt, phi */
    float *neutrinos;       /* [N,2,3]  truth pt, eta, phi of the neutrino from W1 and from W2 */
    float *w_bosons;        /* [N,2,4]  truth pt, eta, phi, mass; W1 = the W with the larger truth pt */
    float *vbs_partons;     /* [N,2,4]  truth outgoing VBS quarks pt, eta, phi, mass (= 0), in the
                               order of vbs_jets (parton k is the origin of jet k) */
    float *x1x2;            /* [N,2]    parton momentum fractions x1 (beam along +z), x2 */
    int32_t *trials;        /* [N]      candidates generated until one passed the selection (>= 1) */
    /* optional truth, used by the tests (conservation checks) */
    float *leptons_truth;   /* [N,2,3]  truth charged lepton pt, eta, phi from W1 and from W2 */
    float *extra_jets_truth;/* [N,11,4] all generated extra jets at truth level (accepted or not), zero-padded */
    int32_t *n_extra_truth; /* [N] */
} hm_ww_events;

/*
 * Generate events first_event .. first_event + n_events - 1 into slots 0 .. n_events - 1.
 * Returns 0 on success; 1 if an argument or the config is invalid (nothing written);
 * 2 if some event needed more than cfg->max_trials candidates (its slot is zeroed and
 * trials[i] = 0; all other slots are valid). Parallel over events (OpenMP).
 */
int hm_ww_generate(const hm_ww_events *out, int64_t first_event, int64_t n_events,
                   uint64_t seed, const hm_ww_config *cfg);

#endif
