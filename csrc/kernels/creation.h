/* Filling new tensors: constants, ranges. */
#ifndef HM_CREATION_H
#define HM_CREATION_H
#include <stdint.h>
void hm_fill_f32(float *out, int64_t n, float value);
void hm_fill_i64(int64_t *out, int64_t n, int64_t value);
/* out[i] = start + i * step, computed from the index (no accumulated rounding). */
void hm_arange_f32(float *out, int64_t n, double start, double step);
void hm_arange_i64(int64_t *out, int64_t n, int64_t start, int64_t step);
/* n points from start to end inclusive; symmetric evaluation as torch does so
 * that the last point equals end exactly. */
void hm_linspace_f32(float *out, int64_t n, double start, double end);
#endif
