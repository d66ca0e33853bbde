/* Tests of the fused attention kernels (csrc/kernels/attention.c):
 *  - forward against a straightforward double-precision reference written
 *    from the definition (every mask type, shared and per-head masks, causal
 *    with L != S, fully masked rows, dropout, shapes that take the heap path),
 *  - backward against central finite differences of that reference,
 *  - the dropout mask equals hm_rand_dropout_mask laid out as [B, H, L, S],
 *  - identical bytes with 1 and 2 threads,
 *  - a timing at the course's shape (printed, never asserted).
 * Everything runs twice: through the public functions (AVX2 path on CPUs that
 * have it) and through the portable path, compiled into this file below. */
#include "attention.h"
#include "rng.h"
#include "check.h"

/* The portable implementation under other names: attention.c compiled a
 * second time with its SIMD path switched off. Its static helpers stay local
 * to this file, so linking with every kernel file is unaffected. */
#define HM_ATTN_PORTABLE_ONLY
#define hm_attention_forward test_attention_forward_portable
#define hm_attention_backward test_attention_backward_portable
#define hm_attention_forward_strided test_attention_forward_strided_portable
#define hm_attention_backward_strided test_attention_backward_strided_portable
#include "attention.c"
#undef hm_attention_forward
#undef hm_attention_backward
#undef hm_attention_forward_strided
#undef hm_attention_backward_strided
#undef HM_ATTN_PORTABLE_ONLY

typedef int (*fwd_fn)(float *, float *, float *, const float *, const float *, const float *, const uint8_t *,
                      const uint8_t *, const float *, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, float,
                      float, uint64_t, uint64_t);
typedef int (*bwd_fn)(float *, float *, float *, const float *, const float *, const float *, const float *,
                      const float *, const uint8_t *, const uint8_t *, const float *, int, int, int64_t, int64_t,
                      int64_t, int64_t, int64_t, float, float, uint64_t, uint64_t);
static fwd_fn FWD = hm_attention_forward;
static bwd_fn BWD = hm_attention_backward;

#include <stdint.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int64_t B, H, L, S, D;
    const uint8_t *kpm, *bm;
    const float *fm;
    int per_head, causal;
    float scale, p;
    uint64_t seed, offset;
} cfg;

/* ---- small deterministic input generator (independent of the kernels) ---- */
static uint64_t lcg_state = 12345;
static double urand(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * (1.0 / 9007199254740992.0);
}
static void fill(float *x, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * urand());
}
static double *to_double(const float *x, int64_t n) {
    double *y = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

/* ---- the reference, in double, straight from the definition in attention.h ---- */
static int ref_keep(const cfg *c, int64_t b, int64_t h, int64_t i, int64_t j) {
    uint64_t g = c->offset + (uint64_t)(((b * c->H + h) * c->L + i) * c->S + j);
    uint32_t r[4];
    hm_philox_block(c->seed, HM_STREAM_DROPOUT, g >> 2, r);
    return (uint64_t)r[g & 3] >= (uint64_t)((double)c->p * 4294967296.0);
}

/* out [B, L, E]; probs [B, H, L, S] (pre-dropout) and lse [B, H, L] optional. */
static void ref_forward(double *out, double *probs, double *lse, const double *q, const double *k,
                        const double *v, const cfg *c) {
    const int64_t B = c->B, H = c->H, L = c->L, S = c->S, D = c->D, E = H * D;
    double *s = malloc((size_t)(S > 0 ? S : 1) * sizeof(double));
    char *dead = malloc((size_t)(S > 0 ? S : 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < L; i++) {
                const int64_t slab = c->per_head ? (b * H + h) * L * S : 0;
                double m = -INFINITY;
                for (int64_t j = 0; j < S; j++) {
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++)
                        dot += q[(b * L + i) * E + h * D + d] * k[(b * S + j) * E + h * D + d];
                    s[j] = (double)c->scale * dot + (c->fm ? (double)c->fm[slab + i * S + j] : 0.0);
                    dead[j] = (c->kpm && c->kpm[b * S + j]) || (c->bm && c->bm[slab + i * S + j]) ||
                              (c->causal && j > i) || s[j] == -INFINITY;
                    if (!dead[j] && s[j] > m) m = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < S; j++) sum += dead[j] ? 0.0 : exp(s[j] - m);
                const int empty = m == -INFINITY;
                if (lse) lse[(b * H + h) * L + i] = empty ? -INFINITY : m + log(sum);
                double *o = out + (b * L + i) * E + h * D;
                for (int64_t d = 0; d < D; d++) o[d] = 0;
                for (int64_t j = 0; j < S; j++) {
                    double pj = (empty || dead[j]) ? 0.0 : exp(s[j] - m) / sum;
                    if (probs) probs[((b * H + h) * L + i) * S + j] = pj;
                    if (c->p > 0) pj = ref_keep(c, b, h, i, j) && c->p < 1 ? pj / (1.0 - (double)c->p) : 0.0;
                    for (int64_t d = 0; d < D; d++) o[d] += pj * v[(b * S + j) * E + h * D + d];
                }
            }
    free(s);
    free(dead);
}

static int has_nan(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isnan(x[i])) return 1;
    return 0;
}

