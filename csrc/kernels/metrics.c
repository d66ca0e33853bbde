/* Two-sample statistics for validating generative models: see metrics.h. */
#include "metrics.h"
#include "rng.h"
#include "blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "threads.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif


static inline int64_t imin64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Work (element operations) below which a loop stays on one thread: ~1 ms.
 * Why this high: on a busy laptop a parallel region waits for its slowest
 * thread, and sub-millisecond regions then cost more than they save. */
#define PAR_WORK ((int64_t)1 << 21)
static inline double clip01(double p) { return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p); } /* NaN passes */

/* ========================================================================= */
/* Random helpers (rng.h streams)                                            */
/* ========================================================================= */

/* Uniform integer in [0, r), r >= 1, by Lemire's multiply-shift with rejection
 * (unbiased; the rejection is rare and depends only on the stream). */
static inline uint32_t rand_below(hm_stream *s, uint32_t r) {
    uint64_t prod = (uint64_t)hm_stream_u32(s) * r;
    uint32_t low = (uint32_t)prod;
    if (low < r) {
        uint32_t thresh = (uint32_t)(0u - r) % r;
        while (low < thresh) {
            prod = (uint64_t)hm_stream_u32(s) * r;
            low = (uint32_t)prod;
        }
    }
    return (uint32_t)(prod >> 32);
}

/* Partial Fisher-Yates: afterwards idx[0..s) is a uniformly random s-subset of
 * 0..L-1 and idx[s..L) its complement. A pure function of (seed, stream). */
static void perm_split(uint32_t *idx, int64_t L, int64_t s, uint64_t seed, uint64_t stream) {
    for (int64_t i = 0; i < L; i++) idx[i] = (uint32_t)i;
    hm_stream st;
    hm_stream_init(&st, seed, stream);
    for (int64_t i = 0; i < s; i++) {
        int64_t j = i + (int64_t)rand_below(&st, (uint32_t)(L - i));
        uint32_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

/* The relabelling of permutation p: the smaller sample's size is drawn (fewer
 * random numbers); the members of "a" are then sel[0..n) when sel_is_a, else
 * the complement idx[m..L). */
static inline int sel_is_a(int64_t n, int64_t m) { return n <= m; }

/* Permutation p as a bit set over the pool (bit i = event i is in "a"):
 * Fisher-Yates on stream HM_METRIC_STREAM_PERM + p drawing the smaller sample.
 * idx: scratch [n + m]. */
static void perm_bits(uint64_t *bits, uint32_t *idx, int64_t n, int64_t m, uint64_t seed, int64_t p) {
    int64_t L = n + m, words = (L + 63) / 64, s = sel_is_a(n, m) ? n : m;
    perm_split(idx, L, s, seed, HM_METRIC_STREAM_PERM + (uint64_t)p);
    if (sel_is_a(n, m)) {
        memset(bits, 0, (size_t)words * sizeof(uint64_t));
        for (int64_t i = 0; i < s; i++) bits[idx[i] >> 6] |= (uint64_t)1 << (idx[i] & 63);
    } else {
        memset(bits, 0xFF, (size_t)words * sizeof(uint64_t));
        for (int64_t i = 0; i < s; i++) bits[idx[i] >> 6] &= ~((uint64_t)1 << (idx[i] & 63));
    }
}

/* The members of "a" (out[0..n)) and of "b" (out[n..L)), each in increasing
 * pool order: gathering rows in that order streams through memory instead of
 * jumping at random. */
static void perm_members(uint32_t *out, const uint64_t *bits, int64_t n, int64_t m) {
    int64_t L = n + m, words = (L + 63) / 64, ka = 0, kb = n;
    for (int64_t w = 0; w < words; w++) {
        uint64_t x = bits[w], valid = (w == words - 1 && (L & 63)) ? (((uint64_t)1 << (L & 63)) - 1) : ~(uint64_t)0;
        uint64_t y = ~x & valid;
        x &= valid;
        while (x) { out[ka++] = (uint32_t)(64 * w + __builtin_ctzll(x)); x &= x - 1; }
        while (y) { out[kb++] = (uint32_t)(64 * w + __builtin_ctzll(y)); y &= y - 1; }
    }
}

/* ========================================================================= */
/* Sorting: LSD radix sort of doubles with a uint32 payload                  */
/* ========================================================================= */

/* Order-preserving map double -> uint64 (negative numbers flipped entirely,
 * positive ones get the sign bit set). -0.0 is folded into +0.0 first so that
 * equal values have equal keys. */
static inline uint64_t dkey(double x) {
    x += 0.0;
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}
static inline double dkey_inv(uint64_t k) {
    uint64_t u = (k >> 63) ? (k & 0x7FFFFFFFFFFFFFFFull) : ~k;
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

#define RADIX_BITS 8
#define RADIX_SIZE (1 << RADIX_BITS)
#define RADIX_PASSES 8 /* 8 x 8 = 64 */

/* Sorts (*key, *idx) by key. Why radix: the pooled samples are 10^5 doubles
 * sorted once per column; counting passes over L2-resident data beat a
 * comparison sort several times over, and passes whose digit is constant
 * (common for the exponent bits) are skipped. Why 8-bit digits: 256 buckets x
 * 2 output arrays keep the scattered writes within L1; 11-bit digits (6
 * passes) measured 3x slower here. On return *key / *idx point at the sorted data
 * (either the original buffers or the scratch ones). */
static void radix_sort(uint64_t **key, uint32_t **idx, uint64_t **key2, uint32_t **idx2,
                       int64_t L, uint32_t *hist) {
    memset(hist, 0, sizeof(uint32_t) * RADIX_PASSES * RADIX_SIZE);
    uint64_t *k = *key, *k2 = *key2;
    uint32_t *ix = *idx, *ix2 = *idx2;
    for (int64_t i = 0; i < L; i++) {
        uint64_t v = k[i];
        for (int p = 0; p < RADIX_PASSES; p++) hist[p * RADIX_SIZE + ((v >> (p * RADIX_BITS)) & (RADIX_SIZE - 1))]++;
    }
    for (int p = 0; p < RADIX_PASSES; p++) {
        uint32_t *h = hist + p * RADIX_SIZE;
        int sh = p * RADIX_BITS;
        if (h[(k[0] >> sh) & (RADIX_SIZE - 1)] == (uint32_t)L) continue; /* one bucket: pass is the identity */
        uint32_t sum = 0;
        for (int bkt = 0; bkt < RADIX_SIZE; bkt++) { uint32_t c = h[bkt]; h[bkt] = sum; sum += c; }
        for (int64_t i = 0; i < L; i++) {
            uint64_t v = k[i];
            uint32_t pos = h[(v >> sh) & (RADIX_SIZE - 1)]++;
            k2[pos] = v;
            ix2[pos] = ix[i];
        }
        uint64_t *tk = k; k = k2; k2 = tk;
        uint32_t *ti = ix; ix = ix2; ix2 = ti;
    }
    *key = k; *key2 = k2; *idx = ix; *idx2 = ix2;
}

/* Radix passes over bits 24..63 only of keys whose low 24 bits carry a payload:
 * stable, so equal top-40-bit prefixes keep their input order. The input is
 * split into four contiguous quarters with their own bucket offsets (quarter q
 * goes after quarter q-1 inside every bucket, so the pass stays stable) and the
 * quarters are scattered interleaved: the exponent digits fall into a few
 * buckets, and one counter would serialise on its own increments.
 * hist: 4 x RADIX_SIZE. */
static uint64_t *radix_sort_packed(uint64_t *k, uint64_t *k2, int64_t L, uint32_t *hist) {
    int64_t qn = L / 4;
    for (int p = 3; p < RADIX_PASSES; p++) {
        int sh = p * RADIX_BITS;
        /* the quarters' counts must be taken on the current order */
        uint32_t *h0 = hist, *h1 = h0 + RADIX_SIZE, *h2 = h1 + RADIX_SIZE, *h3 = h2 + RADIX_SIZE;
        memset(hist, 0, sizeof(uint32_t) * 4 * RADIX_SIZE);
        for (int64_t i = 0; i < qn; i++) {
            h0[(k[i] >> sh) & (RADIX_SIZE - 1)]++;
            h1[(k[qn + i] >> sh) & (RADIX_SIZE - 1)]++;
            h2[(k[2 * qn + i] >> sh) & (RADIX_SIZE - 1)]++;
            h3[(k[3 * qn + i] >> sh) & (RADIX_SIZE - 1)]++;
        }
        for (int64_t i = 4 * qn; i < L; i++) h3[(k[i] >> sh) & (RADIX_SIZE - 1)]++;
        unsigned d0 = (unsigned)((k[0] >> sh) & (RADIX_SIZE - 1));
        if (h0[d0] + h1[d0] + h2[d0] + h3[d0] == (uint32_t)L) continue; /* one bucket: identity */
        uint32_t sum = 0;
        for (int bkt = 0; bkt < RADIX_SIZE; bkt++) {
            uint32_t c0 = h0[bkt], c1 = h1[bkt], c2 = h2[bkt], c3 = h3[bkt];
            h0[bkt] = sum; sum += c0;
            h1[bkt] = sum; sum += c1;
            h2[bkt] = sum; sum += c2;
            h3[bkt] = sum; sum += c3;
        }
        for (int64_t i = 0; i < qn; i++) {
            uint64_t v0 = k[i], v1 = k[qn + i], v2 = k[2 * qn + i], v3 = k[3 * qn + i];
            k2[h0[(v0 >> sh) & (RADIX_SIZE - 1)]++] = v0;
            k2[h1[(v1 >> sh) & (RADIX_SIZE - 1)]++] = v1;
            k2[h2[(v2 >> sh) & (RADIX_SIZE - 1)]++] = v2;
            k2[h3[(v3 >> sh) & (RADIX_SIZE - 1)]++] = v3;
        }
        for (int64_t i = 4 * qn; i < L; i++) { /* the last quarter's tail */
            uint64_t v = k[i];
            k2[h3[(v >> sh) & (RADIX_SIZE - 1)]++] = v;
        }
        uint64_t *t = k; k = k2; k2 = t;
    }
    return k;
}

/* Full 64-bit key sort: ord and the sorted values z. */
static void sort_column_full(uint32_t *ord, double *z, const double *vals, int64_t L, uint64_t *keys,
                             uint64_t *keys2, uint32_t *idx, uint32_t *idx2, uint32_t *hist) {
    for (int64_t i = 0; i < L; i++) { keys[i] = dkey(vals[i]); idx[i] = (uint32_t)i; }
    uint64_t *k = keys, *k2 = keys2;
    uint32_t *ix = idx, *ix2 = idx2;
    radix_sort(&k, &ix, &k2, &ix2, L, hist);
    for (int64_t j = 0; j < L; j++) { ord[j] = ix[j]; z[j] = dkey_inv(k[j]); }
}

#define PACK_BITS 24
#define PACK_MASK (((uint64_t)1 << PACK_BITS) - 1)

/* Sorts the pooled column vals [L]: ord[j] = pool index of the j-th smallest
 * value, dz[j] = z[j+1] - z[j] (dz[L-1] = 0). For L <= 2^24 the pool index is
 * packed into the low 24 bits of the order-preserving key: 5 radix passes over
 * one 8-byte array instead of 8 passes over key + index. Values that agree in
 * their top 40 key bits (relative difference < 2^-28) may come out of order;
 * an insertion sort on the true values repairs them in O(L) for real data.
 * Scratch: keys, keys2 [L] uint64, z [L] double, idx, idx2 [L] uint32. */
static void sort_column(uint32_t *ord, double *dz, const double *vals, int64_t L, uint64_t *keys, uint64_t *keys2,
                        double *z, uint32_t *idx, uint32_t *idx2, uint32_t *hist) {
    if (L <= (int64_t)PACK_MASK + 1) {
        for (int64_t i = 0; i < L; i++) keys[i] = (dkey(vals[i]) & ~PACK_MASK) | (uint64_t)i;
        uint64_t *k = radix_sort_packed(keys, keys2, L, hist);
        for (int64_t j = 0; j < L; j++) {
            uint32_t i = (uint32_t)(k[j] & PACK_MASK);
            ord[j] = i;
            z[j] = vals[i] + 0.0;
        }
        int64_t moves = 0, budget = 4 * L;
        for (int64_t j = 1; j < L && moves <= budget; j++) {
            if (!(z[j] < z[j - 1])) continue;
            double zv = z[j];
            uint32_t ov = ord[j];
            int64_t t = j;
            while (t > 0 && zv < z[t - 1]) { z[t] = z[t - 1]; ord[t] = ord[t - 1]; t--; moves++; }
            z[t] = zv;
            ord[t] = ov;
        }
        /* Values from float32 fit in the 40 sorted bits and never need repairs;
         * doubles clustered below 2^-28 could make the repair quadratic: then
         * sort them on all 64 bits instead. */
        if (moves > budget) { sort_column_full(ord, z, vals, L, keys, keys2, idx, idx2, hist); }
    } else {
        sort_column_full(ord, z, vals, L, keys, keys2, idx, idx2, hist);
    }
    for (int64_t j = 0; j + 1 < L; j++) dz[j] = z[j + 1] - z[j];
    dz[L - 1] = 0.0;
}

/* ========================================================================= */
/* Walks over a sorted pooled column                                         */
/* ========================================================================= */

/*
 * The pooled column is described by ord[j] (pool index of the j-th smallest
 * value; < n means sample a) and dz[j] = z[j+1] - z[j] (dz[L-1] = 0). With
 * diff_j = M * #a(<= z_j) - N * #b(<= z_j) = N M (F_a - F_b)(z_j), exact in
 * int64:
 *   W1 = sum_j |diff_j| dz_j / (N M)   (F constant between pooled values;
 *        inside a run of ties dz = 0, so partial counts never contribute)
 *   KS = max |diff_j| over the ends of tie runs (dz_j > 0, and the last point
 *        where diff = 0), i.e. CDFs evaluated after all tied values as scipy.
 */
static void walk_observed(double *w1, int64_t *ksmax, const uint32_t *ord, const double *dz,
                          int64_t L, int64_t n, int64_t m) {
    int64_t diff = 0, kmax = 0;
    double acc = 0.0;
    for (int64_t j = 0; j < L; j++) {
        diff += ((int64_t)ord[j] < n) ? m : -n;
        int64_t ad = diff < 0 ? -diff : diff;
        acc += (double)ad * dz[j];
        if (dz[j] > 0.0 && ad > kmax) kmax = ad;
    }
    *w1 = acc / ((double)n * (double)m);
    *ksmax = kmax;
}

/* Permutations are walked in groups of PGROUP: lab[i] holds, in bit q, whether
 * pool event i is "a" in permutation q of the group (labels transposed, so one
 * load serves the whole group). */
#define PGROUP 16

/* The walk for a group of PGROUP permutations. diff is kept as an integer-valued
 * double (exact while n m < 2^53), updated by +m / -n from a table indexed by 4
 * label bits, so the loops over the permutations of the group vectorise; each
 * permutation's arithmetic is exactly that of walk_observed (same products,
 * same order of additions), so grouping changes no result. */
static void walk_group(double *w1, double *ksmax, const uint32_t *ord, const double *dz,
                       const uint16_t *lab, int64_t L, int64_t n, int64_t m) {
    double tab[16][4], dif[PGROUP], acc[PGROUP], kmx[PGROUP], inc[PGROUP];
    for (int v = 0; v < 16; v++)
        for (int l = 0; l < 4; l++) tab[v][l] = ((v >> l) & 1) ? (double)m : -(double)n;
    for (int q = 0; q < PGROUP; q++) dif[q] = acc[q] = kmx[q] = 0.0;
    for (int64_t j = 0; j < L; j++) {
        unsigned lb = lab[ord[j]];
        double z = dz[j], pz = z > 0.0 ? 1.0 : 0.0; /* pz: end of a run of ties */
        for (int v = 0; v < PGROUP / 4; v++) {
            const double *t = tab[(lb >> (4 * v)) & 15u];
            for (int l = 0; l < 4; l++) inc[4 * v + l] = t[l];
        }
        /* independent lanes: simd changes no arithmetic */
        #pragma omp simd
        for (int q = 0; q < PGROUP; q++) {
            double dd = dif[q] + inc[q];
            double e = fabs(dd), c = e * pz;
            dif[q] = dd;
            acc[q] += e * z;
            kmx[q] = c > kmx[q] ? c : kmx[q];
        }
    }
    double nmd = (double)n * (double)m;
    for (int q = 0; q < PGROUP; q++) { w1[q] = acc[q] / nmd; ksmax[q] = kmx[q]; }
}

/* ========================================================================= */
/* Kolmogorov-Smirnov distributions                                          */
/* ========================================================================= */

/* lgamma(k + 1) - (k log k - k + log(2 pi k) / 2), the remainder of Stirling's
 * formula: its series for k >= 20 (truncation < 1e-20), exact logs below. */
static double stirling_rem(double k) {
    if (k >= 20.0) {
        double r = 1.0 / k, r2 = r * r;
        return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 / 1188))));
    }
    double f = 1.0;
    for (int i = 2; i <= (int)k; i++) f *= i;
    return log(f) - (k * log(k) - k + 0.5 * log(2.0 * M_PI * k));
}

