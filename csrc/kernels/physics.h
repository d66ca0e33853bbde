/*
 * Physics and data-preparation kernels (forward only: they prepare data, nothing
 * here is differentiated).
 *
 * Conventions shared by every function below:
 * - Objects are rows of F float features, C-contiguous: a collection [N, K, F] is
 *   N*K rows. Kinematic rows are (pt, eta, phi, m) unless a name says (px, py, pz, E).
 * - A `valid` mask is `const uint8_t *` with 1 = real object, 0 = padding (the course's
 *   "padding mask = pt > 0"); NULL means every row is valid. Note this is the opposite
 *   of a PyTorch key_padding_mask (True = ignore); the binding layer converts.
 * - Element-wise scalings take a `stride` (in floats) between consecutive elements,
 *   so a column of an [N, K, F] array is (pointer to column, n = N*K, stride = F);
 *   the optional valid mask is indexed by element (stride 1). out may equal in.
 * - Arithmetic is done in double internally and rounded once to float, so inverse
 *   pairs round-trip to within an ulp or two of float.
 * - Results never depend on the OpenMP thread count.
 */
#ifndef HM_PHYSICS_H
#define HM_PHYSICS_H

#include <stdint.h>

/* The course's value of pi for the phi logit scaling: the float32 3.1416015625, a
 * little above pi, so that (phi + PI) / (2 PI) stays strictly inside (0, 1). */
#define HM_COURSE_PI 3.1416015625f
#define HM_PHI_LOGIT_CLIP 1e-6

/* ---------------------------------------------------------------- four-vectors */

/* out[n,4] = (px, py, pz, E) from in[n, in_f]: in_f = 4 (pt, eta, phi, m), or 5+ (the same,
 * extra columns ignored, e.g. a label), 3 (pt, eta, phi; m = 0: leptons, neutrinos), or
 * 2 (pt, phi; eta = 0, m = 0: MET). E = sqrt(p^2 + m^2). A padded row (all zeros) gives zeros. */
void hm_ptetaphim_to_pxpypze(float *out, const float *in, int64_t n, int64_t in_f);

/* out[n,4] = (pt, eta, phi, m) from in[n,4] = (px, py, pz, E). Rows with pt = 0 (padding,
 * or a particle exactly along the beam, whose eta is infinite) give (0, 0, 0, 0); phi is
 * in (-pi, pi]; m = sqrt(max(E^2 - p^2, 0)) (a spacelike rounding residue gives m = 0). */
void hm_pxpypze_to_ptetaphim(float *out, const float *in, int64_t n);

/* out[n,4] = (px, py, pz, E) summed over the k objects of each row of in[n, k, in_f]
 * (in_f as in hm_ptetaphim_to_pxpypze), skipping objects with valid[n*k] == 0 (valid may
 * be NULL). accumulate != 0 adds to out instead of overwriting it, so collections with
 * different in_f (jets, leptons, MET) can be summed into one total. Sums in double. */
void hm_p4_sum(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t k,
               int64_t in_f, int accumulate);

/* out[n] = invariant mass of the sum of the valid objects of each row of in[n, k, in_f]
 * (e.g. m_jj of the two VBS jets, m(l nu)); max(m^2, 0) as above. */
void hm_p4_mass(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t k, int64_t in_f);

/* ---------------------------------------------------------------- azimuth */

/* The float in (-pi, pi] equal to phi modulo 2 pi. In float terms the range is
 * (-float(pi), float(pi)]: -float(pi) (which is below -pi) is mapped to +float(pi). */
float hm_wrap_phi1(float phi);

/* out[i*stride] = wrap(in[i*stride]), i < n. */
void hm_wrap_phi(float *out, const float *in, int64_t n, int64_t stride);

/* out[i] = wrap(a[i*stride_a] - b[i*stride_b]) (contiguous output). */
void hm_delta_phi(float *out, const float *a, const float *b, int64_t n, int64_t stride_a, int64_t stride_b);

/*
 * Phi-rotation augmentation (rotation of whole events about the beam axis).
 * in[n, k, f] is one collection of n events; out[n_copies, n, k, f] receives n_copies
 * rotated copies (copy-major, i.e. the copies concatenated along the event axis).
 * In copy c, every object of event i has column phi_col replaced by
 * wrap(phi + angles[c*n + i]) and its other features copied; rows with valid == 0
 * (valid[n*k], may be NULL) are written as all zeros. Call it once per collection with
 * the same angles so all objects of an event turn together. angles are drawn by the
 * caller (e.g. hm_rand_uniform in (-pi, pi)); a per-copy global angle is the special
 * case of equal entries. The course keeps the original next to its rotated copies:
 * copy it as it is rather than rotating by 0 (wrap would move a phi of exactly
 * -float(pi) to +float(pi)).
 */
void hm_phi_rotate_copies(float *out, const float *in, const uint8_t *valid, const float *angles,
                          int64_t n_copies, int64_t n, int64_t k, int64_t f, int64_t phi_col);

/* ---------------------------------------------------------------- scalings */

/*
 * y = log(1 + pt - pt_min) (course: leptons and MET pt_min = 15, jets pt_min = 30).
 * Padding: pt <= 0 gives y = 0 (the value the course's zero padding takes after the
 * scaling); the caller must carry the padding mask, computed from pt > 0 *before*
 * scaling, since y = 0 is also the image of pt = pt_min. A real entry with
 * 0 < pt <= pt_min - 1 has no logarithm: it gets NaN. Returns the number of non-finite
 * results (such entries, and NaN/inf inputs), 0 on sound data; the caller must report
 * or drop the rows concerned. (The course's MET scaling log(1 + MET - 15) therefore
 * needs MET > 14 GeV.)
 */