/* Forward vs reference; backward vs central differences of the reference
 * with loss = sum(out * W), so dout = W. */
static void check_case(const char *name, const cfg *c, int grad) {
    const int64_t B = c->B, H = c->H, L = c->L, S = c->S, D = c->D, E = H * D;
    const int64_t nq = B * L * E, nk = B * S * E, np = B * H * L * S, nl = B * H * L;
    float *q = malloc(nq * sizeof(float)), *k = malloc(nk * sizeof(float)), *v = malloc(nk * sizeof(float));
    float *w = malloc(nq * sizeof(float));
    fill(q, nq, -1.5, 1.5);
    fill(k, nk, -1.5, 1.5);
    fill(v, nk, -1, 1);
    fill(w, nq, -1, 1);
    float *out = malloc(nq * sizeof(float)), *probs = malloc(np * sizeof(float)), *lse = malloc(nl * sizeof(float));
    int rc = FWD(out, probs, lse, q, k, v, c->kpm, c->bm, c->fm, c->per_head, c->causal,
                                  B, H, L, S, D, c->scale, c->p, c->seed, c->offset);
    CHECK(rc == 0);
    double *qd = to_double(q, nq), *kd = to_double(k, nk), *vd = to_double(v, nk);
    double *ro = malloc(nq * sizeof(double)), *rp = malloc(np * sizeof(double)), *rl = malloc(nl * sizeof(double));
    ref_forward(ro, rp, rl, qd, kd, vd, c);
    int fails0 = hm_check_failures;
    CHECK(!has_nan(out, nq));
    CHECK(!has_nan(probs, np));
    for (int64_t t = 0; t < nq; t++) CHECK_CLOSE(out[t], ro[t], 2e-6, 2e-5);
    for (int64_t t = 0; t < np; t++) CHECK_CLOSE(probs[t], rp[t], 1e-7, 2e-5);
    for (int64_t t = 0; t < nl; t++) {
        if (rl[t] == -INFINITY) CHECK(lse[t] == -INFINITY);
        else CHECK_CLOSE(lse[t], rl[t], 2e-6, 2e-6);
    }
    /* Without the probabilities the output must be the same bytes. */
    float *out2 = malloc(nq * sizeof(float));
    FWD(out2, NULL, lse, q, k, v, c->kpm, c->bm, c->fm, c->per_head, c->causal,
                         B, H, L, S, D, c->scale, c->p, c->seed, c->offset);
    CHECK(memcmp(out, out2, nq * sizeof(float)) == 0);

    if (grad) {
        float *dq = malloc(nq * sizeof(float)), *dk = malloc(nk * sizeof(float)), *dv = malloc(nk * sizeof(float));
        /* Poison the outputs: backward must overwrite every element. */
        for (int64_t t = 0; t < nq; t++) dq[t] = NAN;
        for (int64_t t = 0; t < nk; t++) dk[t] = dv[t] = NAN;
        rc = BWD(dq, dk, dv, w, q, k, v, lse, c->kpm, c->bm, c->fm, c->per_head, c->causal,
                                   B, H, L, S, D, c->scale, c->p, c->seed, c->offset);
        CHECK(rc == 0);
        CHECK(!has_nan(dq, nq) && !has_nan(dk, nk) && !has_nan(dv, nk));
        double *tmp = malloc(nq * sizeof(double));
        const double eps = 1e-4;
        struct { double *x; const float *g; int64_t n; } vars[3] = {{qd, dq, nq}, {kd, dk, nk}, {vd, dv, nk}};
        for (int a = 0; a < 3; a++)
            for (int64_t t = 0; t < vars[a].n; t++) {
                double x0 = vars[a].x[t], lp = 0, lm = 0;
                vars[a].x[t] = x0 + eps;
                ref_forward(tmp, NULL, NULL, qd, kd, vd, c);
                for (int64_t u = 0; u < nq; u++) lp += tmp[u] * w[u];
                vars[a].x[t] = x0 - eps;
                ref_forward(tmp, NULL, NULL, qd, kd, vd, c);
                for (int64_t u = 0; u < nq; u++) lm += tmp[u] * w[u];
                vars[a].x[t] = x0;
                CHECK_CLOSE(vars[a].g[t], (lp - lm) / (2 * eps), 3e-5, 1e-3);
            }
        /* Rows with nothing to attend to get exactly zero gradient. */
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < L; i++)
                    if (rl[(b * H + h) * L + i] == -INFINITY)
                        for (int64_t d = 0; d < D; d++) CHECK(dq[(b * L + i) * E + h * D + d] == 0.0f);
        free(tmp);
        free(dq);
        free(dk);
        free(dv);
    }
    printf("  %-44s %s\n", name, hm_check_failures == fails0 ? "ok" : "FAILED");
    free(q); free(k); free(v); free(w); free(out); free(out2); free(probs); free(lse);
    free(qd); free(kd); free(vd); free(ro); free(rp); free(rl);
}

