/* matexp kernels: closed forms (2-D rotations, diagonal matrices and the
 * Fréchet derivative at a diagonal matrix), the BLAS path, and sanitizers over
 * the scratch indexing of the threaded batch loop. */
#include "check.h"
#include "matexp.h"

#include <stdlib.h>
#include <string.h>

static double *scratch_for(int64_t n, int backward, int nt) {
    return malloc(sizeof(double) * (size_t)(nt * hm_matrix_exp_scratch_doubles(n, backward) + 1));
}

int main(void) {
    const int nt = hm_matrix_exp_max_threads();
    /* exp([[0, -t], [t, 0]]) is the rotation by t, for angles needing squarings too */
    {
        const float th[3] = {0.3f, 2.5f, 40.0f};
        float a[12], out[12];
        for (int b = 0; b < 3; b++) {
            a[4 * b] = 0; a[4 * b + 1] = -th[b]; a[4 * b + 2] = th[b]; a[4 * b + 3] = 0;
        }
        double *s = scratch_for(2, 0, nt);
        hm_matrix_exp_forward(out, a, s, 3, 2, nt);
        for (int b = 0; b < 3; b++) {
            CHECK_CLOSE(out[4 * b], cos(th[b]), 2e-6, 0);
            CHECK_CLOSE(out[4 * b + 1], -sin(th[b]), 2e-6, 0);
            CHECK_CLOSE(out[4 * b + 2], sin(th[b]), 2e-6, 0);
            CHECK_CLOSE(out[4 * b + 3], cos(th[b]), 2e-6, 0);
        }
        free(s);
    }
    /* diagonal D: exp(D) = diag(e^d); L(D, E)_ij = E_ij (e^di - e^dj) / (di - dj), E_ii e^di */
    {
        enum { N = 3 };
        const float d[N] = {0.5f, -1.0f, 2.0f};
        float a[N * N] = {0}, g[N * N], out[N * N], da[N * N];
        for (int i = 0; i < N; i++) a[i * N + i] = d[i];
        for (int i = 0; i < N * N; i++) g[i] = (float)(i + 1) / 4.0f;
        double *s = scratch_for(N, 1, nt);
        hm_matrix_exp_forward(out, a, s, 1, N, nt);
        hm_matrix_exp_backward(da, g, a, s, 1, N, nt);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                CHECK_CLOSE(out[i * N + j], i == j ? exp(d[i]) : 0.0, 1e-6, 1e-6);
                double want = i == j ? g[i * N + i] * exp(d[i])
                                     : g[i * N + j] * (exp(d[i]) - exp(d[j])) / (d[i] - d[j]);
                CHECK_CLOSE(da[i * N + j], want, 1e-6, 1e-5);
            }
        free(s);
    }
    /* the BLAS path (n >= 48): exp(0) = I, exp(c I) = e^c I; and its backward */
    {
        enum { N = 50 };
        float *a = calloc(N * N, sizeof(float)), *out = malloc(sizeof(float) * N * N);
        float *g = malloc(sizeof(float) * N * N), *da = malloc(sizeof(float) * N * N);
        for (int i = 0; i < N; i++) a[i * N + i] = 0.75f;
        for (int i = 0; i < N * N; i++) g[i] = 1.0f;
        double *s = scratch_for(N, 1, nt);
        hm_matrix_exp_forward(out, a, s, 1, N, nt);
        hm_matrix_exp_backward(da, g, a, s, 1, N, nt);
        int ok = 1, okg = 1;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                ok &= fabs(out[i * N + j] - (i == j ? exp(0.75) : 0.0)) < 1e-5;
                okg &= fabs(da[i * N + j] - exp(0.75)) < 1e-5; /* commuting: L(cI, G) = e^c G */
            }
        CHECK(ok);
        CHECK(okg);
        free(a); free(out); free(g); free(da); free(s);
    }
    /* a batch large enough for the threaded loop: every item equals the one-thread result */
    {
        enum { B = 300, N = 8 };
        float *a = malloc(sizeof(float) * B * N * N), *o1 = malloc(sizeof(float) * B * N * N);
        float *o2 = malloc(sizeof(float) * B * N * N);
        for (int i = 0; i < B * N * N; i++) a[i] = (float)((i * 7919) % 97) / 97.0f - 0.5f;
        double *s = scratch_for(N, 1, nt);
        hm_matrix_exp_forward(o1, a, s, B, N, 1);
        hm_matrix_exp_forward(o2, a, s, B, N, nt);
        CHECK(memcmp(o1, o2, sizeof(float) * B * N * N) == 0);
        hm_matrix_exp_backward(o1, a, a, s, B, N, 1);
        hm_matrix_exp_backward(o2, a, a, s, B, N, nt);
        CHECK(memcmp(o1, o2, sizeof(float) * B * N * N) == 0);
        free(a); free(o1); free(o2); free(s);
    }
    return CHECK_REPORT();
}
