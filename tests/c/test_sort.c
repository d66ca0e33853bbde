/* Tests of the sorting kernels (csrc/kernels/sort.c): stable order with ties,
 * NaN and signed zeros, strided rows (inner > 1), int64 keys, quantile ranks
 * and weights, the backward scatters, on rows below and above the
 * insertion-sort cut-off and work below and above the parallel threshold. */
#include "check.h"
#include "sort.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Is row r of the [outer, n, inner] result a stable ascending (or descending)
 * sort of x, with vals == x[idx]? */
static int row_ok(const float *vals, const int64_t *idx, const float *x, int64_t n, int64_t inner, int64_t base,
                  int desc) {
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t j = 0; j < n; j++) {
        int64_t p = idx[base + j * inner];
        if (p < 0 || p >= n || seen[p]) { ok = 0; break; }
        seen[p] = 1;
        float v = vals[base + j * inner], src = x[base + p * inner];
        ok &= (v == src) || (v != v && src != src);
        if (j > 0) {
            float u = vals[base + (j - 1) * inner];
            int64_t pu = idx[base + (j - 1) * inner];
            int unan = u != u, vnan = v != v;
            /* NaN is the largest value; equal values keep input order */
            int less = unan ? 0 : (vnan ? 1 : u < v), equal = (unan && vnan) || u == v;
            int greater = !less && !equal;
            if (desc) ok &= greater || (equal && pu < p);
            else ok &= less || (equal && pu < p);
        }
    }
    free(seen);
    return ok;
}

static void test_sort_f32(void) {
    const int64_t cases[][3] = {{1, 1, 1}, {1, 7, 1}, {3, 32, 2}, {2, 33, 1}, {5, 1000, 3}, {1, 70000, 1}, {40, 600, 1}};
    uint64_t seed = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t outer = cases[c][0], n = cases[c][1], inner = cases[c][2], total = outer * n * inner;
        float *x = malloc((size_t)total * sizeof(float)), *vals = malloc((size_t)total * sizeof(float));
        int64_t *idx = malloc((size_t)total * sizeof(int64_t));
        for (int64_t t = 0; t < total; t++) {
            uint64_t r = lcg(&seed) % 1000;
            x[t] = r < 20 ? NAN : r < 40 ? -0.0f : r < 60 ? 0.0f : r < 70 ? INFINITY : r < 80 ? -INFINITY
                 : (float)((int)(r % 50) - 25) * 0.5f;   /* many ties */
        }
        for (int desc = 0; desc < 2; desc++) {
            int slots = hm_sort_slots(outer * inner, n);
            void *scr = malloc(hm_sort_scratch_bytes(n, slots));
            hm_sort_f32_forward(vals, idx, x, outer, n, inner, desc, slots, scr);
            int ok = 1;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) ok &= row_ok(vals, idx, x, n, inner, o * n * inner + i, desc);
            CHECK(ok);
            /* indices only */
            int64_t *idx2 = malloc((size_t)total * sizeof(int64_t));
            hm_sort_f32_forward(NULL, idx2, x, outer, n, inner, desc, 1, scr);
            CHECK(memcmp(idx, idx2, (size_t)total * sizeof(int64_t)) == 0);
            free(idx2);
            free(scr);
        }
        /* backward: the inverse permutation of the values' gradient */
        float *g = malloc((size_t)total * sizeof(float)), *dx = malloc((size_t)total * sizeof(float));
        for (int64_t t = 0; t < total; t++) g[t] = (float)t;
        hm_sort_backward(dx, g, idx, outer, n, inner);
        int ok = 1;
        for (int64_t t = 0; t < total; t++) {
            int64_t o = t / (n * inner), i = t % inner;
            ok &= dx[o * n * inner + idx[t] * inner + i] == g[t];
        }
        CHECK(ok);
        free(g); free(dx); free(x); free(vals); free(idx);
    }
}

static void test_sort_i64(void) {
    int64_t n = 500;
    int64_t *x = malloc((size_t)n * sizeof(int64_t)), *vals = malloc((size_t)n * sizeof(int64_t));
    int64_t *idx = malloc((size_t)n * sizeof(int64_t));
    uint64_t seed = 7;
    for (int64_t j = 0; j < n; j++) x[j] = (int64_t)(lcg(&seed) % 41) - 20 + (j % 97 == 0 ? INT64_MIN / 2 : 0);
    x[3] = INT64_MIN;
    x[4] = INT64_MAX;
    void *scr = malloc(hm_sort_scratch_bytes(n, 1));
    for (int desc = 0; desc < 2; desc++) {
        hm_sort_i64_forward(vals, idx, x, 1, n, 1, desc, 1, scr);
        int ok = 1;
        for (int64_t j = 0; j < n; j++) {
            ok &= vals[j] == x[idx[j]];
            if (j) {
                int64_t u = vals[j - 1], v = vals[j];
                ok &= desc ? (u > v || (u == v && idx[j - 1] < idx[j])) : (u < v || (u == v && idx[j - 1] < idx[j]));
            }
        }
        CHECK(ok);
        CHECK(vals[desc ? n - 1 : 0] == INT64_MIN && vals[desc ? 0 : n - 1] == INT64_MAX);
    }
    free(scr); free(x); free(vals); free(idx);
}

