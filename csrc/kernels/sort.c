/* Sorting along one axis and the order statistics built on it: see sort.h for
 * the layout, the ordering conventions and the determinism argument. */
#include "sort.h"

#include <math.h>
#include <string.h>
#include "threads.h"

/* Below this length an insertion sort beats the radix sort's four histogram
 * scans of 256 buckets. */
#define SMALL_ROW 32
/* Rows are sorted concurrently only when there is this much work in total. */
#define PARALLEL_WORK 16384

/* Order-preserving uint32 key of a float, ascending: flip every bit of negative
 * numbers (their bit patterns grow with magnitude), set the sign bit of the
 * others. NaN (any payload or sign) maps above +inf, and -0.0 to the key of
 * +0.0, because torch compares -0.0 == 0.0 and a stable sort must then keep
 * them in input order. */
static inline uint32_t f32_key(float f) {
    if (f != f) return 0xFFFFFFFFu;
    if (f == 0.0f) f = 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Stable LSD radix sort of keys k with payload v, 8 bits per pass, using the
 * second pair of buffers; passes whose byte is the same for every key are
 * skipped (common: small integers, values of one sign and exponent range).
 * Returns 0 when the result is in (k, v), 1 when in (k2, v2). */
#define DEFINE_RADIX(NAME, KT, NPASS)                                                              \
    static int NAME(KT *k, int32_t *v, KT *k2, int32_t *v2, int64_t n) {                          \
        uint32_t cnt[NPASS][256];                                                                  \
        memset(cnt, 0, sizeof cnt);                                                                \
        for (int64_t j = 0; j < n; j++) {                                                          \
            KT key = k[j];                                                                         \
            for (int p = 0; p < NPASS; p++) cnt[p][(key >> (8 * p)) & 255u]++;                     \
        }                                                                                          \
        int cur = 0;                                                                               \
        for (int p = 0; p < NPASS; p++) {                                                          \
            uint32_t *c = cnt[p];                                                                  \
            if (c[(k[0] >> (8 * p)) & 255u] == (uint32_t)n) continue;                              \
            uint32_t sum = 0;                                                                      \
            for (int b = 0; b < 256; b++) { uint32_t t = c[b]; c[b] = sum; sum += t; }             \
            for (int64_t j = 0; j < n; j++) {                                                      \
                KT key = k[j];                                                                     \
                uint32_t d = c[(key >> (8 * p)) & 255u]++;                                         \
                k2[d] = key;                                                                       \
                v2[d] = v[j];                                                                      \
            }                                                                                      \
            KT *tk = k; k = k2; k2 = tk;                                                           \
            int32_t *tv = v; v = v2; v2 = tv;                                                      \
            cur ^= 1;                                                                              \
        }                                                                                          \
        return cur;                                                                                \
    }                                                                                              \
    /* stable: an element moves left only past strictly larger keys */                             \
    static void NAME##_insertion(KT *k, int32_t *v, int64_t n) {                                   \
        for (int64_t j = 1; j < n; j++) {                                                          \
            KT key = k[j];                                                                         \
            int32_t val = v[j];                                                                    \
            int64_t i = j;                                                                         \
            while (i > 0 && k[i - 1] > key) { k[i] = k[i - 1]; v[i] = v[i - 1]; i--; }             \
            k[i] = key;                                                                            \
            v[i] = val;                                                                            \
        }                                                                                          \
    }

DEFINE_RADIX(radix_u32, uint32_t, 4)
DEFINE_RADIX(radix_u64, uint64_t, 8)

/* Per slot: two key buffers of up to 8 bytes and two int32 payload buffers. */
static size_t slot_bytes(int64_t n) { return (((size_t)n * 24) + 63) & ~(size_t)63; }

int hm_sort_slots(int64_t rows, int64_t n) {
    int t = hm_max_threads();
    if (rows * n < PARALLEL_WORK || rows < 2) return 1;
    return rows < t ? (int)rows : t;
}

size_t hm_sort_scratch_bytes(int64_t n, int slots) { return slot_bytes(n > 0 ? n : 1) * (size_t)slots; }

/* Sort one row (n >= 1, elements x[j * stride]); returns the payload (positions
 * in ascending key order) and, via nnan, the number of NaNs. */
