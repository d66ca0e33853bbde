/* Matrix exponential and its gradient: see matexp.h. */
#include "matexp.h"
#include "blas.h"

#include <math.h>
#include <string.h>
#include "threads.h"

/* Taylor degree and the norm the scaled matrix is brought under. With
 * ||B||_1 <= 1/2 the first neglected term is below 0.5^11 / 11! ~ 1.2e-11
 * relative (and k times that for the k-th term of the Fréchet series), far
 * below float32 resolution, so the float32 result is limited by its rounding
 * and by the conditioning of exp at A, not by the polynomial. */
#define HM_EXPM_DEGREE 10
#define HM_EXPM_THETA 0.5

/* From this size on a product goes to BLAS dgemm, and the batch loop stays on
 * one thread so that OpenBLAS's own threads are not nested inside ours. */
#define HM_EXPM_BLAS_N 48

/* Work (multiply-adds) below which the batch loop stays on one thread (~0.3 ms):
 * the rotations in a flow are one small matrix, where a parallel region only
 * costs its fork/join. */
#define HM_EXPM_PAR_WORK ((int64_t)1 << 20)

int hm_matrix_exp_max_threads(void) { return hm_max_threads(); }

int64_t hm_matrix_exp_scratch_doubles(int64_t n, int backward) { return (backward ? 6 : 3) * n * n; }

/* c = a b (acc = 0) or c += a b (acc = 1); all n x n, row-major, double. */
static void mm(double *restrict c, const double *restrict a, const double *restrict b, int64_t n, int acc) {
    if (n >= HM_EXPM_BLAS_N) {
        hm_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, a, (int)n, b,
                       (int)n, acc ? 1.0 : 0.0, c, (int)n);
        return;
    }
    /* i-k-j order: the inner loop runs along rows of b and c, contiguous, so it
     * vectorises; no skipping of zero a[i,k] so that NaN/inf propagate as in a
     * plain product. */
    for (int64_t i = 0; i < n; i++) {
        double *restrict ci = c + i * n;
        if (!acc)
            for (int64_t j = 0; j < n; j++) ci[j] = 0.0;
        for (int64_t k = 0; k < n; k++) {
            const double aik = a[i * n + k];
            const double *restrict bk = b + k * n;
            for (int64_t j = 0; j < n; j++) ci[j] += aik * bk[j];
        }
    }
}

/* The number of halvings s that brings a matrix of 1-norm `norm` under theta. */
static int scaling_power(double norm) {
    if (!(norm > HM_EXPM_THETA)) return 0;
    int e;
    frexp(norm / HM_EXPM_THETA, &e); /* norm / theta = f 2^e, f in [1/2, 1): 2^e >= norm / theta */
    return e;
}

/* 1-norm (largest column sum of |m|) of a float matrix, or of its transpose. */
static double norm1(const float *m, int64_t n, int transposed) {
    double best = 0.0;
    for (int64_t j = 0; j < n; j++) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += fabs((double)(transposed ? m[j * n + i] : m[i * n + j]));
        if (!(s <= best)) best = s; /* NaN wins, so it is seen below */
    }
    return best;
}

static void fill_nan(float *out, int64_t nn) {
    for (int64_t i = 0; i < nn; i++) out[i] = NAN;
}

/* exp of one n x n matrix; w: 3 n^2 doubles. */
static void expm_one(float *out, const float *a, double *w, int64_t n) {
    const int64_t nn = n * n;
    const double norm = norm1(a, n, 0);
    if (!isfinite(norm)) { /* the series and squarings would only turn inf into NaN anyway */
        fill_nan(out, nn);
        return;
    }
    const int s = scaling_power(norm);
    const double scale = ldexp(1.0, -s);
    double *B = w, *X = w + nn, *T = w + 2 * nn;
    for (int64_t i = 0; i < nn; i++) B[i] = (double)a[i] * scale;
    /* Horner: X = I + B/m (I + B/(m-1) (... (I + B/1))) evaluated from the inside */
    for (int64_t i = 0; i < nn; i++) X[i] = B[i] / HM_EXPM_DEGREE;
    for (int64_t i = 0; i < n; i++) X[i * n + i] += 1.0;
    for (int k = HM_EXPM_DEGREE - 1; k >= 1; k--) {
        mm(T, B, X, n, 0);
        const double inv = 1.0 / k;
        for (int64_t i = 0; i < nn; i++) X[i] = T[i] * inv;
        for (int64_t i = 0; i < n; i++) X[i * n + i] += 1.0;
    }
    for (int r = 0; r < s; r++) {
        mm(T, X, X, n, 0);
        double *t = X;
        X = T;
        T = t;
    }
    for (int64_t i = 0; i < nn; i++) out[i] = (float)X[i];
}