static cfg base(int64_t B, int64_t H, int64_t L, int64_t S, int64_t D) {
    cfg c;
    memset(&c, 0, sizeof c);
    c.B = B; c.H = H; c.L = L; c.S = S; c.D = D;
    c.scale = 1.0f / sqrtf((float)D);
    c.seed = 0x5EEDull;
    c.offset = 0;
    return c;
}

static void test_cases(void) {
    printf("forward vs double reference, backward vs finite differences:\n");
    const int64_t B = 2, H = 2, L = 3, S = 5, D = 4;
    cfg c = base(B, H, L, S, D);
    check_case("no mask", &c, 1);

    /* Batch 1 pads every key: all its rows are fully masked. */
    uint8_t kpm[2 * 5] = {0, 0, 1, 0, 1, 1, 1, 1, 1, 1};
    c = base(B, H, L, S, D);
    c.kpm = kpm;
    check_case("key padding (batch 1 fully padded)", &c, 1);

    uint8_t bm[3 * 5] = {0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0};
    c = base(B, H, L, S, D);
    c.bm = bm;
    check_case("bool mask (L,S), row 1 fully masked", &c, 1);

    uint8_t bmh[2 * 2 * 3 * 5];
    for (int t = 0; t < 60; t++) bmh[t] = urand() < 0.35;
    for (int t = 0; t < 5; t++) bmh[3 * 15 + 5 + t] = 1; /* (b=1, h=1) row 1 */
    c = base(B, H, L, S, D);
    c.bm = bmh;
    c.per_head = 1;
    check_case("bool mask (B*H,L,S) per head", &c, 1);

    float fm[3 * 5];
    fill(fm, 15, -2, 2);
    fm[3] = -INFINITY;
    c = base(B, H, L, S, D);
    c.fm = fm;
    check_case("float mask (L,S) with a -inf", &c, 1);

    float fmh[2 * 2 * 3 * 5];
    fill(fmh, 60, -3, 1);
    for (int t = 0; t < 5; t++) fmh[2 * 15 + 10 + t] = -INFINITY; /* (b=1, h=0) row 2 */
    fmh[7] = -1e9f;                                             /* finite: an ordinary score */
    c = base(B, H, L, S, D);
    c.fm = fmh;
    c.per_head = 1;
    check_case("float mask (B*H,L,S), one row all -inf", &c, 1);

    c = base(B, H, 5, 3, D);
    c.causal = 1;
    check_case("causal, L=5 > S=3", &c, 1);
    c = base(B, H, 3, 5, D);
    c.causal = 1;
    check_case("causal, L=3 < S=5", &c, 1);

    /* Everything at once: padding + causal + bool + float, per head. */
    uint8_t kpm2[2 * 5] = {1, 0, 0, 1, 0, 0, 0, 0, 0, 1};
    c = base(B, H, L, S, D);
    c.kpm = kpm2;
    c.causal = 1; /* row 0 of batch 0 then has key 0 only, which is padded: fully masked */
    c.bm = bmh;
    c.fm = fmh;
    c.per_head = 1;
    check_case("padding + causal + bool + float per head", &c, 1);

    c = base(B, H, L, S, D);
    c.p = 0.3f;
    c.seed = 77;
    c.offset = 6; /* not block-aligned */
    check_case("dropout 0.3", &c, 1);
    c.kpm = kpm;
    c.causal = 1;
    check_case("dropout 0.3 + padding + causal", &c, 1);
    c = base(B, H, L, S, D);
    c.p = 1.0f;
    check_case("dropout 1.0 (all dropped)", &c, 1);

    /* Odd sizes, a single key, many row groups of dropout words. */
    c = base(1, 3, 7, 9, 5);
    c.p = 0.5f;
    c.offset = 3;
    check_case("H=3 L=7 S=9 D=5, dropout", &c, 1);
    c = base(2, 1, 2, 1, 3);
    check_case("S=1", &c, 1);
    c = base(1, 2, 6, 11, 20); /* D = 16 + a 4-column tail, 6 = 4 + 2 rows */
    c.causal = 1;
    c.p = 0.15f;
    check_case("H=2 L=6 S=11 D=20 causal dropout", &c, 1);
    c = base(2, 2, 3, 0, 4);
    c.p = 0.5f;
    check_case("S=0 (no keys: zero output)", &c, 1);
    c = base(2, 2, 0, 4, 4);
    check_case("L=0 (no queries: zero dk, dv)", &c, 1);
    c = base(1, 2, 40, 16, 8);
    c.p = 0.2f;
    c.offset = 1001;
    c.causal = 1;
    check_case("L=40 S=16 D=8 causal dropout (3 row groups)", &c, 0);

    /* Shapes beyond the per-thread stack scratch take the heap path. */
    c = base(1, 1, 3, 1100, 4);
    check_case("S=1100 (heap scratch)", &c, 0);
    c = base(1, 2, 4, 70, 64);
    c.causal = 1;
    c.p = 0.1f;
    check_case("S=70 D=64 (heap scratch), causal dropout", &c, 0);
}

