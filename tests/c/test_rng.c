/* The RNG: determinism, thread-count independence, distribution moments. */
#include "check.h"
#include "rng.h"
#include <omp.h>
#include <string.h>

int main(void) {
    enum { N = 200001 };
    static float a[N], b[N];
    omp_set_num_threads(1);
    hm_rand_normal(a, N, 42, 0, 0.0f, 1.0f);
    omp_set_num_threads(2);
    hm_rand_normal(b, N, 42, 0, 0.0f, 1.0f);
    CHECK(memcmp(a, b, sizeof a) == 0);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++) m += a[i];
    m /= N;
    for (int i = 0; i < N; i++) v += (a[i] - m) * (a[i] - m);
    v /= N;
    CHECK_CLOSE(m, 0.0, 0.01, 0);
    CHECK_CLOSE(v, 1.0, 0.02, 0);
    /* an offset continues the same sequence */
    hm_rand_normal(b, 100, 42, 1000, 0.0f, 1.0f);
    CHECK(memcmp(a + 1000, b, 100 * sizeof(float)) == 0);
    hm_rand_uniform(a, N, 7, 0, 2.0f, 3.0f);
    float lo = 10, hi = -10;
    for (int i = 0; i < N; i++) { lo = a[i] < lo ? a[i] : lo; hi = a[i] > hi ? a[i] : hi; }
    CHECK(lo >= 2.0f && hi < 3.0f && lo < 2.01f && hi > 2.99f);
    static int64_t perm[1000];
    static uint64_t keys[2000];
    hm_rand_perm(perm, keys, 1000, 3, 0);
    static char seen[1000];
    int ok = 1;
    for (int i = 0; i < 1000; i++) { if (perm[i] < 0 || perm[i] >= 1000 || seen[perm[i]]) ok = 0; else seen[perm[i]] = 1; }
    CHECK(ok);
    hm_rand_dropout_mask(a, N, 5, 0, 0.25f);
    int kept = 0;
    for (int i = 0; i < N; i++) { kept += a[i] != 0; if (a[i] != 0) CHECK_CLOSE(a[i], 1.0 / 0.75, 1e-6, 0); }
    CHECK_CLOSE((double)kept / N, 0.75, 0.01, 0);
    /* The mask is word g & 3 of Philox block g >> 2 for global counter g, whatever
     * the offset and length (the bulk fill walks eight blocks at a time, with its
     * own vector Philox: check it against one block at a time at every alignment,
     * with 1 and 2 threads). */
    static const int64_t lens[] = {1, 3, 4, 5, 31, 32, 33, 100, 1000, 70001};
    static const uint64_t offs[] = {0, 1, 2, 3, 5, 31, 33, 1000003, ((uint64_t)1 << 34) + 7};
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (int i = 0; i < 10; i++)
            for (int j = 0; j < 9; j++) {
                hm_rand_dropout_mask(a, lens[i], 99, offs[j], 0.3f);
                int same = 1;
                for (int64_t e = 0; e < lens[i]; e++) {
                    uint64_t g = offs[j] + (uint64_t)e;
                    uint32_t r[4];
                    hm_philox_block(99, HM_STREAM_DROPOUT, g >> 2, r);
                    float want = ((uint64_t)r[g & 3] >= (uint64_t)(0.3 * 4294967296.0)) ? 1.0f / 0.7f : 0.0f;
                    if (a[e] != want) same = 0;
                }
                CHECK(same);
            }
    }
    return CHECK_REPORT();
}
