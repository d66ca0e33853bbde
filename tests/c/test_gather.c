/* Tests of the data-movement kernels (csrc/kernels/gather.c): row gathers, strided
 * copies, jagged <-> padded conversions, finiteness checks and mask compaction, on
 * sizes below and above the OpenMP thresholds. */
#include "check.h"
#include "gather.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_gather_and_copies(void) {
    /* rows of 3 floats; a large case crosses the parallel threshold */
    for (int big = 0; big < 2; big++) {
        int64_t n = big ? 200000 : 7, ni = big ? 150000 : 5;
        float *x = malloc((size_t)n * 3 * sizeof(float)), *out = malloc((size_t)ni * 3 * sizeof(float));
        int64_t *idx = malloc((size_t)ni * sizeof(int64_t));
        for (int64_t i = 0; i < n * 3; i++) x[i] = (float)i;
        for (int64_t j = 0; j < ni; j++) idx[j] = (j * 7919) % n;
        CHECK(hm_index_first_bad(idx, ni, n) == -1);
        hm_gather_rows(out, x, idx, ni, 3 * sizeof(float));
        int ok = 1;
        for (int64_t j = 0; j < ni; j++)
            for (int c = 0; c < 3; c++) ok &= out[3 * j + c] == x[3 * idx[j] + c];
        CHECK(ok);
        idx[ni - 1] = n;
        CHECK(hm_index_first_bad(idx, ni, n) == ni - 1);
        idx[0] = -1;
        CHECK(hm_index_first_bad(idx, ni, n) == 0);

        /* column 1 out of rows of 3, and back */
        float *col = malloc((size_t)n * sizeof(float));
        hm_copy_strided32((uint32_t *)col, 1, (const uint32_t *)x + 1, 3, n);
        ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= col[i] == x[3 * i + 1];
        CHECK(ok);
        float *y = calloc((size_t)n * 3, sizeof(float));
        hm_copy_strided32((uint32_t *)y + 2, 3, (const uint32_t *)col, 1, n);
        ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= y[3 * i + 2] == x[3 * i + 1] && y[3 * i] == 0.0f;
        CHECK(ok);

        hm_copy_bytes(y, x, n * 3 * (int64_t)sizeof(float));
        CHECK(memcmp(x, y, (size_t)n * 3 * sizeof(float)) == 0);
        free(x); free(out); free(idx); free(col); free(y);
    }

    /* a 2-byte block into the middle of 5-byte rows */
    uint8_t src[6] = {1, 2, 3, 4, 5, 6}, dst[15];
    memset(dst, 9, sizeof dst);
    hm_copy_rows_strided(dst + 1, 5, src, 2, 2, 3);
    uint8_t want[15] = {9, 1, 2, 9, 9, 9, 3, 4, 9, 9, 9, 5, 6, 9, 9};
    CHECK(memcmp(dst, want, sizeof dst) == 0);
}

static void test_jagged(void) {
    int32_t counts[4] = {2, 0, 3, 1};
    int64_t off[5];
    CHECK(hm_offsets_from_counts(off, counts, 4, 10, 3) == 16);
    CHECK(off[0] == 10 && off[1] == 12 && off[2] == 12 && off[3] == 15 && off[4] == 16);
    CHECK(hm_offsets_check(off, 4, 6) == 0);
    CHECK(hm_offsets_check(off, 4, 5) != 0);
    counts[2] = 4;
    CHECK(hm_offsets_from_counts(off, counts, 4, 0, 3) == -1); /* above max_count */
    counts[2] = -1;
    CHECK(hm_offsets_from_counts(off, counts, 4, 0, 3) == -1);
    counts[2] = 3;
    hm_offsets_from_counts(off, counts, 4, 0, 3);

    /* padded [4, 3, 2] -> flat [6, 2] */
    float padded[24], flat[12];
    for (int i = 0; i < 24; i++) padded[i] = (float)(i + 1);
    hm_jagged_from_padded(flat, padded, off, 4, 3, 2);
    float want[12] = {1, 2, 3, 4, 13, 14, 15, 16, 17, 18, 19, 20};
    CHECK(memcmp(flat, want, sizeof want) == 0);

    int64_t bad_off[3] = {0, 2, 1};
    CHECK(hm_offsets_check(bad_off, 2, 10) == 3);
    bad_off[0] = -1;
    CHECK(hm_offsets_check(bad_off, 2, 10) == 1);

    /* finiteness of jagged events */
    uint8_t ok[4] = {1, 1, 1, 1};
    flat[5] = NAN; /* event 2, first object */
    CHECK(hm_jagged_rows_finite_and(ok, flat, off, 4, 2) == 1);
    CHECK(ok[0] && ok[1] && !ok[2] && ok[3]);
}

static void test_finite_and_masks(void) {
    int64_t n = 100000;
    float *x = malloc((size_t)n * 4 * sizeof(float));
    uint8_t *ok = malloc((size_t)n);
    for (int64_t i = 0; i < n * 4; i++) x[i] = (float)(i % 97) - 40.0f;
    memset(ok, 1, (size_t)n);
    x[4 * 10 + 3] = NAN;
    x[4 * 500 + 0] = INFINITY;
    x[4 * 99999 + 2] = -INFINITY;
    CHECK(hm_rows_finite_and(ok, x, n, 4) == 3);
    CHECK(!ok[10] && !ok[500] && !ok[99999] && ok[11]);
    /* a second array: its own count is returned, the mask accumulates */
    x[4 * 10 + 3] = 0.0f;
    x[4 * 7 + 1] = NAN;
    CHECK(hm_rows_finite_and(ok, x, n, 4) == 3);
    CHECK(!ok[7] && !ok[10]);
    CHECK(hm_mask_count(ok, n) == n - 4);
    int64_t *idx = malloc((size_t)n * sizeof(int64_t));
    CHECK(hm_mask_to_index(idx, ok, n) == n - 4);
    CHECK(idx[0] == 0 && idx[7] == 8 && idx[9] == 11 && idx[n - 5] == 99998);
    free(x); free(ok); free(idx);
}

int main(void) {
    test_gather_and_copies();
    test_jagged();
    test_finite_and_masks();
    return CHECK_REPORT();
}