/* Upper-right block of exp([[A^T, G], [0, A^T]]) for one matrix; w: 6 n^2
 * doubles. Powers of a block upper-triangular matrix with equal diagonal blocks
 * keep that form, [[X, Y], [0, X]], so the Horner steps and the squarings are
 * written on the pair (X, Y):
 *   M [[X, Y], [0, X]] = [[B X, B Y + E X], [0, B X]],
 *   [[X, Y], [0, X]]^2 = [[X X, X Y + Y X], [0, X X]],
 * three n x n products each instead of one 2n x 2n product (eight). The scaling
 * comes from ||A||: Y is linear in G, so G does not change the accuracy. */
static void expm_frechet_one(float *da, const float *g, const float *a, double *w, int64_t n) {
    const int64_t nn = n * n;
    const double norm = norm1(a, n, 1);
    if (!isfinite(norm)) {
        fill_nan(da, nn);
        return;
    }
    const int s = scaling_power(norm);
    const double scale = ldexp(1.0, -s);
    double *B = w, *E = w + nn, *X = w + 2 * nn, *Y = w + 3 * nn, *T1 = w + 4 * nn, *T2 = w + 5 * nn;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) B[i * n + j] = (double)a[j * n + i] * scale;
    for (int64_t i = 0; i < nn; i++) E[i] = (double)g[i] * scale;
    for (int64_t i = 0; i < nn; i++) {
        X[i] = B[i] / HM_EXPM_DEGREE;
        Y[i] = E[i] / HM_EXPM_DEGREE;
    }
    for (int64_t i = 0; i < n; i++) X[i * n + i] += 1.0;
    for (int k = HM_EXPM_DEGREE - 1; k >= 1; k--) {
        mm(T1, B, X, n, 0);
        mm(T2, B, Y, n, 0);
        mm(T2, E, X, n, 1);
        const double inv = 1.0 / k;
        for (int64_t i = 0; i < nn; i++) {
            X[i] = T1[i] * inv;
            Y[i] = T2[i] * inv;
        }
        for (int64_t i = 0; i < n; i++) X[i * n + i] += 1.0;
    }
    for (int r = 0; r < s; r++) {
        mm(T2, X, Y, n, 0);
        mm(T2, Y, X, n, 1);
        mm(T1, X, X, n, 0);
        double *t = X;
        X = T1;
        T1 = t;
        t = Y;
        Y = T2;
        T2 = t;
    }
    for (int64_t i = 0; i < nn; i++) da[i] = (float)Y[i];
}

/* Each matrix is computed by one thread, start to end, so results do not
 * depend on the thread count. */
static int use_threads(int64_t batch, int64_t n, int nthreads) {
    return nthreads > 1 && batch > 1 && n < HM_EXPM_BLAS_N &&
           batch * n * n * n * (HM_EXPM_DEGREE + 4) > HM_EXPM_PAR_WORK;
}

void hm_matrix_exp_forward(float *out, const float *a, double *scratch, int64_t batch, int64_t n, int nthreads) {
    const int64_t nn = n * n, per = hm_matrix_exp_scratch_doubles(n, 0);
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (use_threads(batch, n, nthreads))
    for (int64_t b = 0; b < batch; b++) expm_one(out + b * nn, a + b * nn, scratch + hm_thread_id() * per, n);
}

void hm_matrix_exp_backward(float *da, const float *dout, const float *a, double *scratch, int64_t batch,
                            int64_t n, int nthreads) {
    const int64_t nn = n * n, per = hm_matrix_exp_scratch_doubles(n, 1);
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (use_threads(batch, n, nthreads))
    for (int64_t b = 0; b < batch; b++)
        expm_frechet_one(da + b * nn, dout + b * nn, a + b * nn, scratch + hm_thread_id() * per, n);
}