/* Smirnov's one-sided tail P(D_n^+ >= x) by the Birnbaum-Tingey sum
 *   x * sum_{v=0}^{floor(n(1-x))} C(n,v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v).
 * All terms are positive. Each is evaluated in log space after Stirling's
 * formula has cancelled the n log n-sized pieces analytically:
 *   log(x T_v) = v log1p(nx/v) + (n-v) log1p(-nx/(n-v)) - log1p(v/(nx))
 *                + log(n / (2 pi v (n-v))) / 2 + rem(n) - rem(v) - rem(n-v),
 * so the largest quantities left are ~ n x and the relative error is
 * ~ n x eps (scipy evaluates the sum in double-double; both agree to ~1e-13). */
static double smirnov_sf(int64_t n, double x) {
    if (isnan(x)) return NAN;
    if (x <= 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    if (n == 1) return 1.0 - x;
    double nd = (double)n;
    if (-2.0 * nd * x * x < -745.1332191019412) return 0.0; /* below the smallest double */
    if (n > 1000000) {
        /* scipy's choice for huge n: Smirnov's refined asymptotic exp(-(6nx+1)^2/(18n)). */
        double t = 6.0 * nd * x + 1.0;
        return exp(-t * t / (18.0 * nd));
    }
    double nx = nd * x, remn = stirling_rem(nd);
    double sum = exp(nd * log1p(-x)), prev = sum; /* v = 0: (1 - x)^n */
    for (int64_t v = 1; v < n; v++) {
        double vd = (double)v, nv = nd - vd;
        if (nv - nx <= 0.0) break;
        double lt = vd * log1p(nx / vd) + nv * log1p(-nx / nv) - log1p(vd / nx) +
                    0.5 * log(nd / (2.0 * M_PI * vd * nv)) + remn - stirling_rem(vd) - stirling_rem(nv);
        double t = exp(lt);
        sum += t;
        /* Where this is called (n x^2 >= 2.2 or x >= 1/2) the terms rise to one
         * maximum and then fall (checked numerically for n up to 10^6); once
         * they fall below 1e-18 of the sum nothing representable is left. */
        if (t < prev && t < 1e-18 * sum) break;
        prev = t;
    }
    return sum;
}

/* log(n! / n^n) by Stirling's series (n > 140 here: the truncation error is
 * below 1e-30). */
static double log_nfact_over_npow(double n) {
    double r = 1.0 / n, r2 = r * r;
    return 0.5 * log(n) - n + 0.91893853320467274178 +
           r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 / 1188))));
}

/* Scale a square matrix by a power of two when its largest entry leaves
 * [2^-256, 2^256]; the exponent is tracked separately. */
static void mat_rescale(double *A, int mdim, int64_t *expnt) {
    double mx = 0.0;
    for (int i = 0; i < mdim * mdim; i++) { double v = fabs(A[i]); if (v > mx) mx = v; }
    if (mx == 0.0) return;
    int e;
    frexp(mx, &e);
    if (e > 256 || e < -256) {
        for (int i = 0; i < mdim * mdim; i++) A[i] = ldexp(A[i], -e);
        *expnt += e;
    }
}

static void mat_mul(double *C, const double *A, const double *B, int mdim) {
    for (int i = 0; i < mdim; i++) {
        double *c = C + (int64_t)i * mdim;
        for (int j = 0; j < mdim; j++) c[j] = 0.0;
        for (int k = 0; k < mdim; k++) {
            double aik = A[(int64_t)i * mdim + k];
            if (aik == 0.0) continue;
            const double *bk = B + (int64_t)k * mdim;
            for (int j = 0; j < mdim; j++) c[j] += aik * bk[j];
        }
    }
}

/* P(D_n < d) by Durbin's matrix formula as organised by Marsaglia, Tsang & Wang
 * (2003): with n d = k - h (k integer, 0 <= h < 1) and the (2k-1)^2 matrix H,
 * P = n!/n^n (H^n)_{k,k}. H^n by repeated squaring with power-of-two scaling. */
