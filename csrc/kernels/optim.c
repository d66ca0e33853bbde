#include "optim.h"
#include <math.h>

void hm_sgd_step(float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float dampening,
                 float weight_decay, int nesterov, int first_step) {
    #pragma omp parallel for simd schedule(static) if (n > 262144)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + weight_decay * p[i];
        if (momentum != 0.0f) {
            float b = first_step ? d : momentum * buf[i] + (1.0f - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}

void hm_adam_step(float *p, const float *g, float *m, float *v, float *vmax, int64_t n, int64_t step, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int decoupled) {
    /* bias corrections in double: beta^step underflows gracefully */
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    float step_size = (float)((double)lr / bc1);
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f;
    float l2 = decoupled ? 0.0f : weight_decay;
    #pragma omp parallel for simd schedule(static) if (n > 262144)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * p[i];
        float pi = p[i] * decay;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float vv = vi;
        if (vmax) { vv = vmax[i] > vi ? vmax[i] : vi; vmax[i] = vv; }
        float denom = sqrtf(vv) * inv_sqrt_bc2 + eps;
        p[i] = pi - step_size * mi / denom;
    }
}

void hm_adamax_step(float *p, const float *g, float *m, float *u, int64_t n, int64_t step, float lr, float beta1,
                    float beta2, float eps, float weight_decay) {
    float clr = (float)((double)lr / (1.0 - pow((double)beta1, (double)step)));
    #pragma omp parallel for simd schedule(static) if (n > 262144)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * p[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float a = beta2 * u[i], b = fabsf(gi) + eps;
        float ui = a > b ? a : b;
        m[i] = mi;
        u[i] = ui;
        p[i] -= clr * mi / ui;
    }
}

double hm_sum_squares(const float *x, int64_t n) {
    /* fixed chunks combined serially: the same value on any thread count */
    enum { CHUNK = 65536 };
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    double total = 0.0;
    if (nchunks <= 1) {
        for (int64_t i = 0; i < n; i++) total += (double)x[i] * x[i];
        return total;
    }
    double partial[1024];
    int64_t done = 0;
    while (done < nchunks) {
        int64_t batch = nchunks - done < 1024 ? nchunks - done : 1024;
        #pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < batch; c++) {
            int64_t lo = (done + c) * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
            double s = 0.0;
            for (int64_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
            partial[c] = s;
        }
        for (int64_t c = 0; c < batch; c++) total += partial[c];
        done += batch;
    }
    return total;
}

void hm_scale_inplace(float *x, int64_t n, float scale) {
    #pragma omp parallel for simd schedule(static) if (n > 262144)
    for (int64_t i = 0; i < n; i++) x[i] *= scale;
}