static const int32_t *sort_row_f32(const float *x, int64_t stride, int64_t n, int descending, char *buf,
                                   int64_t *nnan) {
    uint32_t *k = (uint32_t *)buf, *k2 = k + n;
    int32_t *v = (int32_t *)(buf + (size_t)n * 16), *v2 = v + n;
    uint32_t flip = descending ? 0xFFFFFFFFu : 0u;
    int64_t nan_count = 0;
    for (int64_t j = 0; j < n; j++) {
        uint32_t key = f32_key(x[j * stride]);
        nan_count += key == 0xFFFFFFFFu;
        k[j] = key ^ flip;
        v[j] = (int32_t)j;
    }
    if (nnan) *nnan = nan_count;
    if (n <= SMALL_ROW) { radix_u32_insertion(k, v, n); return v; }
    return radix_u32(k, v, k2, v2, n) ? v2 : v;
}

static const int32_t *sort_row_i64(const int64_t *x, int64_t stride, int64_t n, int descending, char *buf) {
    uint64_t *k = (uint64_t *)buf, *k2 = k + n;
    int32_t *v = (int32_t *)(buf + (size_t)n * 16), *v2 = v + n;
    /* two's complement -> offset binary keeps the order as unsigned */
    uint64_t flip = descending ? ~(uint64_t)0 : 0u;
    for (int64_t j = 0; j < n; j++) {
        k[j] = ((uint64_t)x[j * stride] ^ 0x8000000000000000ull) ^ flip;
        v[j] = (int32_t)j;
    }
    if (n <= SMALL_ROW) { radix_u64_insertion(k, v, n); return v; }
    return radix_u64(k, v, k2, v2, n) ? v2 : v;
}

/* The thread's slot of scratch inside a parallel region of `slots` threads. */
static inline char *my_slot(void *scratch, int64_t n) {
    return (char *)scratch + slot_bytes(n) * (size_t)hm_thread_id();
}

void hm_sort_f32_forward(float *vals, int64_t *idx, const float *x, int64_t outer, int64_t n, int64_t inner,
                         int descending, int slots, void *scratch) {
    int64_t rows = outer * inner;
    if (n <= 0 || rows <= 0) return;
    #pragma omp parallel num_threads(slots) if (slots > 1)
    {
        char *buf = my_slot(scratch, n);
        #pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < rows; r++) {
            int64_t o = r / inner, i = r % inner, base = o * n * inner + i;
            const int32_t *v = sort_row_f32(x + base, inner, n, descending, buf, NULL);
            for (int64_t j = 0; j < n; j++) {
                int64_t src = v[j];
                if (vals) vals[base + j * inner] = x[base + src * inner];
                if (idx) idx[base + j * inner] = src;
            }
        }
    }
}

void hm_sort_i64_forward(int64_t *vals, int64_t *idx, const int64_t *x, int64_t outer, int64_t n, int64_t inner,
                         int descending, int slots, void *scratch) {
    int64_t rows = outer * inner;
    if (n <= 0 || rows <= 0) return;
    #pragma omp parallel num_threads(slots) if (slots > 1)
    {
        char *buf = my_slot(scratch, n);
        #pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < rows; r++) {
            int64_t o = r / inner, i = r % inner, base = o * n * inner + i;
            const int32_t *v = sort_row_i64(x + base, inner, n, descending, buf);
            for (int64_t j = 0; j < n; j++) {
                int64_t src = v[j];
                if (vals) vals[base + j * inner] = x[base + src * inner];
                if (idx) idx[base + j * inner] = src;
            }
        }
    }
}

void hm_sort_backward(float *dx, const float *g, const int64_t *idx, int64_t outer, int64_t n, int64_t inner) {
    int64_t total = outer * n * inner, ni = n * inner;
    /* idx is a permutation along n, so every write lands on its own element:
     * any split of the flat range is race-free */
    #pragma omp parallel for schedule(static) if (total > 65536)
    for (int64_t t = 0; t < total; t++) {
        int64_t o = t / ni, i = t % inner;
        dx[o * ni + idx[t] * inner + i] = g[t];
    }
}