int64_t hm_scale_log_pt(float *out, const float *in, int64_t n, int64_t stride, float pt_min);
/* Inverse: pt = exp(y) - 1 + pt_min for valid entries, 0 where valid == 0 (valid may be NULL). */
void hm_unscale_log_pt(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t stride, float pt_min);

/* y = logit(clip((phi + PI) / (2 PI), 1e-6, 1 - 1e-6)), PI = HM_COURSE_PI. A padded phi = 0
 * gives y = 0. For phi in [-float(pi), float(pi)] the clip never acts, so the inverse is
 * exact there; outside, the clip saturates (|y| <= 13.8155). Returns the number of
 * non-finite results (NaN inputs; 0 on sound data). */
int64_t hm_scale_logit_phi(float *out, const float *in, int64_t n, int64_t stride);
/* Inverse: phi = 2 PI sigmoid(y) - PI (y = 0 gives exactly 0); 0 where valid == 0. */
void hm_unscale_logit_phi(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t stride);

/* y = log(1 + x) (jet mass, energies). x = 0 (padding) gives 0. x <= -1 gets NaN; returns
 * the number of non-finite results, as hm_scale_log_pt does. */
int64_t hm_scale_log1p(float *out, const float *in, int64_t n, int64_t stride);
/* Inverse: x = exp(y) - 1; 0 where valid == 0 (valid may be NULL). */
void hm_unscale_log1p(float *out, const float *in, const uint8_t *valid, int64_t n, int64_t stride);

/* ---------------------------------------------------------------- standardisation */

/*
 * Per-feature mean and standard deviation of x over the valid rows only.
 * x: n rows; row r starts at x[r*row_stride]; the first f floats of a row are its
 * features (row_stride >= f lets a trailing label column be skipped). valid[n] may be NULL.
 * std follows numpy's default std (ddof = 0): sqrt(sum (x - mean)^2 / count).
 * Two passes (mean, then squared deviations about it), accumulated in double over fixed
 * chunks of rows combined serially in chunk order: the result is the same for every
 * thread count. Returns the number of valid rows; if it is 0, mean = 0 and std = 0.
 * Returns -1 if the small partial-sum buffer cannot be allocated (mean/std untouched).
 */
int64_t hm_masked_mean_std(double *mean, double *std, const float *x, const uint8_t *valid,
                           int64_t n, int64_t f, int64_t row_stride);

/* out = (x - mean) / std on the first f features of valid rows; invalid rows get 0 in
 * those features. A feature with std == 0 (constant) is divided by 1 instead, as
 * scikit-learn's StandardScaler does, so it becomes 0 rather than NaN. Columns of a row
 * beyond f are copied when out != x. out may equal x. */
void hm_masked_standardize(float *out, const float *x, const uint8_t *valid, const double *mean,
                           const double *std, int64_t n, int64_t f, int64_t row_stride);
/* Inverse: x = y * std + mean (std == 0 treated as 1), invalid rows 0. */
void hm_masked_unstandardize(float *out, const float *y, const uint8_t *valid, const double *mean,
                             const double *std, int64_t n, int64_t f, int64_t row_stride);

/* ---------------------------------------------------------------- targets and padding */

/*
 * Eta ordering of pairs (the course's "ordered" W and neutrino targets): in[n, 2, f];
 * out gets the two objects of each row with the one of larger eta (column eta_col)
 * first; ties keep the original order. swapped[n] (may be NULL) records 1 where the
 * pair was swapped, so the same permutation can be applied to a partner array with
 * hm_swap_pairs (e.g. the neutrinos in the order of their Ws). out may equal in.
 */
void hm_order_pairs_by_eta(float *out, uint8_t *swapped, const float *in, int64_t n, int64_t f,
                           int64_t eta_col);
/* out[n,2,f] = in with the two objects swapped where swapped[i] != 0. out may equal in. */
void hm_swap_pairs(float *out, const float *in, const uint8_t *swapped, int64_t n, int64_t f);

/*
 * Padded jet array: out[n, n_slots, out_f] from n_lead leading objects per event
 * (lead[n, n_lead, f], the VBS jets) followed by the event's other objects taken from a
 * jagged collection (other_flat[*, f] with event i owning rows
 * other_offsets[i] .. other_offsets[i+1]-1, assumed already ordered). Slots beyond the
 * objects are zero. out_f == f, or f + 1 to append a label column (1 for the n_lead
 * leading slots, 0 for the others and for padding), as the course does for the VBS label.
 * valid[n, n_slots] (may be NULL) = slot filled and pt (column 0) > 0, the course's mask.
 * Returns the number of events that had more than n_slots - n_lead other objects (the
 * excess was dropped), or -1 on inconsistent sizes/offsets (nothing written).
 */
int64_t hm_pad_jets(float *out, uint8_t *valid, const float *lead, const float *other_flat,
                    const int64_t *other_offsets, int64_t n, int64_t n_lead, int64_t f,
                    int64_t n_slots, int64_t out_f);

/* out[n,2] = (E_cm, p_z) = (E_beam (x1 + x2), E_beam (x1 - x2)) from x1x2[n,2]; the
 * course uses E_beam = 6500 GeV. */
void hm_ecm_pz_from_x1x2(float *out, const float *x1x2, int64_t n, float beam_energy);

#endif
