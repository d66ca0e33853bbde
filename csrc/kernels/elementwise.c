#include "elementwise.h"

static inline float apply(int op, float x, float y) {
    switch (op) {
    case HM_ADD: return x + y;
    case HM_SUB: return x - y;
    case HM_MUL: return x * y;
    default: return x / y;
    }
}

/* The innermost dimension is looped with its own strides (0 or 1), which the
 * compiler turns into vector loops for the common contiguous and scalar
 * cases; the outer dimensions are walked with a multi-index. Rows of the
 * innermost dimension are independent, so they are split across threads. */
void hm_binary_forward(float *out, const float *a, const float *b, int ndim, const int64_t *shape,
                       const int64_t *sa, const int64_t *sb, int op) {
    if (ndim == 0) { out[0] = apply(op, a[0], b[0]); return; }
    int64_t inner = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    int64_t ia = sa[ndim - 1], ib = sb[ndim - 1];
    #pragma omp parallel for schedule(static) if (rows * inner > 131072)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa = 0, ob = 0, rem = r;
        for (int d = ndim - 2; d >= 0; d--) {
            int64_t i = rem % shape[d];
            rem /= shape[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        const float *pa = a + oa, *pb = b + ob;
        float *po = out + r * inner;
        if (ia == 1 && ib == 1) {
            switch (op) {
            case HM_ADD: for (int64_t j = 0; j < inner; j++) po[j] = pa[j] + pb[j]; break;
            case HM_SUB: for (int64_t j = 0; j < inner; j++) po[j] = pa[j] - pb[j]; break;
            case HM_MUL: for (int64_t j = 0; j < inner; j++) po[j] = pa[j] * pb[j]; break;
            default: for (int64_t j = 0; j < inner; j++) po[j] = pa[j] / pb[j]; break;
            }
        } else {
            for (int64_t j = 0; j < inner; j++) po[j] = apply(op, pa[j * ia], pb[j * ib]);
        }
    }
}

void hm_binary_backward(float *da, float *db, const float *dout, const float *a, const float *b, int ndim,
                        const int64_t *shape, const int64_t *sa, const int64_t *sb, int op) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    int64_t inner = ndim ? shape[ndim - 1] : 1, rows = n / (inner ? inner : 1);
    int64_t ia = ndim ? sa[ndim - 1] : 0, ib = ndim ? sb[ndim - 1] : 0;
    #pragma omp parallel for schedule(static) if (n > 131072)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa = 0, ob = 0, rem = r;
        for (int d = ndim - 2; d >= 0; d--) {
            int64_t i = rem % shape[d];
            rem /= shape[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        for (int64_t j = 0; j < inner; j++) {
            int64_t o = r * inner + j;
            float g = dout[o], x = a[oa + j * ia], y = b[ob + j * ib];
            switch (op) {
            case HM_ADD: if (da) da[o] = g; if (db) db[o] = g; break;
            case HM_SUB: if (da) da[o] = g; if (db) db[o] = -g; break;
            case HM_MUL: if (da) da[o] = g * y; if (db) db[o] = g * x; break;
            default: if (da) da[o] = g / y; if (db) db[o] = -g * x / (y * y); break;
            }
        }
    }
}