/* The kernel's keep decisions are hm_rand_dropout_mask laid out as [B,H,L,S]. */
static void test_dropout_matches_rng(void) {
    const int64_t B = 3, H = 2, L = 16, S = 16, D = 8, E = H * D, np = B * H * L * S;
    const float p = 0.25f;
    const uint64_t seed = 99, offset = 12345;
    float *q = malloc(B * L * E * sizeof(float)), *k = malloc(B * S * E * sizeof(float));
    float *v = malloc(B * S * E * sizeof(float)), *out = malloc(B * L * E * sizeof(float));
    float *probs = malloc(np * sizeof(float)), *lse = malloc(B * H * L * sizeof(float));
    float *mask = malloc(np * sizeof(float));
    fill(q, B * L * E, -1, 1);
    fill(k, B * S * E, -1, 1);
    fill(v, B * S * E, -1, 1);
    FWD(out, probs, lse, q, k, v, NULL, NULL, NULL, 0, 0, B, H, L, S, D, 0.35f, p, seed, offset);
    hm_rand_dropout_mask(mask, np, seed, offset, p);
    int64_t kept = 0;
    for (int64_t t = 0; t < np; t++) kept += mask[t] != 0;
    CHECK(kept > np * 0.7 && kept < np * 0.8);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < L; i++)
                for (int64_t d = 0; d < D; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < S; j++) {
                        int64_t t = ((b * H + h) * L + i) * S + j;
                        o += (double)probs[t] * mask[t] * v[(b * S + j) * E + h * D + d];
                    }
                    CHECK_CLOSE(out[(b * L + i) * E + h * D + d], o, 1e-6, 1e-5);
                }
    CHECK(hm_attention_dropout_counters(B, H, L, S) == (uint64_t)np);
    printf("  dropout mask == hm_rand_dropout_mask layout: done\n");
    free(q); free(k); free(v); free(out); free(probs); free(lse); free(mask);
}

