#include "broadcast.h"
#include <string.h>

void hm_broadcast_strides(int64_t *strides, int ndim_out, const int64_t *out_shape, int ndim_in, const int64_t *in_shape) {
    (void)out_shape; /* kept in the signature for symmetry with the callers' plans */
    int64_t s = 1;
    for (int d = ndim_out - 1; d >= 0; d--) {
        int din = d - (ndim_out - ndim_in);
        if (din < 0 || in_shape[din] == 1) {
            strides[d] = 0;
        } else {
            strides[d] = s;
        }
        if (din >= 0) s *= in_shape[din];
    }
}

void hm_sum_to_shape(float *out, const float *g, int ndim_g, const int64_t *g_shape, int ndim, const int64_t *shape) {
    /* General path (below): walk g once in row-major order and scatter-add
     * into out through broadcast strides, serially, so each output element
     * receives its terms in increasing index order. */
    int64_t n_out = 1, n_g = 1;
    for (int d = 0; d < ndim; d++) n_out *= shape[d];
    for (int d = 0; d < ndim_g; d++) n_g *= g_shape[d];
    int64_t ostr[8];
    hm_broadcast_strides(ostr, ndim_g, g_shape, ndim, shape);
    /* Fast path: the reduced dims are all leading (e.g. bias gradients
     * [B, T, F] -> [F]): sum contiguous rows. */
    int lead = 0;
    while (lead < ndim_g && ostr[lead] == 0) lead++;
    int rest_full = 1;
    for (int d = lead; d < ndim_g; d++) {
        int din = d - (ndim_g - ndim);
        if (din < 0 || shape[din] != g_shape[d]) { rest_full = 0; break; }
    }
    if (rest_full) {
        int64_t rows = n_g / (n_out ? n_out : 1);
        #pragma omp parallel for schedule(static) if (n_g > 65536)
        for (int64_t j = 0; j < n_out; j++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rows; r++) acc += g[r * n_out + j];
            out[j] = (float)acc;
        }
        return;
    }
    memset(out, 0, (size_t)n_out * sizeof(float));
    int64_t idx[8] = {0};
    int64_t o = 0;
    for (int64_t i = 0; i < n_g; i++) {
        out[o] += g[i];
        /* advance the multi-index */
        for (int d = ndim_g - 1; d >= 0; d--) {
            idx[d]++;
            o += ostr[d];
            if (idx[d] < g_shape[d]) break;
            o -= ostr[d] * idx[d];
            idx[d] = 0;
        }
    }
}

void hm_add_inplace(float *a, const float *b, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > 262144)
    for (int64_t i = 0; i < n; i++) a[i] += b[i];
}