static double dmtw_cdf(int64_t n, double d) {
    if (d >= 1.0) return 1.0;
    double nd = (double)n * d;
    if (nd <= 0.5) return 0.0;
    int k = (int)ceil(nd);
    double h = (double)k - nd;
    int md = 2 * k - 1;
    size_t msz = (size_t)md * (size_t)md;
    double *H = malloc(3 * msz * sizeof(double) + (size_t)(md + 2) * sizeof(double));
    if (!H) return NAN;
    double *R = H + msz, *T = R + msz, *ifact = T + msz; /* ifact[j] = 1/j! */
    ifact[0] = 1.0;
    for (int j = 1; j <= md; j++) ifact[j] = ifact[j - 1] / j;
    for (int i = 0; i < md; i++)
        for (int j = 0; j < md; j++) {
            int t = i - j + 1;
            H[(size_t)i * md + j] = t >= 0 ? ifact[t] : 0.0;
        }
    for (int i = 0; i < md; i++) {
        H[(size_t)i * md] = (1.0 - pow(h, i + 1)) * ifact[i + 1];
        H[(size_t)(md - 1) * md + i] = (1.0 - pow(h, md - i)) * ifact[md - i];
    }
    double corner = 2.0 * h - 1.0;
    H[(size_t)(md - 1) * md] = (1.0 - 2.0 * pow(h, md) + (corner > 0.0 ? pow(corner, md) : 0.0)) * ifact[md];

    for (size_t i = 0; i < msz; i++) R[i] = 0.0;
    for (int i = 0; i < md; i++) R[(size_t)i * md + i] = 1.0;
    int64_t eR = 0, eH = 0, e = n;
    while (e > 0) {
        if (e & 1) {
            mat_mul(T, R, H, md);
            memcpy(R, T, msz * sizeof(double));
            eR += eH;
            mat_rescale(R, md, &eR);
        }
        e >>= 1;
        if (e > 0) {
            mat_mul(T, H, H, md);
            memcpy(H, T, msz * sizeof(double));
            eH *= 2;
            mat_rescale(H, md, &eH);
        }
    }
    double p = R[(size_t)(k - 1) * md + (k - 1)];
    free(H);
    /* multiply by n!/n^n = prod (i/n), keeping p in range */
    double ndbl = (double)n;
    for (int64_t i = 1; i <= n; i++) {
        p = p * ((double)i / ndbl);
        if (p != 0.0 && fabs(p) < 0x1p-256) { p = ldexp(p, 256); eR -= 256; }
    }
    if (eR > 2000) return 1.0;
    if (eR < -2000) return 0.0;
    return clip01(ldexp(p, (int)eR));
}

/* Pelz-Good (1976) expansion of P(D_n <= x) in terms of z = sqrt(n) x,
 * K0 + K1/sqrt(n) + K2/n + K3/n^1.5 with the theta-function forms suited to
 * small z. Returns the CDF or (sf != 0) the survival function, the latter
 * computed as (1 - K0) - K1/sqrt(n) - ... to keep its small values accurate. */
static double pelz_good(int64_t n, double x, int sf) {
    if (x <= 0.0) return sf ? 1.0 : 0.0;
    if (x >= 1.0) return sf ? 0.0 : 1.0;
    const double pi2 = M_PI * M_PI, pi4 = pi2 * pi2, pi6 = pi4 * pi2;
    const double sqrt2pi = sqrt(2.0 * M_PI);
    double z = sqrt((double)n) * x;
    double z2 = z * z, z3 = z2 * z, z4 = z2 * z2, z6 = z4 * z2, z8 = z4 * z4;
    double qlog = -pi2 / 8.0 / z2;
    if (qlog < -708.0) return sf ? 1.0 : 0.0;
    double q = exp(qlog);
    double k1a = -z2, k1b = pi2 / 4.0;
    double k2a = 6.0 * z6 + 2.0 * z4, k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0, k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    double k3d = pi6 * (5.0 - 30.0 * z2) / 64.0, k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    double k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0, k3a = -30.0 * z6 - 90.0 * z8;
    double K[4] = {0.0, 0.0, 0.0, 0.0};
    int maxk = (int)ceil(16.0 * z / M_PI);
    /* sum_k c_k q^((2k-1)^2) by Horner in q^(8k) */
    for (int k = maxk; k >= 1; k--) {
        double mo = 2.0 * k - 1.0, m2 = mo * mo, m4 = m2 * m2, m6 = m4 * m2;
        double qp = pow(q, 8.0 * k);
        K[0] = K[0] * qp + 1.0;
        K[1] = K[1] * qp + (k1a + k1b * m2);
        K[2] = K[2] * qp + (k2a + k2b * m2 + k2c * m4);
        K[3] = K[3] * qp + (k3a + k3b * m2 + k3c * m4 + k3d * m6);
    }
    for (int i = 0; i < 4; i++) K[i] *= q * sqrt2pi;
    K[0] /= z;
    K[1] /= 6.0 * z4;
    K[2] /= 72.0 * z4 * z3;
    K[3] /= 6480.0 * z8 * z2;
    /* the remaining sums over all k of k^2 exp(-pi^2 k^2 / (2 z^2)) */
    double q2 = exp(-pi2 / 2.0 / z2), s2 = 0.0, s3 = 0.0, sq3z = sqrt(3.0) * z;
    for (int k = maxk; k >= 1; k--) {
        double kk = (double)k * k, qk = pow(q2, kk), kpi = M_PI * k;
        s2 += kk * qk;
        s3 += (sq3z + kpi) * (sq3z - kpi) * kk * qk;
    }
    K[2] += s2 * pi2 * sqrt2pi / (-36.0 * z3);
    K[3] += s3 * pi2 * sqrt2pi / (216.0 * z6);
    double rn = sqrt((double)n);
    K[1] /= rn;
    K[2] /= (double)n;
    K[3] /= (double)n * rn;
    if (sf) {
        for (int i = 0; i < 4; i++) K[i] = -K[i];
        K[0] += 1.0;
    }
    return K[0] + K[1] + K[2] + K[3];
}

double hm_metric_kstwo_sf(double x, int64_t n) {
    if (n < 1 || isnan(x)) return NAN;
    if (x >= 1.0) return 0.0;
    if (x <= 0.0) return 1.0;
    double nd = (double)n, t = nd * x;
    if (t <= 1.0) { /* Ruben-Gambino: P(D_n <= x) = n!/n^n (2t - 1)^n for 1/(2n) <= x <= 1/n */
        if (t <= 0.5) return 1.0;
        double cdf;
        if (n <= 140) {
            cdf = 1.0;
            for (int64_t i = 1; i <= n; i++) cdf *= ((double)i / nd) * (2.0 * t - 1.0);
        } else {
            cdf = exp(log_nfact_over_npow(nd) + nd * log(2.0 * t - 1.0));
        }
        return clip01(1.0 - cdf);
    }
    if (t >= nd - 1.0) return clip01(2.0 * pow(1.0 - x, nd)); /* Ruben-Gambino, upper end */
    if (x >= 0.5) return clip01(2.0 * smirnov_sf(n, x));       /* the two one-sided tails are disjoint */
    double nx2 = t * x;
    if (n <= 140) {
        if (nx2 <= 4.0) return clip01(1.0 - dmtw_cdf(n, x));
        return clip01(2.0 * smirnov_sf(n, x));
    }
    if (nx2 >= 370.0) return 0.0;
    if (nx2 >= 2.2) return clip01(2.0 * smirnov_sf(n, x));
    if (n <= 100000 && nd * pow(x, 1.5) <= 1.4) return clip01(1.0 - dmtw_cdf(n, x));
    return clip01(pelz_good(n, x, 1));
}

/* P(D_{n,n} >= h/n) = 2 sum_{k>=1} (-1)^(k-1) C(2n, n - k h) / C(2n, n), with each
 * ratio of consecutive binomials a product of h factors, nested (Horner-like)
 * so that no large binomial is ever formed. */
static double ks_exact_equal(int64_t n, int64_t h) {
    double P = 0.0;
    for (int64_t k = n / h; k >= 0; k--) {
        double r = 1.0;
        for (int64_t j = 0; j < h; j++)
            r = (double)(n - k * h - j) * r / (double)(n + k * h + j + 1);
        P = r * (1.0 - P);
    }
    return 2.0 * P;
}

static inline int64_t floor_div(int64_t a, int64_t b) { /* b > 0 */
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
static inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* P(D_{n,m} >= h / lcm) for n != m: lattice paths (0,0) -> (big, small) with
 * unit steps. q(i, j) = probability that a uniformly random path to (i, j) has
 * left the band |ng i - mg j| < h, which obeys
 *   q(i, j) = (i q(i-1, j) + j q(i, j-1)) / (i + j),  q = 1 outside the band,
 * so 1 - p is never formed (Viehmann 2021). One column of the band is kept. */
static double ks_exact_inside(int64_t big, int64_t small, int64_t g, int64_t h, double *A) {
    int64_t mg = big / g, ng = small / g;
    int64_t minj = 0, maxj = imin64(ceil_div(h, mg), small + 1);
    for (int64_t j = 0; j < maxj; j++) A[j] = 0.0;
    for (int64_t i = 1; i <= big; i++) {
        int64_t lastmin = minj, lastmax = maxj;
        minj = floor_div(ng * i - h, mg) + 1;
        if (minj < 0) minj = 0;
        if (minj > small) minj = small;
        maxj = imin64(ceil_div(ng * i + h, mg), small + 1);
        if (maxj <= minj) return 1.0;
        double val = minj == 0 ? 0.0 : 1.0;
        /* in place: the read index j - lastmin is never below the write index j - minj */
        for (int64_t j = minj; j < maxj; j++) {
            double prev = j < lastmax ? A[j - lastmin] : 1.0;
            val = (prev * (double)i + val * (double)j) / (double)(i + j);
            A[j - minj] = val;
        }
    }
    return A[maxj - minj - 1];
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) { int64_t t = a % b; a = b; b = t; }
    return a;
}

/* p-value for the statistic h / lcm(n, m) (h = max |diff| / gcd from the walks). */
static double ks_pvalue_h(int64_t h, int64_t n, int64_t m) {
    int64_t g = gcd64(n, m), lcm = (n / g) * m;
    double d = (double)h / (double)lcm;
    if (n <= 10000 && m <= 10000) {
        if (h == 0) return 1.0;
        double p;
        if (n == m) {
            p = ks_exact_equal(n, h);
        } else {
            int64_t big = n > m ? n : m, small = n > m ? m : n;
            double *A = malloc((size_t)(small + 2) * sizeof(double));
            p = A ? ks_exact_inside(big, small, g, h, A) : NAN;
            free(A);
        }
        if (p >= 0.0 && p <= 1.0) return p; /* otherwise fall through to asymptotic, as scipy */
    }
    double big = (double)(n > m ? n : m), small = (double)(n > m ? m : n);
    double en = big * small / (big + small);
    return hm_metric_kstwo_sf(d, (int64_t)nearbyint(en)); /* np.round: half to even */
}

