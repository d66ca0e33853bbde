/* Data-movement kernels: see gather.h for the contracts. */
#include "gather.h"

#include <math.h>
#include <string.h>

/* Below this many bytes a copy stays on one thread: fork/join costs a few us, a
 * memcpy of 256 KiB about as much. */
#define HM_GATHER_PAR_BYTES (256 * 1024)

int64_t hm_index_first_bad(const int64_t *idx, int64_t n_idx, int64_t n_rows) {
    for (int64_t j = 0; j < n_idx; j++)
        if (idx[j] < 0 || idx[j] >= n_rows) return j;
    return -1;
}

void hm_gather_rows(void *out, const void *in, const int64_t *idx, int64_t n_idx, int64_t row_bytes) {
    uint8_t *o = (uint8_t *)out;
    const uint8_t *s = (const uint8_t *)in;
    /* Static schedule: rows cost the same (a page fault on a cold memory-mapped row
     * is the exception, and it is spread evenly by a random batch anyway). */
    #pragma omp parallel for schedule(static) if (n_idx * row_bytes > HM_GATHER_PAR_BYTES)
    for (int64_t j = 0; j < n_idx; j++)
        memcpy(o + j * row_bytes, s + idx[j] * row_bytes, (size_t)row_bytes);
}

void hm_copy_bytes(void *out, const void *in, int64_t n) {
    if (n <= 0) return;
    if (n <= 4 * HM_GATHER_PAR_BYTES) {
        memcpy(out, in, (size_t)n);
        return;
    }
    /* Fixed 1 MiB blocks: each thread copies whole blocks, so a fresh output mapping is
     * faulted in by both cores (page faults, not bandwidth, bound a first-touch copy). */
    const int64_t block = 1 << 20;
    int64_t nb = (n + block - 1) / block;
    #pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t a = b * block, len = a + block < n ? block : n - a;
        memcpy((uint8_t *)out + a, (const uint8_t *)in + a, (size_t)len);
    }
}

void hm_copy_strided32(uint32_t *out, int64_t out_stride, const uint32_t *in, int64_t in_stride, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > HM_GATHER_PAR_BYTES)
    for (int64_t i = 0; i < n; i++) out[i * out_stride] = in[i * in_stride];
}

void hm_copy_rows_strided(uint8_t *out, int64_t out_stride, const uint8_t *in, int64_t in_stride,
                          int64_t row_bytes, int64_t n) {
    #pragma omp parallel for schedule(static) if (n * row_bytes > HM_GATHER_PAR_BYTES)
    for (int64_t r = 0; r < n; r++) memcpy(out + r * out_stride, in + r * in_stride, (size_t)row_bytes);
}

int64_t hm_offsets_from_counts(int64_t *offsets, const int32_t *counts, int64_t n, int64_t base,
                               int64_t max_count) {
    int64_t t = base;
    offsets[0] = base;
    for (int64_t i = 0; i < n; i++) {
        if (counts[i] < 0 || counts[i] > max_count) return -1;
        t += counts[i];
        offsets[i + 1] = t;
    }
    return t;
}

void hm_jagged_from_padded(float *flat, const float *padded, const int64_t *offsets, int64_t n, int64_t k,
                           int64_t f) {
    int64_t base = n > 0 ? offsets[0] : 0;
    #pragma omp parallel for schedule(static) if (n * k * f > HM_GATHER_PAR_BYTES / 4)
    for (int64_t i = 0; i < n; i++) {
        int64_t cnt = offsets[i + 1] - offsets[i];
        memcpy(flat + (offsets[i] - base) * f, padded + i * k * f, (size_t)(cnt * f) * sizeof(float));
    }
}

int64_t hm_offsets_check(const int64_t *offsets, int64_t n, int64_t n_flat) {
    if (offsets[0] < 0) return 1;
    for (int64_t i = 0; i < n; i++)
        if (offsets[i + 1] < offsets[i]) return i + 2;
    if (offsets[n] - offsets[0] > n_flat) return n + 1;
    return 0;
}

/* isfinite on the bits would be faster, but -ffast-math is not used, so isfinite is
 * reliable and the loop still vectorises: x - x is 0 for finite x and NaN otherwise. */
static inline int row_finite(const float *r, int64_t len) {
    float acc = 0.0f;
    for (int64_t j = 0; j < len; j++) acc += r[j] - r[j];
    return acc == 0.0f;
}

int64_t hm_rows_finite_and(uint8_t *ok, const float *x, int64_t n, int64_t row_len) {
    int64_t bad = 0;
    #pragma omp parallel for schedule(static) reduction(+:bad) if (n * row_len > HM_GATHER_PAR_BYTES)
    for (int64_t r = 0; r < n; r++) {
        if (!row_finite(x + r * row_len, row_len)) {
            ok[r] = 0;
            bad++;
        }
    }
    return bad;
}

int64_t hm_jagged_rows_finite_and(uint8_t *ok, const float *flat, const int64_t *offsets, int64_t n, int64_t f) {
    int64_t bad = 0, base = n > 0 ? offsets[0] : 0;
    #pragma omp parallel for schedule(static) reduction(+:bad) if (n > HM_GATHER_PAR_BYTES / 16)
    for (int64_t i = 0; i < n; i++) {
        const float *r = flat + (offsets[i] - base) * f;
        if (!row_finite(r, (offsets[i + 1] - offsets[i]) * f)) {
            ok[i] = 0;
            bad++;
        }
    }
    return bad;
}

int64_t hm_mask_count(const uint8_t *mask, int64_t n) {
    int64_t c = 0;
    #pragma omp parallel for schedule(static) reduction(+:c) if (n > 4 * HM_GATHER_PAR_BYTES)
    for (int64_t i = 0; i < n; i++) c += mask[i] != 0;
    return c;
}

int64_t hm_mask_to_index(int64_t *idx, const uint8_t *mask, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        if (mask[i]) idx[c++] = i;
    return c;
}