/* Course-like problem used by the thread test and the timing. */
typedef struct {
    int64_t B, H, L, S, D;
    float *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv;
    uint8_t *kpm;
} bigcase;

static void big_init(bigcase *t, int64_t B, int64_t H, int64_t L, int64_t D) {
    t->B = B; t->H = H; t->L = L; t->S = L; t->D = D;
    const int64_t n = B * L * H * D;
    t->q = malloc(n * sizeof(float)); t->k = malloc(n * sizeof(float)); t->v = malloc(n * sizeof(float));
    t->out = malloc(n * sizeof(float)); t->dout = malloc(n * sizeof(float));
    t->dq = malloc(n * sizeof(float)); t->dk = malloc(n * sizeof(float)); t->dv = malloc(n * sizeof(float));
    t->lse = malloc(B * H * L * sizeof(float));
    t->kpm = malloc(B * L);
    fill(t->q, n, -1, 1); fill(t->k, n, -1, 1); fill(t->v, n, -1, 1); fill(t->dout, n, -1, 1);
    /* Events with a variable number of real tokens, padded at the end. */
    for (int64_t b = 0; b < B; b++) {
        int64_t nreal = 3 + (int64_t)(urand() * (double)(L - 2));
        for (int64_t j = 0; j < L; j++) t->kpm[b * L + j] = j >= nreal;
    }
}
static void big_free(bigcase *t) {
    free(t->q); free(t->k); free(t->v); free(t->out); free(t->dout);
    free(t->dq); free(t->dk); free(t->dv); free(t->lse); free(t->kpm);
}
static void big_run(bigcase *t, float p, int backward) {
    float sc = 1.0f / sqrtf((float)t->D);
    if (!backward)
        FWD(t->out, NULL, t->lse, t->q, t->k, t->v, t->kpm, NULL, NULL, 0, 0,
                             t->B, t->H, t->L, t->S, t->D, sc, p, 2024, 64);
    else
        BWD(t->dq, t->dk, t->dv, t->dout, t->q, t->k, t->v, t->lse, t->kpm, NULL, NULL, 0, 0,
                              t->B, t->H, t->L, t->S, t->D, sc, p, 2024, 64);
}