double hm_metric_ks_pvalue(double d, int64_t n, int64_t m) {
    if (n < 1 || m < 1 || isnan(d)) return NAN;
    int64_t g = gcd64(n, m), lcm = (n / g) * m;
    double hd = nearbyint(d * (double)lcm);
    if (hd < 0) hd = 0;
    if (hd > (double)lcm) hd = (double)lcm;
    return ks_pvalue_h((int64_t)hd, n, m);
}

/* ========================================================================= */
/* Directions, the column engine and its wrappers                            */
/* ========================================================================= */

int hm_metric_random_directions(double *dirs, int64_t k, int64_t d, uint64_t seed) {
    if (k < 1 || d < 1) return HM_METRIC_EINVAL;
    for (int64_t i = 0; i < k; i++) {
        double *v = dirs + i * d;
        hm_stream st;
        hm_stream_init(&st, seed, HM_METRIC_STREAM_DIR + (uint64_t)i);
        double nrm = 0.0;
        for (int64_t j = 0; j < d; j++) { v[j] = hm_stream_normal(&st); nrm += v[j] * v[j]; }
        nrm = sqrt(nrm);
        for (int64_t j = 0; j < d; j++) v[j] /= nrm;
    }
    return HM_METRIC_OK;
}

#define COL_BLOCK 8 /* columns sorted and kept at a time: 12 bytes x L each */

int hm_metric_columns(double *w1, double *ks, double *ks_p, double *w1_null, double *ks_null,
                      const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                      const double *dirs, int64_t ncol, int64_t n_perm, uint64_t seed) {
    if (n < 1 || m < 1 || d < 1 || ncol < 1 || n_perm < 0) return HM_METRIC_EINVAL;
    if (!dirs && ncol != d) return HM_METRIC_EINVAL;
    int64_t L = n + m;
    if (L > (int64_t)UINT32_MAX) return HM_METRIC_EINVAL;
    if (!w1_null && !ks_null) n_perm = 0;

    if (n_perm && (double)n * (double)m >= 9007199254740992.0) return HM_METRIC_EINVAL; /* exact diffs */

    int nt = hm_max_threads();
    int64_t cb_max = imin64(ncol, COL_BLOCK), ngroups = (n_perm + PGROUP - 1) / PGROUP;
    int status = HM_METRIC_OK;
    uint16_t *lab = n_perm ? malloc((size_t)ngroups * (size_t)L * sizeof(uint16_t)) : NULL;
    uint32_t *ord = malloc((size_t)cb_max * (size_t)L * sizeof(uint32_t));
    double *dz = malloc((size_t)cb_max * (size_t)L * sizeof(double));
    uint64_t *tkeys = malloc((size_t)nt * 2 * (size_t)L * sizeof(uint64_t));
    uint32_t *tidx = malloc((size_t)nt * 2 * (size_t)L * sizeof(uint32_t));
    uint32_t *thist = malloc((size_t)nt * RADIX_PASSES * RADIX_SIZE * sizeof(uint32_t)); /* >= 4 x RADIX_SIZE */
    double *tvals = malloc((size_t)nt * 2 * (size_t)L * sizeof(double));
    int64_t *ksmax = malloc((size_t)ncol * sizeof(int64_t));
    if ((n_perm && !lab) || !ord || !dz || !tkeys || !tidx || !thist || !tvals || !ksmax) {
        status = HM_METRIC_ENOMEM;
        goto done;
    }

    /* Phase 0: the relabellings, transposed: bit q of lab[g * L + i] = event i is
     * "a" in permutation PGROUP g + q. One thread per group (no shared words). */
    if (n_perm) {
        int64_t s = sel_is_a(n, m) ? n : m;
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n_perm * L > PAR_WORK)
        for (int64_t g = 0; g < ngroups; g++) {
            uint32_t *idx = tidx + (int64_t)hm_thread_id() * 2 * L;
            uint16_t *lg = lab + g * L;
            memset(lg, 0, (size_t)L * sizeof(uint16_t));
            for (int64_t q = 0; q < PGROUP && g * PGROUP + q < n_perm; q++) {
                uint16_t bit = (uint16_t)(1u << q);
                perm_split(idx, L, s, seed, HM_METRIC_STREAM_PERM + (uint64_t)(g * PGROUP + q));
                /* the members of "a": idx[0..n) when a was drawn, else idx[m..L) */
                int64_t lo = sel_is_a(n, m) ? 0 : m, hi = sel_is_a(n, m) ? n : L;
                for (int64_t i = lo; i < hi; i++) lg[idx[i]] |= bit;
            }
        }
    }

    for (int64_t c0 = 0; c0 < ncol; c0 += cb_max) {
        int64_t cb = imin64(cb_max, ncol - c0);
        /* Phase A: build, sort and walk each column of the block (one thread per column). */
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (cb > 1 && cb * L * 16 > PAR_WORK)
        for (int64_t t = 0; t < cb; t++) {
            int64_t c = c0 + t, tid = hm_thread_id();
            uint64_t *key = tkeys + tid * 2 * L;
            uint32_t *idx = tidx + tid * 2 * L;
            double *v = tvals + tid * 2 * L;
            if (dirs) {
                const double *u = dirs + c * d;
                for (int64_t i = 0; i < L; i++) {
                    const double *r = i < n ? a + i * d : b + (i - n) * d;
                    double x = 0.0;
                    for (int64_t j = 0; j < d; j++) x += r[j] * u[j];
                    v[i] = x;
                }
            } else {
                for (int64_t i = 0; i < n; i++) v[i] = a[i * d + c];
                for (int64_t i = 0; i < m; i++) v[n + i] = b[i * d + c];
            }
            uint32_t *o = ord + t * L;
            double *dd = dz + t * L;
            sort_column(o, dd, v, L, key, key + L, v + L, idx, idx + L, thist + tid * RADIX_PASSES * RADIX_SIZE);
            double w;
            walk_observed(&w, &ksmax[c], o, dd, L, n, m);
            if (w1) w1[c] = w;
            if (ks) ks[c] = (double)ksmax[c] / ((double)n * (double)m);
        }
        /* Phase B: every permutation relabels the sorted block (no sorting); one
         * task per (group of permutations, column). */
        if (n_perm) {
            #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n_perm * cb * L > PAR_WORK)
            for (int64_t task = 0; task < ngroups * cb; task++) {
                int64_t g = task / cb, t = task % cb, p0 = g * PGROUP, np = imin64(PGROUP, n_perm - p0);
                double w[PGROUP], km[PGROUP];
                walk_group(w, km, ord + t * L, dz + t * L, lab + g * L, L, n, m);
                for (int64_t q = 0; q < np; q++) {
                    if (w1_null) w1_null[(p0 + q) * ncol + c0 + t] = w[q];
                    if (ks_null) ks_null[(p0 + q) * ncol + c0 + t] = km[q] / ((double)n * (double)m);
                }
            }
        }
    }

    if (ks_p) {
        int64_t g = gcd64(n, m);
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (ncol > 1)
        for (int64_t c = 0; c < ncol; c++) ks_p[c] = ks_pvalue_h(ksmax[c] / g, n, m);
    }

done:
    free(lab); free(ord); free(dz); free(tkeys); free(tidx); free(thist); free(tvals); free(ksmax);
    return status;
}

int hm_metric_w1(double *w1, const double *a, int64_t n, const double *b, int64_t m) {
    return hm_metric_columns(w1, NULL, NULL, NULL, NULL, a, n, b, m, 1, NULL, 1, 0, 0);
}

int hm_metric_ks(double *stat, double *pvalue, const double *a, int64_t n, const double *b, int64_t m) {
    return hm_metric_columns(NULL, stat, pvalue, NULL, NULL, a, n, b, m, 1, NULL, 1, 0, 0);
}

int hm_metric_features(double *w1, double *ks, double *ks_p,
                       const double *a, int64_t n, const double *b, int64_t m, int64_t d) {
    return hm_metric_columns(w1, ks, ks_p, NULL, NULL, a, n, b, m, d, NULL, d, 0, 0);
}

void hm_metric_row_mean_std(double *mean, double *std, const double *x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const double *v = x + r * cols;
        double s = 0.0;
        for (int64_t c = 0; c < cols; c++) s += v[c];
        double mu = s / (double)cols, ss = 0.0;
        for (int64_t c = 0; c < cols; c++) ss += (v[c] - mu) * (v[c] - mu);
        if (mean) mean[r] = mu;
        if (std) std[r] = sqrt(ss / (double)cols);
    }
}

int hm_metric_sliced(double *w1_mean, double *w1_std, double *ks_mean, double *ks_std,
                     double *w1_slices, double *ks_slices,
                     const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                     int64_t k, uint64_t seed) {
    if (k < 1 || d < 1) return HM_METRIC_EINVAL;
    double *buf = malloc((size_t)k * (size_t)(d + 2) * sizeof(double));
    if (!buf) return HM_METRIC_ENOMEM;
    double *dirs = buf, *w = w1_slices ? w1_slices : buf + k * d, *s = ks_slices ? ks_slices : buf + k * d + k;
    int status = hm_metric_random_directions(dirs, k, d, seed);
    if (!status) status = hm_metric_columns(w, s, NULL, NULL, NULL, a, n, b, m, d, dirs, k, 0, 0);
    if (!status) {
        hm_metric_row_mean_std(w1_mean, w1_std, w, 1, k);
        hm_metric_row_mean_std(ks_mean, ks_std, s, 1, k);
    }
    free(buf);
    return status;
}

void hm_metric_perm_pvalues(double *pvalue, const double *observed, const double *null_,
                            int64_t n_perm, int64_t ncol) {
    for (int64_t c = 0; c < ncol; c++) {
        int64_t ge = 0;
        for (int64_t p = 0; p < n_perm; p++) ge += null_[p * ncol + c] >= observed[c];
        pvalue[c] = (double)(1 + ge) / (double)(1 + n_perm);
    }
}

/* ========================================================================= */
/* Means, covariances and the Frechet distance                               */
/* ========================================================================= */

/* Rows of a sample or of the pooled pair: pool row r is a[r] for r < na, else
 * b[r - na]; with idx, row i of the view is pool row idx[i]. */
typedef struct {
    const double *a, *b;
    int64_t na;
    const uint32_t *idx;
} rowsrc;

static inline const double *row_at(const rowsrc *s, int64_t i, int64_t d) {
    int64_t r = s->idx ? (int64_t)s->idx[i] : i;
    return r < s->na ? s->a + r * d : s->b + (r - s->na) * d;
}

#define COV_CHUNK 2048 /* rows per partial sum: fixes the summation order */

static void chunk_sum(double *out, const rowsrc *s, int64_t lo, int64_t hi, int64_t d) {
    for (int64_t j = 0; j < d; j++) out[j] = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        const double *r = row_at(s, i, d);
        for (int64_t j = 0; j < d; j++) out[j] += r[j];
    }
}

#define MRB 8 /* rows per block: loops over a block's rows vectorise */

/* Scratch (doubles) for chunk_scatter / mean_cov_*: d x MRB centred rows and
 * d x d x MRB per-row partial products, plus a d x d chunk partial. */