void hm_quantile_forward(float *out, int64_t *lo, int64_t *hi, float *w, const float *x, const float *q, int64_t nq,
                         int64_t outer, int64_t n, int64_t inner, int mode, int ignore_nan, int slots, void *scratch) {
    int64_t rows = outer * inner;
    if (n <= 0 || rows <= 0) return;
    #pragma omp parallel num_threads(slots) if (slots > 1)
    {
        char *buf = my_slot(scratch, n);
        #pragma omp for schedule(dynamic, 1)
        for (int64_t r = 0; r < rows; r++) {
            int64_t o = r / inner, i = r % inner, base = o * n * inner + i;
            int64_t nnan;
            const int32_t *v = sort_row_f32(x + base, inner, n, 0, buf, &nnan);
            int64_t m = n - nnan;   /* NaNs sort last: positions [m, n) */
            for (int64_t k = 0; k < nq; k++) {
                int64_t b, a;
                float wt = 0.0f;
                if (mode == HM_Q_MEDIAN) {
                    int64_t cnt = ignore_nan ? m : n;
                    /* with NaN present torch returns the first NaN (in input order,
                     * which is sorted position m of this stable sort) */
                    b = (!ignore_nan && nnan) ? m : (cnt > 0 ? (cnt - 1) / 2 : 0);
                    a = b;
                } else {
                    /* torch computes the rank in the input's dtype (float32) */
                    float rank;
                    if (ignore_nan) {
                        rank = q[k] * (float)(m - 1);
                        if (rank < 0.0f) rank = 0.0f;     /* all NaN: position 0 holds a NaN */
                    } else if (nnan) {
                        rank = (float)(n - 1);            /* any NaN: the answer is NaN */
                    } else {
                        rank = q[k] * (float)(n - 1);
                    }
                    if (mode == HM_Q_LOWER) rank = floorf(rank);
                    else if (mode == HM_Q_HIGHER) rank = ceilf(rank);
                    else if (mode == HM_Q_NEAREST) rank = rintf(rank);   /* half to even, as torch.round */
                    b = (int64_t)rank;
                    a = b;
                    if (mode == HM_Q_LINEAR || mode == HM_Q_MIDPOINT) {
                        a = (int64_t)ceilf(rank);
                        wt = mode == HM_Q_MIDPOINT ? 0.5f : rank - (float)b;
                    }
                    if (a > n - 1) a = n - 1;
                    if (b > n - 1) b = n - 1;
                }
                int64_t pb = v[b], pa = v[a];
                float vb = x[base + pb * inner], va = x[base + pa * inner], res;
                if (mode == HM_Q_LINEAR || mode == HM_Q_MIDPOINT) {
                    /* torch's lerp: from the nearer end, so w -> 1 gives va exactly;
                     * fused as in its vectorised CPU path */
                    float d = va - vb;
                    res = wt < 0.5f ? fmaf(wt, d, vb) : fmaf(wt - 1.0f, d, va);
                } else {
                    res = vb;
                }
                int64_t oi = k * rows + r;
                out[oi] = res;
                if (lo) lo[oi] = pb;
                if (hi) hi[oi] = pa;
                if (w) w[oi] = wt;
            }
        }
    }
}

void hm_quantile_backward(float *dx, const float *g, const int64_t *lo, const int64_t *hi, const float *w,
                          int64_t nq, int64_t outer, int64_t n, int64_t inner) {
    int64_t rows = outer * inner;
    memset(dx, 0, sizeof(float) * (size_t)(outer * n * inner));
    /* one row per iteration: a row's levels (in fixed order k = 0..nq-1) only
     * touch that row */
    #pragma omp parallel for schedule(static) if (rows * nq > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / inner, i = r % inner, base = o * n * inner + i;
        for (int64_t k = 0; k < nq; k++) {
            int64_t oi = k * rows + r;
            float wt = w ? w[oi] : 0.0f;
            dx[base + lo[oi] * inner] += g[oi] * (1.0f - wt);
            if (wt != 0.0f) dx[base + hi[oi] * inner] += g[oi] * wt;
        }
    }
}

void hm_median_all_backward(float *dx, const float *x, int64_t n, float value, float g) {
    int is_nan = value != value;
    int64_t count = 0;
    for (int64_t j = 0; j < n; j++) count += is_nan ? x[j] != x[j] : x[j] == value;
    float share = count ? g / (float)count : 0.0f;
    for (int64_t j = 0; j < n; j++) dx[j] = (is_nan ? x[j] != x[j] : x[j] == value) ? share : 0.0f;
}
