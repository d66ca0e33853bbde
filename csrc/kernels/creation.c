#include "creation.h"

void hm_fill_f32(float *out, int64_t n, float value) {
    #pragma omp parallel for simd schedule(static) if (n > 1 << 20)
    for (int64_t i = 0; i < n; i++) out[i] = value;
}

void hm_fill_i64(int64_t *out, int64_t n, int64_t value) {
    for (int64_t i = 0; i < n; i++) out[i] = value;
}

void hm_arange_f32(float *out, int64_t n, double start, double step) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)(start + (double)i * step);
}

void hm_arange_i64(int64_t *out, int64_t n, int64_t start, int64_t step) {
    for (int64_t i = 0; i < n; i++) out[i] = start + i * step;
}

void hm_linspace_f32(float *out, int64_t n, double start, double end) {
    if (n == 1) { out[0] = (float)start; return; }
    double step = (end - start) / (double)(n - 1);
    int64_t half = n / 2;
    /* first half counted from start, second half from end: both ends exact */
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)(i < half ? start + step * (double)i : end - step * (double)(n - 1 - i));
}