static void test_thread_independence(void) {
#ifdef _OPENMP
    bigcase t;
    big_init(&t, 64, 4, 16, 16);
    const int64_t n = t.B * t.L * t.H * t.D;
    float *ref[4];
    for (int a = 0; a < 4; a++) ref[a] = malloc(n * sizeof(float));
    int saved = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass == 0 ? 1 : 2);
        big_run(&t, 0.1f, 0);
        big_run(&t, 0.1f, 1);
        float *res[4] = {t.out, t.dq, t.dk, t.dv};
        for (int a = 0; a < 4; a++) {
            if (pass == 0) memcpy(ref[a], res[a], n * sizeof(float));
            else CHECK(memcmp(ref[a], res[a], n * sizeof(float)) == 0);
        }
    }
    omp_set_num_threads(saved);
    for (int a = 0; a < 4; a++) free(ref[a]);
    big_free(&t);
    printf("  1 vs 2 threads: identical bytes checked\n");
#endif
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median_ms(bigcase *t, float p, int backward, int reps) {
    double ts[64];
    big_run(t, p, 0);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        big_run(t, p, backward);
        ts[r] = (now_s() - t0) * 1e3;
    }
    qsort(ts, (size_t)reps, sizeof(double), cmp_double);
    return ts[reps / 2];
}

/* Under the sanitizers the numbers mean nothing: keep that run short. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TIMING_B 128
#define TIMING_REPS 3
#else
#define TIMING_B 1024
#define TIMING_REPS 21
#endif

static void timing(void) {
    bigcase t;
    big_init(&t, TIMING_B, 4, 16, 16);
    printf("timing, B=%d T=16 E=64 H=4, key padding (median ms; informative only):\n", TIMING_B);
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
#else
    for (int nt = 1; nt <= 1; nt++) {
#endif
        for (int dp = 0; dp < 2; dp++) {
            float p = dp ? 0.1f : 0.0f;
            double f = median_ms(&t, p, 0, TIMING_REPS), b = median_ms(&t, p, 1, TIMING_REPS);
            printf("  threads %d dropout %.1f: forward %.3f  backward %.3f  total %.3f\n", nt, p, f, b, f + b);
        }
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
    big_free(&t);
}

/* The two implementations agree (to rounding) on a course-sized problem. */
static void test_paths_agree(void) {
    bigcase t;
    big_init(&t, 16, 4, 16, 16);
    const int64_t n = t.B * t.L * t.H * t.D;
    float *res[4];
    for (int a = 0; a < 4; a++) res[a] = malloc(n * sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        FWD = pass ? test_attention_forward_portable : hm_attention_forward;
        BWD = pass ? test_attention_backward_portable : hm_attention_backward;
        big_run(&t, 0.2f, 0);
        big_run(&t, 0.2f, 1);
        float *r[4] = {t.out, t.dq, t.dk, t.dv};
        for (int a = 0; a < 4; a++) {
            if (pass == 0) memcpy(res[a], r[a], n * sizeof(float));
            else
                for (int64_t u = 0; u < n; u++) CHECK_CLOSE(r[a][u], res[a][u], 1e-5, 1e-4);
        }
    }
    FWD = hm_attention_forward;
    BWD = hm_attention_backward;
    for (int a = 0; a < 4; a++) free(res[a]);
    big_free(&t);
    printf("  default and portable paths agree\n");
}

int main(void) {
    for (int impl = 0; impl < 2; impl++) {
        FWD = impl ? test_attention_forward_portable : hm_attention_forward;
        BWD = impl ? test_attention_backward_portable : hm_attention_backward;
        printf("== %s implementation\n", impl ? "portable" : "default (AVX2 where available)");
        test_cases();
        test_dropout_matches_rng();
        test_thread_independence();
    }
    FWD = hm_attention_forward;
    BWD = hm_attention_backward;
    test_paths_agree();
    timing();
    return CHECK_REPORT();
}