static size_t cov_work(int64_t d) { return (size_t)(d * d * (MRB + 1) + d * MRB); }

/* acc[(j d + k) MRB + r] += wc[j][r] c[k][r] for k >= j over one block of rows
 * stored transposed (ct, wct: d x MRB). */
static void scatter_block(double *acc, const double *wct, const double *ct, int64_t d) {
    for (int64_t j = 0; j < d; j++)
        for (int64_t k = j; k < d; k++) {
            double *ac = acc + (j * d + k) * MRB;
            const double *x = wct + j * MRB, *y = ct + k * MRB;
            #pragma omp simd /* independent rows */
            for (int r = 0; r < MRB; r++) ac[r] += x[r] * y[r];
        }
}

/* out (upper triangle) = sum_r acc over the block rows, in a fixed order. */
static void scatter_reduce(double *out, const double *acc, int64_t d) {
    for (int64_t j = 0; j < d; j++)
        for (int64_t k = j; k < d; k++) {
            double t = 0.0;
            for (int r = 0; r < MRB; r++) t += acc[(j * d + k) * MRB + r];
            out[j * d + k] = t;
        }
}

/* Upper triangle of sum (x - mean)(x - mean)^T over rows lo..hi, eight rows
 * at a time so that the products vectorise across rows. work: cov_work(d) minus
 * the d x d partial. */
static void chunk_scatter(double *out, const rowsrc *s, int64_t lo, int64_t hi, int64_t d,
                          const double *mean, double *work) {
    double *ct = work, *acc = work + d * MRB;
    for (int64_t j = 0; j < d * d * MRB; j++) acc[j] = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += MRB) {
        int64_t nr = imin64(MRB, hi - r0);
        for (int64_t r = 0; r < MRB; r++) {
            const double *row = r < nr ? row_at(s, r0 + r, d) : NULL;
            for (int64_t j = 0; j < d; j++) ct[j * MRB + r] = row ? row[j] - mean[j] : 0.0;
        }
        scatter_block(acc, ct, ct, d);
    }
    for (int64_t j = 0; j < d * d; j++) out[j] = 0.0;
    scatter_reduce(out, acc, d);
}

static void finish_cov(double *cov, int64_t count, int64_t d) {
    double inv = 1.0 / (double)(count - 1);
    for (int64_t j = 0; j < d; j++)
        for (int64_t k = j; k < d; k++) {
            double v = cov[j * d + k] * inv;
            cov[j * d + k] = v;
            cov[k * d + j] = v;
        }
}

/* Serial two-pass mean/cov of a row view; work: cov_work(d). Chunk partials are
 * added in chunk order, exactly as the parallel version does. */
static void mean_cov_serial(double *mean, double *cov, const rowsrc *s, int64_t count, int64_t d, double *work) {
    double *part = work, *cw = work + d * d;
    for (int64_t j = 0; j < d; j++) mean[j] = 0.0;
    for (int64_t lo = 0; lo < count; lo += COV_CHUNK) {
        chunk_sum(part, s, lo, imin64(lo + COV_CHUNK, count), d);
        for (int64_t j = 0; j < d; j++) mean[j] += part[j];
    }
    for (int64_t j = 0; j < d; j++) mean[j] /= (double)count;
    for (int64_t j = 0; j < d * d; j++) cov[j] = 0.0;
    for (int64_t lo = 0; lo < count; lo += COV_CHUNK) {
        chunk_scatter(part, s, lo, imin64(lo + COV_CHUNK, count), d, mean, cw);
        for (int64_t j = 0; j < d * d; j++) cov[j] += part[j];
    }
    finish_cov(cov, count, d);
}

/* Two-pass mean/cov of a sample with integer multiplicities cnt [n] (a draw with
 * replacement of `total` events, total >= 2); events drawn at least once are
 * packed into blocks of MRB rows. work: d d MRB + 2 d MRB + MRB. */
static void mean_cov_weighted(double *mean, double *cov, const double *x, int64_t n, int64_t d,
                              const uint32_t *cnt, int64_t total, double *work) {
    double *ct = work, *wct = ct + d * MRB, *acc = wct + d * MRB, *wr = acc + d * d * MRB;
    for (int64_t j = 0; j < d; j++) mean[j] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!cnt[i]) continue;
        double w = (double)cnt[i];
        for (int64_t j = 0; j < d; j++) mean[j] += w * x[i * d + j];
    }
    for (int64_t j = 0; j < d; j++) mean[j] /= (double)total;
    for (int64_t j = 0; j < d * d * MRB; j++) acc[j] = 0.0;
    int64_t i = 0;
    while (i < n) {
        int r = 0;
        for (; r < MRB && i < n; i++) {
            if (!cnt[i]) continue;
            wr[r] = (double)cnt[i];
            for (int64_t j = 0; j < d; j++) ct[j * MRB + r] = x[i * d + j] - mean[j];
            r++;
        }
        for (; r < MRB; r++) {
            wr[r] = 0.0;
            for (int64_t j = 0; j < d; j++) ct[j * MRB + r] = 0.0;
        }
        for (int64_t j = 0; j < d; j++)
            for (int q = 0; q < MRB; q++) wct[j * MRB + q] = wr[q] * ct[j * MRB + q];
        scatter_block(acc, wct, ct, d);
    }
    for (int64_t j = 0; j < d * d; j++) cov[j] = 0.0;
    scatter_reduce(cov, acc, d);
    finish_cov(cov, total, d);
}

/* Parallel version: chunks spread over threads, partials combined in order. */
static int mean_cov_parallel(double *mean, double *cov, const rowsrc *s, int64_t count, int64_t d) {
    int64_t nch = (count + COV_CHUNK - 1) / COV_CHUNK;
    int nt = hm_max_threads();
    double *part = malloc((size_t)nch * (size_t)d * (size_t)d * sizeof(double));
    double *cs = malloc((size_t)nt * cov_work(d) * sizeof(double));
    if (!part || !cs) { free(part); free(cs); return HM_METRIC_ENOMEM; }
    #pragma omp parallel for schedule(static) num_threads(nt) if (count * d * d > PAR_WORK)
    for (int64_t ch = 0; ch < nch; ch++)
        chunk_sum(part + ch * d, s, ch * COV_CHUNK, imin64((ch + 1) * COV_CHUNK, count), d);
    for (int64_t j = 0; j < d; j++) mean[j] = 0.0;
    for (int64_t ch = 0; ch < nch; ch++)
        for (int64_t j = 0; j < d; j++) mean[j] += part[ch * d + j];
    for (int64_t j = 0; j < d; j++) mean[j] /= (double)count;
    #pragma omp parallel for schedule(static) num_threads(nt) if (count * d * d > PAR_WORK)
    for (int64_t ch = 0; ch < nch; ch++)
        chunk_scatter(part + ch * d * d, s, ch * COV_CHUNK, imin64((ch + 1) * COV_CHUNK, count), d,
                      mean, cs + (size_t)hm_thread_id() * cov_work(d));
    for (int64_t j = 0; j < d * d; j++) cov[j] = 0.0;
    for (int64_t ch = 0; ch < nch; ch++)
        for (int64_t j = 0; j < d * d; j++) cov[j] += part[ch * d * d + j];
    finish_cov(cov, count, d);
    free(part);
    free(cs);
    return HM_METRIC_OK;
}

static void apply_col_scale(double *mean, double *cov, const double *sc, int64_t d) {
    if (!sc) return;
    for (int64_t j = 0; j < d; j++) {
        mean[j] *= sc[j];
        for (int64_t k = 0; k < d; k++) cov[j * d + k] *= sc[j] * sc[k];
    }
}

void hm_metric_maxabs_inv(double *inv_scale, const double *x, int64_t n, int64_t d) {
    for (int64_t j = 0; j < d; j++) inv_scale[j] = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            double v = fabs(x[i * d + j]);
            if (v > inv_scale[j]) inv_scale[j] = v;
        }
    for (int64_t j = 0; j < d; j++) inv_scale[j] = inv_scale[j] > 0.0 ? 1.0 / inv_scale[j] : 1.0;
}

int hm_metric_mean_cov(double *mean, double *cov, const double *x, int64_t n, int64_t d) {
    if (n < 2 || d < 1) return HM_METRIC_EINVAL;
    rowsrc s = {x, NULL, INT64_MAX, NULL};
    return mean_cov_parallel(mean, cov, &s, n, d);
}

int hm_metric_frechet(double *fd, const double *mu1, const double *c1,
                      const double *mu2, const double *c2, int64_t d) {
    if (d < 1 || d > 46340) return HM_METRIC_EINVAL;
    size_t dd = (size_t)d * (size_t)d;
    double *V = malloc((3 * dd + (size_t)d) * sizeof(double));
    if (!V) return HM_METRIC_ENOMEM;
    double *S = V + dd, *T = S + dd, *w = T + dd;
    int di = (int)d, status = HM_METRIC_OK;
    /* c1^1/2 = V diag(sqrt(max(lambda, 0))) V^T */
    memcpy(V, c1, dd * sizeof(double));
    if (hm_lapacke_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', di, V, di, w) != 0) { status = HM_METRIC_ELAPACK; goto out; }
    for (int64_t i = 0; i < d; i++) w[i] = sqrt(w[i] > 0.0 ? w[i] : 0.0);
    for (int64_t r = 0; r < d; r++)
        for (int64_t c = r; c < d; c++) {
            double s = 0.0;
            for (int64_t i = 0; i < d; i++) s += V[r * d + i] * w[i] * V[c * d + i];
            S[r * d + c] = s;
            S[c * d + r] = s;
        }
    /* c1^1/2 c2 c1^1/2 is symmetric PSD: its square root's trace is the sum of
     * the square roots of its (clamped) eigenvalues. */
    hm_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, di, di, di, 1.0, S, di, c2, di, 0.0, T, di);
    hm_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, di, di, di, 1.0, T, di, S, di, 0.0, V, di);
    for (int64_t r = 0; r < d; r++)
        for (int64_t c = r + 1; c < d; c++) {
            double s = 0.5 * (V[r * d + c] + V[c * d + r]);
            V[r * d + c] = s;
            V[c * d + r] = s;
        }
    if (hm_lapacke_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', di, V, di, w) != 0) { status = HM_METRIC_ELAPACK; goto out; }
    double trs = 0.0, tr1 = 0.0, tr2 = 0.0, dm = 0.0;
    for (int64_t i = 0; i < d; i++) {
        trs += sqrt(w[i] > 0.0 ? w[i] : 0.0);
        tr1 += c1[i * d + i];
        tr2 += c2[i * d + i];
        double t = mu1[i] - mu2[i];
        dm += t * t;
    }
    *fd = dm + tr1 + tr2 - 2.0 * trs;
out:
    free(V);
    return status;
}

