/*
 * Elementwise kernels with NumPy broadcasting. Each operand is read through
 * broadcast strides (0 on broadcast dimensions, see broadcast.h) over the
 * output's shape, so no operand is ever materialised at the output's size.
 *
 * All kernels here walk the output the same way: dimensions of size 1 are
 * dropped and neighbours that every operand traverses contiguously are merged
 * (same-shape operands become one flat loop, a scalar operand a stride-0
 * one), then the innermost dimension is cut into fixed tiles of at most 4096
 * elements that threads share. Inside a tile the common stride patterns
 * (contiguous / scalar) get their own loops, which the compiler vectorises.
 * Tiles do not depend on the thread count, and no element depends on another,
 * so results are the same for any number of threads.
 */
#ifndef HM_ELEMENTWISE_H
#define HM_ELEMENTWISE_H
#include <stdint.h>

enum hm_binary_op {
    HM_ADD = 0, HM_SUB = 1, HM_MUL = 2, HM_DIV = 3,
    HM_POW = 4,       /* a ** b (powf) */
    HM_ATAN2 = 5,     /* atan2(a, b): a is the y coordinate, as torch.atan2(input, other) */
    HM_REMAINDER = 6, /* a - floor(a / b) * b: the sign of b (Python's %, torch.remainder) */
    HM_FMOD = 7,      /* C's fmod: the sign of a */
    HM_MAXIMUM = 8,   /* nan propagates */
    HM_MINIMUM = 9,
    HM_BINARY_COUNT
};

/* out[idx] = a[idx . sa] (op) b[idx . sb] over the output shape. */
void hm_binary_forward(float *out, const float *a, const float *b, int ndim, const int64_t *shape,
                       const int64_t *sa, const int64_t *sb, int op);

/* Gradients in the output's shape (the engine sums them down to each operand's
 * shape): da = dout * d(out)/da, db likewise. Either may be NULL. Overwrites.
 * Conventions follow torch: pow has a zero gradient for the base where the
 * exponent is 0 and for the exponent where the base is 0 and the exponent
 * >= 0; maximum/minimum split the gradient in halves on ties; remainder/fmod
 * give the divisor -floor(a/b) / -trunc(a/b). */
void hm_binary_backward(float *da, float *db, const float *dout, const float *a, const float *b, int ndim,
                        const int64_t *shape, const int64_t *sa, const int64_t *sb, int op);

enum hm_compare_op { HM_EQ = 0, HM_NE = 1, HM_LT = 2, HM_LE = 3, HM_GT = 4, HM_GE = 5 };
/* out[idx] = a (op) b as 0/1, IEEE semantics (nan compares unequal to all). */
void hm_compare_forward(uint8_t *out, const float *a, const float *b, int ndim, const int64_t *shape,
                        const int64_t *sa, const int64_t *sb, int op);
/* The same for int64 operands (index tensors), compared exactly. */
void hm_compare_i64_forward(uint8_t *out, const int64_t *a, const int64_t *b, int ndim, const int64_t *shape,
                            const int64_t *sa, const int64_t *sb, int op);

enum hm_logical_op { HM_LAND = 0, HM_LOR = 1, HM_LXOR = 2 };
/* out = (a != 0) (op) (b != 0) for bool operands. */
void hm_logical_forward(uint8_t *out, const uint8_t *a, const uint8_t *b, int ndim, const int64_t *shape,
                        const int64_t *sa, const int64_t *sb, int op);

/* out[idx] = c[idx . sc] ? x[idx . sx] : y[idx . sy] */
void hm_where_forward(float *out, const uint8_t *c, const float *x, const float *y, int ndim, const int64_t *shape,
                      const int64_t *sc, const int64_t *sx, const int64_t *sy);
/* dx = c ? dout : 0, dy = c ? 0 : dout, in the output's shape; either may be NULL. */
void hm_where_backward(float *dx, float *dy, const float *dout, const uint8_t *c, int ndim, const int64_t *shape,
                       const int64_t *sc);

/* out = min(max(x, lo), hi) with broadcast tensor bounds; lo or hi may be NULL
 * (absent). nan in x or in a bound gives nan; lo > hi gives hi (torch). */
void hm_clamp_forward(float *out, const float *x, const float *lo, const float *hi, int ndim, const int64_t *shape,
                      const int64_t *sx, const int64_t *slo, const int64_t *shi);
/* Gradients in the output's shape, torch's rule: x gets dout where lo <= x <=
 * hi; lo where x < lo (and lo < hi when hi is given); hi where x > hi (or hi <
 * lo when lo is given). Any of dx, dlo, dhi may be NULL. */
void hm_clamp_backward(float *dx, float *dlo, float *dhi, const float *dout, const float *x, const float *lo,
                       const float *hi, int ndim, const int64_t *shape, const int64_t *sx, const int64_t *slo,
                       const int64_t *shi);
#endif