static void test_quantile(void) {
    /* one row 0..9 shuffled, inner = 2 (second column = 10 * first) */
    const float perm[10] = {3, 7, 0, 9, 1, 8, 2, 6, 4, 5};
    float x[20];
    for (int j = 0; j < 10; j++) { x[2 * j] = perm[j]; x[2 * j + 1] = 10.0f * perm[j]; }
    const float q[3] = {0.0f, 0.25f, 0.5f};   /* ranks 0, 2.25, 4.5 */
    float out[6], w[6];
    int64_t lo[6], hi[6];
    void *scr = malloc(hm_sort_scratch_bytes(10, 1));
    hm_quantile_forward(out, lo, hi, w, x, q, 3, 1, 10, 2, HM_Q_LINEAR, 0, 1, scr);
    CHECK_CLOSE(out[0], 0.0, 0, 0);
    CHECK_CLOSE(out[2], 2.25, 1e-6, 0);
    CHECK_CLOSE(out[3], 22.5, 1e-5, 0);
    CHECK_CLOSE(out[4], 4.5, 1e-6, 0);
    CHECK(perm[lo[4]] == 4.0f && perm[hi[4]] == 5.0f && w[4] == 0.5f);
    hm_quantile_forward(out, lo, hi, w, x, q, 3, 1, 10, 2, HM_Q_NEAREST, 0, 1, scr);
    CHECK(out[2] == 2.0f && out[4] == 4.0f);   /* 4.5 rounds half to even */
    hm_quantile_forward(out, lo, hi, w, x, q, 3, 1, 10, 2, HM_Q_HIGHER, 0, 1, scr);
    CHECK(out[2] == 3.0f && out[5] == 50.0f);
    hm_quantile_forward(out, lo, hi, w, x, q, 1, 1, 10, 2, HM_Q_MEDIAN, 0, 1, scr);
    CHECK(out[0] == 4.0f && out[1] == 40.0f && perm[lo[0]] == 4.0f);   /* the lower middle value */

    /* backward: weights (1 - w, w) onto the two order statistics */
    hm_quantile_forward(out, lo, hi, w, x, q, 3, 1, 10, 2, HM_Q_LINEAR, 0, 1, scr);
    float g[6] = {1, 1, 1, 1, 1, 1}, dx[20];
    hm_quantile_backward(dx, g, lo, hi, w, 3, 1, 10, 2);
    float sum = 0.0f;
    for (int j = 0; j < 20; j++) sum += dx[j];
    CHECK_CLOSE(sum, 6.0, 1e-6, 0);
    CHECK_CLOSE(dx[2 * 2 + 0], 1.0, 0, 0);                  /* x = 0 at j = 2: all of q = 0 */
    CHECK_CLOSE(dx[2 * 6 + 0], 0.75, 1e-6, 0);              /* x = 2 at j = 6: 1 - 0.25 */

    /* NaN: quantile NaN, nanquantile ignores it, median picks the first NaN */
    float y[5] = {NAN, 1.0f, NAN, 3.0f, 2.0f};
    float half = 0.5f, o1;
    int64_t l1, h1;
    hm_quantile_forward(&o1, &l1, &h1, NULL, y, &half, 1, 1, 5, 1, HM_Q_LINEAR, 0, 1, scr);
    CHECK(o1 != o1);
    hm_quantile_forward(&o1, &l1, &h1, NULL, y, &half, 1, 1, 5, 1, HM_Q_LINEAR, 1, 1, scr);
    CHECK(o1 == 2.0f && l1 == 4);
    hm_quantile_forward(&o1, &l1, &h1, NULL, y, &half, 1, 1, 5, 1, HM_Q_MEDIAN, 0, 1, scr);
    CHECK(o1 != o1 && l1 == 0);
    float allnan[3] = {NAN, NAN, NAN};
    hm_quantile_forward(&o1, &l1, &h1, NULL, allnan, &half, 1, 1, 3, 1, HM_Q_LINEAR, 1, 1, scr);
    CHECK(o1 != o1);
    free(scr);

    /* evenly shared gradient of median() over ties */
    float t[5] = {1, 2, 2, 3, 2}, dt[5];
    hm_median_all_backward(dt, t, 5, 2.0f, 3.0f);
    CHECK(dt[0] == 0.0f && dt[1] == 1.0f && dt[2] == 1.0f && dt[4] == 1.0f && dt[3] == 0.0f);
}

static void test_parallel_matches_serial(void) {
    int64_t rows = 9, n = 5000, total = rows * n;
    float *x = malloc((size_t)total * sizeof(float));
    uint64_t seed = 3;
    for (int64_t t = 0; t < total; t++) x[t] = (float)(lcg(&seed) % 100000) * 1e-3f - 40.0f;
    const float q[4] = {0.01f, 0.3f, 0.5f, 0.99f};
    float a[36], b[36];
    int64_t la[36], lb[36];
    int slots = hm_sort_slots(rows, n);
    void *s1 = malloc(hm_sort_scratch_bytes(n, 1)), *s2 = malloc(hm_sort_scratch_bytes(n, slots));
    hm_quantile_forward(a, la, NULL, NULL, x, q, 4, 1, n, rows, HM_Q_LINEAR, 0, 1, s1);
    hm_quantile_forward(b, lb, NULL, NULL, x, q, 4, 1, n, rows, HM_Q_LINEAR, 0, slots, s2);
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(la, lb, sizeof la) == 0);
    free(s1); free(s2); free(x);
}

int main(void) {
    test_sort_f32();
    test_sort_i64();
    test_quantile();
    test_parallel_matches_serial();
    return CHECK_REPORT();
}
