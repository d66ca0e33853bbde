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
    return CHECK_REPORT();
}