int hm_metric_fgd(double *fd, const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                  const double *col_scale) {
    if (n < 2 || m < 2 || d < 1) return HM_METRIC_EINVAL;
    double *buf = malloc((size_t)2 * (size_t)(d + d * d) * sizeof(double));
    if (!buf) return HM_METRIC_ENOMEM;
    double *mu1 = buf, *c1 = mu1 + d, *mu2 = c1 + d * d, *c2 = mu2 + d;
    rowsrc sa = {a, NULL, INT64_MAX, NULL}, sb = {b, NULL, INT64_MAX, NULL};
    int status = mean_cov_parallel(mu1, c1, &sa, n, d);
    if (!status) status = mean_cov_parallel(mu2, c2, &sb, m, d);
    if (!status) {
        apply_col_scale(mu1, c1, col_scale, d);
        apply_col_scale(mu2, c2, col_scale, d);
        status = hm_metric_frechet(fd, mu1, c1, mu2, c2, d);
    }
    free(buf);
    return status;
}

/* Least squares y = b0 + b1 x with b0, b1 >= 0 (the optimum of a convex quadratic
 * over the quadrant: the free optimum if feasible, else the best of the two
 * clamped one-parameter fits). err = sqrt(s^2 [(X^T X)^-1]_00), s^2 = SSR / (P - 2). */
static void fit_intercept(double *b0_out, double *err_out, const double *x, const double *y, int64_t P) {
    double xm = 0.0, ym = 0.0;
    for (int64_t i = 0; i < P; i++) { xm += x[i]; ym += y[i]; }
    xm /= (double)P;
    ym /= (double)P;
    double sxx = 0.0, sxy = 0.0, sx2 = 0.0, sx2y = 0.0;
    for (int64_t i = 0; i < P; i++) {
        sxx += (x[i] - xm) * (x[i] - xm);
        sxy += (x[i] - xm) * (y[i] - ym);
        sx2 += x[i] * x[i];
        sx2y += x[i] * y[i];
    }
    double b1 = sxx > 0.0 ? sxy / sxx : 0.0, b0 = ym - b1 * xm;
    if (!(b0 >= 0.0 && b1 >= 0.0)) {
        double best = INFINITY, cb0 = 0.0, cb1 = 0.0;
        double cand[2][2] = {{0.0, sx2 > 0.0 && sx2y > 0.0 ? sx2y / sx2 : 0.0}, {ym > 0.0 ? ym : 0.0, 0.0}};
        for (int c = 0; c < 2; c++) {
            double ssr = 0.0;
            for (int64_t i = 0; i < P; i++) {
                double r = y[i] - cand[c][0] - cand[c][1] * x[i];
                ssr += r * r;
            }
            if (ssr < best) { best = ssr; cb0 = cand[c][0]; cb1 = cand[c][1]; }
        }
        b0 = cb0;
        b1 = cb1;
    }
    double ssr = 0.0;
    for (int64_t i = 0; i < P; i++) {
        double r = y[i] - b0 - b1 * x[i];
        ssr += r * r;
    }
    *b0_out = b0;
    if (P <= 2 || sxx <= 0.0) *err_out = INFINITY;
    else *err_out = sqrt(ssr / (double)(P - 2) * sx2 / ((double)P * sxx));
}

int hm_metric_fgd_inf(double *value, double *err, double *sizes, double *fd_means,
                      const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                      const double *col_scale, int64_t min_samples, int64_t max_samples,
                      int64_t num_batches, int64_t num_points, uint64_t seed) {
    if (n < 1 || m < 1 || d < 1 || num_batches < 1 || num_points < 2 || min_samples < 2 || max_samples < 2)
        return HM_METRIC_EINVAL;
    if (n > (int64_t)UINT32_MAX || m > (int64_t)UINT32_MAX) return HM_METRIC_EINVAL;
    /* sizes exactly as (1 / np.linspace(1/min, 1/max, P)).astype(int32) */
    int64_t P = num_points, B = num_batches, items = P * B, maxsz = 0;
    int64_t *sz = malloc((size_t)P * sizeof(int64_t));
    double *xs = malloc((size_t)P * 2 * sizeof(double));
    if (!sz || !xs) { free(sz); free(xs); return HM_METRIC_ENOMEM; }
    double start = 1.0 / (double)min_samples, stop = 1.0 / (double)max_samples;
    double step = (stop - start) / (double)(P - 1);
    for (int64_t i = 0; i < P; i++) {
        double v = i == P - 1 ? stop : (double)i * step + start;
        sz[i] = (int64_t)(1.0 / v);
        if (sz[i] < 2) { free(sz); free(xs); return HM_METRIC_EINVAL; }
        if (sz[i] > maxsz) maxsz = sz[i];
    }
    int nt = hm_max_threads(), status = HM_METRIC_OK;
    size_t per = (size_t)(d + d * d);
    int64_t nm = n > m ? n : m;
    double *stats = malloc((size_t)items * 2 * per * sizeof(double));
    uint32_t *tcnt = malloc((size_t)nt * (size_t)nm * sizeof(uint32_t));
    size_t tws = cov_work(d) + d * MRB + MRB;
    double *twork = malloc((size_t)nt * tws * sizeof(double));
    double *fds = malloc((size_t)items * sizeof(double));
    if (!stats || !tcnt || !twork || !fds) { status = HM_METRIC_ENOMEM; goto out; }

    /* Parallel phase: the two subsamples' means and covariances of every item.
     * A subsample drawn with replacement is kept as multiplicities per event,
     * so both passes stream through the sample in order. */
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (items * maxsz * d * 8 > PAR_WORK)
    for (int64_t it = 0; it < items; it++) {
        int tid = hm_thread_id();
        int64_t size = sz[it / B];
        uint32_t *cnt = tcnt + (int64_t)tid * nm;
        double *work = twork + (size_t)tid * tws;
        double *st = stats + (size_t)it * 2 * per;
        hm_stream rs;
        hm_stream_init(&rs, seed, HM_METRIC_STREAM_FGD + (uint64_t)it);
        memset(cnt, 0, (size_t)n * sizeof(uint32_t));
        for (int64_t i = 0; i < size; i++) cnt[rand_below(&rs, (uint32_t)n)]++;
        mean_cov_weighted(st, st + d, a, n, d, cnt, size, work);
        memset(cnt, 0, (size_t)m * sizeof(uint32_t));
        for (int64_t i = 0; i < size; i++) cnt[rand_below(&rs, (uint32_t)m)]++;
        mean_cov_weighted(st + per, st + per + d, b, m, d, cnt, size, work);
        apply_col_scale(st, st + d, col_scale, d);
        apply_col_scale(st + per, st + per + d, col_scale, d);
    }
    /* Serial phase: LAPACK stays outside the OpenMP region. */
    for (int64_t it = 0; it < items && !status; it++) {
        double *st = stats + (size_t)it * 2 * per;
        status = hm_metric_frechet(&fds[it], st, st + d, st + per, st + per + d, d);
    }
    if (status) goto out;
    for (int64_t i = 0; i < P; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < B; j++) s += fds[i * B + j];
        xs[i] = 1.0 / (double)sz[i];
        xs[P + i] = s / (double)B;
        if (sizes) sizes[i] = (double)sz[i];
        if (fd_means) fd_means[i] = xs[P + i];
    }
    fit_intercept(value, err, xs, xs + P, P);
out:
    free(sz); free(xs); free(stats); free(tcnt); free(twork); free(fds);
    return status;
}

int hm_metric_fgd_perm(double *observed, double *pvalue, double *null_,
                       const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                       const double *col_scale, int64_t n_perm, uint64_t seed) {
    if (n < 2 || m < 2 || d < 1 || n_perm < 0) return HM_METRIC_EINVAL;
    int64_t L = n + m;
    if (L > (int64_t)UINT32_MAX) return HM_METRIC_EINVAL;
    double obs;
    int status = hm_metric_fgd(&obs, a, n, b, m, d, col_scale);
    if (status) return status;
    if (observed) *observed = obs;
    if (n_perm == 0) { if (pvalue) *pvalue = 1.0; return HM_METRIC_OK; }
    int nt = hm_max_threads();
    size_t per = (size_t)(d + d * d);
    int64_t words = (L + 63) / 64;
    double *stats = malloc((size_t)n_perm * 2 * per * sizeof(double));
    uint32_t *tidx = malloc((size_t)nt * 2 * (size_t)L * sizeof(uint32_t));
    uint64_t *tbits = malloc((size_t)nt * (size_t)words * sizeof(uint64_t));
    double *twork = malloc((size_t)nt * cov_work(d) * sizeof(double));
    double *nul = malloc((size_t)n_perm * sizeof(double));
    if (!stats || !tidx || !tbits || !twork || !nul) { status = HM_METRIC_ENOMEM; goto out; }
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n_perm * L * d * d > PAR_WORK)
    for (int64_t p = 0; p < n_perm; p++) {
        int tid = hm_thread_id();
        uint32_t *idx = tidx + (int64_t)tid * 2 * L, *mem = idx + L;
        uint64_t *bits = tbits + (int64_t)tid * words;
        double *work = twork + (size_t)tid * cov_work(d);
        double *st = stats + (size_t)p * 2 * per;
        perm_bits(bits, idx, n, m, seed, p);
        perm_members(mem, bits, n, m);
        rowsrc sa = {a, b, n, mem}, sb = {a, b, n, mem + n};
        mean_cov_serial(st, st + d, &sa, n, d, work);
        mean_cov_serial(st + per, st + per + d, &sb, m, d, work);
        apply_col_scale(st, st + d, col_scale, d);
        apply_col_scale(st + per, st + per + d, col_scale, d);
    }
    for (int64_t p = 0; p < n_perm && !status; p++) {
        double *st = stats + (size_t)p * 2 * per;
        status = hm_metric_frechet(&nul[p], st, st + d, st + per, st + per + d, d);
    }
    if (status) goto out;
    if (null_) memcpy(null_, nul, (size_t)n_perm * sizeof(double));
    if (pvalue) hm_metric_perm_pvalues(pvalue, &obs, nul, n_perm, 1);
out:
    free(stats); free(tidx); free(tbits); free(twork); free(nul);
    return status;
}

/* ========================================================================= */
/* Polynomial-kernel MMD                                                     */
/* ========================================================================= */

/*
 * (g x.y + 1)^p = sum_k C(p,k) g^k (x.y)^k and (x.y)^k = sum_{|alpha|=k}
 * multinomial(alpha) x^alpha y^alpha, so k(x, y) = sum_f w_f phi_f(x) phi_f(y)
 * over the monomials phi_f = x^alpha, |alpha| <= p, with
 * w_f = C(p, |alpha|) g^|alpha| |alpha|! / prod alpha_j!.
 * Monomial f is its parent's value times x[var[f]] (index sequences kept
 * non-decreasing, so every monomial appears once).
 */
typedef struct {
    int64_t F;
    int32_t *parent, *var;
    double *w;
} monos;

static int64_t mono_count(int64_t d, int p, int64_t cap) {
    double c = 1.0; /* C(d + p, p) */
    for (int k = 1; k <= p; k++) c = c * (double)(d + k) / k;
    return c > (double)cap ? -1 : (int64_t)(c + 0.5);
}

static void mono_free(monos *mt) { free(mt->parent); free(mt->var); free(mt->w); }

static int mono_build(monos *mt, int64_t d, int p) {
    int64_t F = mono_count(d, p, INT32_MAX);
    if (F < 0) return HM_METRIC_ENOMEM;
    mt->F = F;
    mt->parent = malloc((size_t)F * sizeof(int32_t));
    mt->var = malloc((size_t)F * sizeof(int32_t));
    mt->w = malloc((size_t)F * sizeof(double));
    int32_t *mult = malloc((size_t)F * sizeof(int32_t));
    double *multinom = malloc((size_t)F * sizeof(double));
    if (!mt->parent || !mt->var || !mt->w || !mult || !multinom) {
        mono_free(mt); free(mult); free(multinom);
        return HM_METRIC_ENOMEM;
    }
    double g = 1.0 / (double)d, binom = 1.0, gk = 1.0;
    mt->parent[0] = -1; mt->var[0] = 0; mult[0] = 0; multinom[0] = 1.0; mt->w[0] = 1.0;
    int64_t lo = 0, hi = 1, next = 1; /* monomials of degree k-1 are [lo, hi) */
    for (int k = 1; k <= p; k++) {
        binom = binom * (double)(p - k + 1) / k;
        gk *= g;
        for (int64_t t = lo; t < hi; t++)
            for (int32_t v = k == 1 ? 0 : mt->var[t]; v < d; v++) {
                int32_t mu = (k > 1 && v == mt->var[t]) ? mult[t] + 1 : 1;
                mt->parent[next] = (int32_t)t;
                mt->var[next] = v;
                mult[next] = mu;
                multinom[next] = multinom[t] * k / mu;
                mt->w[next] = binom * gk * multinom[next];
                next++;
            }
        lo = hi;
        hi = next;
    }
    free(mult);
    free(multinom);
    return HM_METRIC_OK;
}

static inline double ipow(double x, int p) {
    double r = 1.0;
    while (p) { if (p & 1) r *= x; x *= x; p >>= 1; }
    return r;
}

/* Work (doubles) of mono_accumulate: values and per-row accumulators [F x MRB],
 * transposed rows [d x MRB]. */
static size_t mono_work(const monos *mt, int64_t d) { return (size_t)(2 * mt->F * MRB + d * MRB); }

/* Adds the monomials of rows lo..hi of a view to S [F] and k(x, x) to *K.
 * Monomial f of a block of rows is its parent's times one coordinate: a
 * product of two contiguous MRB-vectors. Per-row partial sums are reduced in
 * a fixed order at the end, so the result is a pure function of (lo, hi). */
static void mono_accumulate(double *S, double *K, const monos *mt, const rowsrc *s, int64_t lo, int64_t hi,
                            int64_t d, int p, const double *sc, double *work) {
    int64_t F = mt->F;
    double *val = work, *acc = work + F * MRB, *xt = acc + F * MRB;
    const int32_t *par = mt->parent, *var = mt->var;
    double g = 1.0 / (double)d, ksum = 0.0;
    for (int64_t f = 0; f < F * MRB; f++) acc[f] = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += MRB) {
        int64_t nr = imin64(MRB, hi - r0);
        for (int64_t r = 0; r < MRB; r++) {
            if (r < nr) {
                const double *row = row_at(s, r0 + r, d);
                double nrm = 0.0;
                for (int64_t j = 0; j < d; j++) {
                    double v = sc ? row[j] * sc[j] : row[j];
                    xt[j * MRB + r] = v;
                    nrm += v * v;
                }
                ksum += ipow(g * nrm + 1.0, p);
                val[r] = 1.0;
            } else { /* padding rows: every monomial is a multiple of val[r] = 0 */
                for (int64_t j = 0; j < d; j++) xt[j * MRB + r] = 0.0;
                val[r] = 0.0;
            }
            acc[r] += val[r];
        }
        for (int64_t f = 1; f < F; f++) {
            const double *pv = val + (int64_t)par[f] * MRB, *xv = xt + (int64_t)var[f] * MRB;
            double *v = val + f * MRB, *ac = acc + f * MRB;
            #pragma omp simd /* rows are independent; parent[f] < f, so v never overlaps pv */
            for (int r = 0; r < MRB; r++) {
                double t = pv[r] * xv[r];
                v[r] = t;
                ac[r] += t;
            }
        }
    }
    for (int64_t f = 0; f < F; f++) {
        double t = 0.0;
        for (int r = 0; r < MRB; r++) t += acc[f * MRB + r];
        S[f] += t;
    }
    *K += ksum;
}

/* Serial chunked sums (same chunks, same order as the parallel version).
 * work: F + mono_work. */
static void mono_sums_serial(double *S, double *K, const monos *mt, const rowsrc *s, int64_t count,
                             int64_t d, int p, const double *sc, double *work) {
    int64_t F = mt->F;
    double *part = work;
    for (int64_t f = 0; f < F; f++) S[f] = 0.0;
    *K = 0.0;
    for (int64_t lo = 0; lo < count; lo += COV_CHUNK) {
        double kp = 0.0;
        for (int64_t f = 0; f < F; f++) part[f] = 0.0;
        mono_accumulate(part, &kp, mt, s, lo, imin64(lo + COV_CHUNK, count), d, p, sc, work + F);
        for (int64_t f = 0; f < F; f++) S[f] += part[f];
        *K += kp;
    }
}

static int mono_sums_parallel(double *S, double *K, const monos *mt, const rowsrc *s, int64_t count,
                              int64_t d, int p, const double *sc) {
    int64_t F = mt->F, nch = (count + COV_CHUNK - 1) / COV_CHUNK;
    int nt = hm_max_threads();
    size_t tws = mono_work(mt, d);
    double *part = malloc((size_t)nch * (size_t)(F + 1) * sizeof(double));
    double *tw = malloc((size_t)nt * tws * sizeof(double));
    if (!part || !tw) { free(part); free(tw); return HM_METRIC_ENOMEM; }
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (count * F > PAR_WORK)
    for (int64_t ch = 0; ch < nch; ch++) {
        double *pp = part + ch * (F + 1);
        for (int64_t f = 0; f <= F; f++) pp[f] = 0.0;
        mono_accumulate(pp, &pp[F], mt, s, ch * COV_CHUNK, imin64((ch + 1) * COV_CHUNK, count), d, p, sc,
                        tw + (size_t)hm_thread_id() * tws);
    }
    for (int64_t f = 0; f < F; f++) S[f] = 0.0;
    *K = 0.0;
    for (int64_t ch = 0; ch < nch; ch++) {
        const double *pp = part + ch * (F + 1);
        for (int64_t f = 0; f < F; f++) S[f] += pp[f];
        *K += pp[F];
    }
    free(part);
    free(tw);
    return HM_METRIC_OK;
}

/* Unbiased MMD^2 from the monomial sums:
 *   sum_f w_f (Sa_f/n - Sb_f/m)^2 - (Ka/n - Qa)/(n-1) - (Kb/m - Qb)/(m-1),
 * Q = sum_f w_f mean_f^2, K = sum_i k(x_i, x_i). The first term is a sum of
 * non-negative terms of differences of means, the corrections are traces of
 * the feature covariances: nothing large cancels. */
static double mmd_from_sums(const monos *mt, const double *Sa, double Ka, int64_t n,
                            const double *Sb, double Kb, int64_t m) {
    double cross = 0.0, Qa = 0.0, Qb = 0.0, nd = (double)n, md = (double)m;
    for (int64_t f = 0; f < mt->F; f++) {
        double ma = Sa[f] / nd, mb = Sb[f] / md, df = ma - mb, w = mt->w[f];
        cross += w * df * df;
        Qa += w * ma * ma;
        Qb += w * mb * mb;
    }
    return cross - (Ka / nd - Qa) / (nd - 1.0) - (Kb / md - Qb) / (md - 1.0);
}

/* Direct pairwise sums over contiguous scaled rows: sum_{i<j} k(x_i, x_j) for one
 * sample (y == NULL) or sum_{i,j} k(x_i, y_j). Per-row partials are combined in
 * row order (thread-count independent). rowbuf: [nx]. */
static double pair_sum(const double *x, int64_t nx, const double *y, int64_t ny, int64_t d, int p,
                       double *rowbuf, int parallel) {
    double g = 1.0 / (double)d;
    #pragma omp parallel for schedule(dynamic, 16) if (parallel && nx * (y ? ny : nx) * d > PAR_WORK)
    for (int64_t i = 0; i < nx; i++) {
        const double *xi = x + i * d;
        const double *ys = y ? y : x;
        int64_t j0 = y ? 0 : i + 1, j1 = y ? ny : nx;
        double s = 0.0;
        for (int64_t j = j0; j < j1; j++) {
            const double *yj = ys + j * d;
            double dot = 0.0;
            for (int64_t k = 0; k < d; k++) dot += xi[k] * yj[k];
            s += ipow(g * dot + 1.0, p);
        }
        rowbuf[i] = s;
    }
    double tot = 0.0;
    for (int64_t i = 0; i < nx; i++) tot += rowbuf[i];
    return tot;
}

/* Copies the rows of a view into a contiguous buffer, scaled. */
static void gather_scaled(double *out, const rowsrc *s, int64_t count, int64_t d, const double *sc) {
    for (int64_t i = 0; i < count; i++) {
        const double *r = row_at(s, i, d);
        for (int64_t j = 0; j < d; j++) out[i * d + j] = sc ? r[j] * sc[j] : r[j];
    }
}

/* work: (n + m) * d + max(n, m) doubles */
static double mmd_pairwise_views(const rowsrc *sa, int64_t n, const rowsrc *sb, int64_t m, int64_t d, int p,
                                 const double *sc, double *work, int parallel) {
    double *xa = work, *xb = work + n * d, *rb = xb + m * d;
    gather_scaled(xa, sa, n, d, sc);
    gather_scaled(xb, sb, m, d, sc);
    double saa = pair_sum(xa, n, NULL, 0, d, p, rb, parallel);
    double sbb = pair_sum(xb, m, NULL, 0, d, p, rb, parallel);
    double sab = pair_sum(xa, n, xb, m, d, p, rb, parallel);
    double nd = (double)n, md = (double)m;
    return 2.0 * saa / (nd * (nd - 1.0)) + 2.0 * sbb / (md * (md - 1.0)) - 2.0 * sab / (nd * md);
}

/* The monomial route costs ~(n + m) F, the pairwise one ~(n^2 + m^2 + 2 n m)/2 (d + 2).
 * F is capped at 2^18 because the scratch is ~(2 MRB + 3) F doubles per thread
 * (~40 MB at the cap; d = 36 with degree 4 has F = 91390). */
static int use_monomials(int64_t d, int p, int64_t n, int64_t m) {
    int64_t F = mono_count(d, p, (int64_t)1 << 18);
    if (F < 0) return 0;
    double cf = (double)(n + m) * (double)F * 2.0;
    double cp = 0.5 * ((double)n * n + (double)m * m + 2.0 * (double)n * m) * (double)(d + 2);
    return cf <= cp;
}

int hm_metric_mmd_poly_pairwise(double *mmd, const double *a, int64_t n, const double *b, int64_t m,
                                int64_t d, int degree, const double *col_scale) {
    if (n < 2 || m < 2 || d < 1 || degree < 1) return HM_METRIC_EINVAL;
    double *work = malloc((size_t)((n + m) * d + (n > m ? n : m)) * sizeof(double));
    if (!work) return HM_METRIC_ENOMEM;
    rowsrc sa = {a, NULL, INT64_MAX, NULL}, sb = {b, NULL, INT64_MAX, NULL};
    *mmd = mmd_pairwise_views(&sa, n, &sb, m, d, degree, col_scale, work, 1);
    free(work);
    return HM_METRIC_OK;
}

int hm_metric_mmd_poly(double *mmd, const double *a, int64_t n, const double *b, int64_t m,
                       int64_t d, int degree, const double *col_scale) {
    if (n < 2 || m < 2 || d < 1 || degree < 1) return HM_METRIC_EINVAL;
    if (!use_monomials(d, degree, n, m)) return hm_metric_mmd_poly_pairwise(mmd, a, n, b, m, d, degree, col_scale);
    monos mt;
    int status = mono_build(&mt, d, degree);
    if (status) return status;
    double *S = malloc((size_t)2 * (size_t)mt.F * sizeof(double));
    if (!S) { mono_free(&mt); return HM_METRIC_ENOMEM; }
    rowsrc sa = {a, NULL, INT64_MAX, NULL}, sb = {b, NULL, INT64_MAX, NULL};
    double Ka, Kb;
    status = mono_sums_parallel(S, &Ka, &mt, &sa, n, d, degree, col_scale);
    if (!status) status = mono_sums_parallel(S + mt.F, &Kb, &mt, &sb, m, d, degree, col_scale);
    if (!status) *mmd = mmd_from_sums(&mt, S, Ka, n, S + mt.F, Kb, m);
    free(S);
    mono_free(&mt);
    return status;
}

/* numpy's 'linear' percentile of sorted v[B] (with numpy's two-sided lerp). */
static double percentile_sorted(const double *v, int64_t B, double q) {
    double pos = q / 100.0 * (double)(B - 1);
    int64_t lo = (int64_t)floor(pos);
    if (lo >= B - 1) return v[B - 1];
    double t = pos - (double)lo, lo_v = v[lo], hi_v = v[lo + 1], dv = hi_v - lo_v;
    return t >= 0.5 ? hi_v - dv * (1.0 - t) : lo_v + dv * t;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int hm_metric_kpd(double *median, double *err, double *vals,
                  const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                  int degree, const double *col_scale, int64_t num_batches, int64_t batch_size,
                  uint64_t seed) {
    if (n < 1 || m < 1 || d < 1 || degree < 1 || num_batches < 1 || batch_size < 2) return HM_METRIC_EINVAL;
    if (n > (int64_t)UINT32_MAX || m > (int64_t)UINT32_MAX) return HM_METRIC_EINVAL;
    int nt = hm_max_threads(), mono = use_monomials(d, degree, batch_size, batch_size), status = HM_METRIC_OK;
    monos mt = {0, NULL, NULL, NULL};
    if (mono && (status = mono_build(&mt, d, degree))) return status;
    int64_t bs = batch_size;
    size_t per_thread = mono ? (size_t)(3 * mt.F) + mono_work(&mt, d) : (size_t)(2 * bs * d + bs);
    double *tw = malloc((size_t)nt * per_thread * sizeof(double));
    uint32_t *tidx = malloc((size_t)nt * 2 * (size_t)bs * sizeof(uint32_t));
    double *v = malloc((size_t)num_batches * 2 * sizeof(double));
    if (!tw || !tidx || !v) { status = HM_METRIC_ENOMEM; goto out; }
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (num_batches * bs * 64 > PAR_WORK)
    for (int64_t i = 0; i < num_batches; i++) {
        int tid = hm_thread_id();
        double *w = tw + (size_t)tid * per_thread;
        uint32_t *ia = tidx + (int64_t)tid * 2 * bs, *ib = ia + bs;
        hm_stream rs;
        hm_stream_init(&rs, seed, HM_METRIC_STREAM_KPD + (uint64_t)i);
        for (int64_t j = 0; j < bs; j++) ia[j] = rand_below(&rs, (uint32_t)n);
        for (int64_t j = 0; j < bs; j++) ib[j] = rand_below(&rs, (uint32_t)m);
        rowsrc sa = {a, NULL, INT64_MAX, ia}, sb = {b, NULL, INT64_MAX, ib};
        if (mono) {
            double Ka, Kb, *Sa = w, *Sb = w + mt.F;
            mono_sums_serial(Sa, &Ka, &mt, &sa, bs, d, degree, col_scale, w + 2 * mt.F);
            mono_sums_serial(Sb, &Kb, &mt, &sb, bs, d, degree, col_scale, w + 2 * mt.F);
            v[i] = mmd_from_sums(&mt, Sa, Ka, bs, Sb, Kb, bs);
        } else {
            v[i] = mmd_pairwise_views(&sa, bs, &sb, bs, d, degree, col_scale, w, 0);
        }
    }
    if (vals) memcpy(vals, v, (size_t)num_batches * sizeof(double));
    double *srt = v + num_batches;
    memcpy(srt, v, (size_t)num_batches * sizeof(double));
    qsort(srt, (size_t)num_batches, sizeof(double), cmp_double);
    int64_t B = num_batches;
    if (median) *median = (B & 1) ? srt[B / 2] : 0.5 * (srt[B / 2 - 1] + srt[B / 2]);
    if (err) *err = 0.5 * (percentile_sorted(srt, B, 83.725) - percentile_sorted(srt, B, 16.275));
out:
    free(tw); free(tidx); free(v);
    mono_free(&mt);
    return status;
}

int hm_metric_mmd_perm(double *observed, double *pvalue, double *null_,
                       const double *a, int64_t n, const double *b, int64_t m, int64_t d,
                       int degree, const double *col_scale, int64_t n_perm, uint64_t seed) {
    if (n < 2 || m < 2 || d < 1 || degree < 1 || n_perm < 0) return HM_METRIC_EINVAL;
    int64_t L = n + m;
    if (L > (int64_t)UINT32_MAX) return HM_METRIC_EINVAL;
    int nt = hm_max_threads(), mono = use_monomials(d, degree, n, m), status = HM_METRIC_OK;
    monos mt = {0, NULL, NULL, NULL};
    double *pool = NULL, *tw = NULL, *nul = NULL;
    uint32_t *tidx = NULL;
    uint64_t *tbits = NULL;
    double obs, Kp = 0.0;
    if (mono) {
        if ((status = mono_build(&mt, d, degree))) return status;
        pool = malloc((size_t)3 * (size_t)mt.F * sizeof(double));
        if (!pool) { status = HM_METRIC_ENOMEM; goto out; }
        double *Sa = pool + mt.F, *Sb = pool + 2 * mt.F, Ka, Kb;
        rowsrc sa = {a, NULL, INT64_MAX, NULL}, sb = {b, NULL, INT64_MAX, NULL};
        if ((status = mono_sums_parallel(Sa, &Ka, &mt, &sa, n, d, degree, col_scale))) goto out;
        if ((status = mono_sums_parallel(Sb, &Kb, &mt, &sb, m, d, degree, col_scale))) goto out;
        obs = mmd_from_sums(&mt, Sa, Ka, n, Sb, Kb, m);
        for (int64_t f = 0; f < mt.F; f++) pool[f] = Sa[f] + Sb[f];
        Kp = Ka + Kb;
    } else {
        if ((status = hm_metric_mmd_poly_pairwise(&obs, a, n, b, m, d, degree, col_scale))) goto out;
    }
    if (observed) *observed = obs;
    if (n_perm == 0) { if (pvalue) *pvalue = 1.0; goto out; }
    size_t per_thread = mono ? (size_t)(3 * mt.F) + mono_work(&mt, d) : (size_t)(L * d + (n > m ? n : m));
    int64_t words = (L + 63) / 64;
    tw = malloc((size_t)nt * per_thread * sizeof(double));
    tidx = malloc((size_t)nt * 2 * (size_t)L * sizeof(uint32_t));
    tbits = malloc((size_t)nt * (size_t)words * sizeof(uint64_t));
    nul = malloc((size_t)n_perm * sizeof(double));
    if (!tw || !tidx || !tbits || !nul) { status = HM_METRIC_ENOMEM; goto out; }
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n_perm * L * 16 > PAR_WORK)
    for (int64_t p = 0; p < n_perm; p++) {
        int tid = hm_thread_id();
        double *w = tw + (size_t)tid * per_thread;
        uint32_t *idx = tidx + (int64_t)tid * 2 * L, *mem = idx + L;
        uint64_t *bits = tbits + (int64_t)tid * words;
        perm_bits(bits, idx, n, m, seed, p);
        perm_members(mem, bits, n, m);
        rowsrc sa = {a, b, n, mem}, sb = {a, b, n, mem + n};
        if (mono) {
            /* only the smaller side is summed; the other is the pool minus it
             * (sums of ~n terms each: the difference loses nothing that matters) */
            double *Ss = w, *So = w + mt.F, Ks;
            int small_a = sel_is_a(n, m);
            mono_sums_serial(Ss, &Ks, &mt, small_a ? &sa : &sb, small_a ? n : m, d, degree, col_scale, w + 2 * mt.F);
            for (int64_t f = 0; f < mt.F; f++) So[f] = pool[f] - Ss[f];
            double Ko = Kp - Ks;
            nul[p] = small_a ? mmd_from_sums(&mt, Ss, Ks, n, So, Ko, m) : mmd_from_sums(&mt, So, Ko, n, Ss, Ks, m);
        } else {
            nul[p] = mmd_pairwise_views(&sa, n, &sb, m, d, degree, col_scale, w, 0);
        }
    }
    if (null_) memcpy(null_, nul, (size_t)n_perm * sizeof(double));
    if (pvalue) hm_metric_perm_pvalues(pvalue, &obs, nul, n_perm, 1);
out:
    free(pool); free(tw); free(tidx); free(tbits); free(nul);
    mono_free(&mt);
    return status;
}
