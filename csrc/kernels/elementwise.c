/* Comparisons and selects below must become vector blends; GCC only
 * if-converts them when it may assume that floating-point ops do not trap
 * (they never do here: hepml does not enable FP exceptions). This changes no
 * result, nan and inf included. */
#pragma GCC optimize("no-trapping-math")
#include "elementwise.h"
#include <math.h>
#include <stddef.h>

#define EW_MAXD 8
#define EW_TILE 4096
#define EW_PAR 131072 /* elements before threads pay for their fork/join */
#define EW_PAR_COSTLY 16384

typedef struct {
    int ndim;
    int64_t shape[EW_MAXD];
    int64_t st[3][EW_MAXD];
    int64_t inner, tiles_per_row, ntiles, n;
} ew_iter;

/* Drop size-1 dims and merge neighbours that every operand walks
 * contiguously; returns the element count. */
static int64_t ew_init(ew_iter *it, int ndim, const int64_t *shape, int nops, const int64_t *s0, const int64_t *s1,
                       const int64_t *s2) {
    const int64_t *src[3] = {s0, s1, s2};
    int m = 0;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        n *= shape[d];
        if (shape[d] == 1) continue;
        int merge = m > 0;
        for (int k = 0; k < nops && merge; k++) merge = it->st[k][m - 1] == src[k][d] * shape[d];
        if (merge) {
            it->shape[m - 1] *= shape[d];
            for (int k = 0; k < nops; k++) it->st[k][m - 1] = src[k][d];
        } else {
            it->shape[m] = shape[d];
            for (int k = 0; k < nops; k++) it->st[k][m] = src[k][d];
            m++;
        }
    }
    if (m == 0) {
        it->shape[0] = 1;
        for (int k = 0; k < 3; k++) it->st[k][0] = 0;
        m = 1;
    }
    for (int k = nops; k < 3; k++)
        for (int d = 0; d < m; d++) it->st[k][d] = 0;
    it->ndim = m;
    it->n = n;
    it->inner = it->shape[m - 1];
    it->tiles_per_row = n ? (it->inner + EW_TILE - 1) / EW_TILE : 0;
    it->ntiles = n ? (n / it->inner) * it->tiles_per_row : 0;
    return n;
}

/* Offsets of tile t into the output (returned) and each operand, and its length. */
static inline int64_t ew_tile(const ew_iter *it, int64_t t, int64_t off[3], int64_t *len) {
    int m = it->ndim;
    int64_t r = t / it->tiles_per_row, c0 = (t % it->tiles_per_row) * EW_TILE;
    *len = it->inner - c0 < EW_TILE ? it->inner - c0 : EW_TILE;
    for (int k = 0; k < 3; k++) off[k] = c0 * it->st[k][m - 1];
    int64_t rem = r;
    for (int d = m - 2; d >= 0; d--) {
        int64_t i = rem % it->shape[d];
        rem /= it->shape[d];
        for (int k = 0; k < 3; k++) off[k] += i * it->st[k][d];
    }
    return r * it->inner + c0;
}

/* Expand a loop body once per stride pattern of two operands, with the
 * strides IA, IB as constants where they are 0 or 1 so that the loop
 * vectorises (contiguous loads, or a broadcast scalar). */
#define EW_CASES2(...)                                                                  \
    do {                                                                                \
        if (ia == 1 && ib == 1) { const int64_t IA = 1, IB = 1; __VA_ARGS__ }          \
        else if (ia == 1 && ib == 0) { const int64_t IA = 1, IB = 0; __VA_ARGS__ }     \
        else if (ia == 0 && ib == 1) { const int64_t IA = 0, IB = 1; __VA_ARGS__ }     \
        else { const int64_t IA = ia, IB = ib; __VA_ARGS__ }                            \
    } while (0)

#define EW_MAP2(OUT, EXPR)                                                              \
    EW_CASES2(for (int64_t j = 0; j < len; j++) {                                       \
        float x = pa[j * IA], y = pb[j * IB];                                           \
        OUT[j] = (EXPR);                                                                \
    })

/* --------------------------------------------------------------- binary ops */

/* Python's floor division, as torch.div(rounding_mode="floor") computes it,
 * so remainder's gradient agrees with torch to the last bit. */
static inline float floordiv(float a, float b) {
    if (b == 0.0f) return a / b;
    float mod = fmodf(a, b);
    float div = (a - mod) / b;
    if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
    if (div == 0.0f) return copysignf(0.0f, a / b);
    float fd = floorf(div);
    if (div - fd > 0.5f) fd += 1.0f;
    return fd;
}

static inline float remainder_f(float x, float y) {
    float m = fmodf(x, y);
    return (m != 0.0f && ((y < 0.0f) != (m < 0.0f))) ? m + y : m;
}

static void binary_tile(float *po, const float *pa, const float *pb, int64_t len, int64_t ia, int64_t ib, int op) {
    switch (op) {
    case HM_ADD: EW_MAP2(po, x + y); break;
    case HM_SUB: EW_MAP2(po, x - y); break;
    case HM_MUL: EW_MAP2(po, x * y); break;
    case HM_DIV: EW_MAP2(po, x / y); break;
    case HM_POW: EW_MAP2(po, powf(x, y)); break;
    case HM_ATAN2: EW_MAP2(po, atan2f(x, y)); break;
    case HM_REMAINDER: EW_MAP2(po, remainder_f(x, y)); break;
    case HM_FMOD: EW_MAP2(po, fmodf(x, y)); break;
    /* >= keeps x on ties (numpy's choice; only the sign of zero can tell) */
    case HM_MAXIMUM: EW_MAP2(po, (x >= y || x != x) ? x : y); break;
    case HM_MINIMUM: EW_MAP2(po, (x <= y || x != x) ? x : y); break;
    default: break;
    }
}

static int costly(int op) { return op == HM_POW || op == HM_ATAN2 || op == HM_REMAINDER || op == HM_FMOD; }

void hm_binary_forward(float *out, const float *a, const float *b, int ndim, const int64_t *shape,
                       const int64_t *sa, const int64_t *sb, int op) {
    ew_iter it;
    if (ew_init(&it, ndim, shape, 2, sa, sb, NULL) == 0) return;
    int64_t ia = it.st[0][it.ndim - 1], ib = it.st[1][it.ndim - 1];
    int64_t thr = costly(op) ? EW_PAR_COSTLY : EW_PAR;
    #pragma omp parallel for schedule(static) if (it.n > thr)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        binary_tile(out + o, a + off[0], b + off[1], len, ia, ib, op);
    }
}

static void binary_grad_tile(float *pda, float *pdb, const float *pg, const float *pa, const float *pb, int64_t len,
                             int64_t ia, int64_t ib, int op) {
#define GRAD_A(EXPR) if (pda) EW_CASES2(for (int64_t j = 0; j < len; j++) {                \
        float g = pg[j], x = pa[j * IA], y = pb[j * IB]; (void)x; (void)y; pda[j] = (EXPR); })
#define GRAD_B(EXPR) if (pdb) EW_CASES2(for (int64_t j = 0; j < len; j++) {                \
        float g = pg[j], x = pa[j * IA], y = pb[j * IB]; (void)x; (void)y; pdb[j] = (EXPR); })
    switch (op) {
    case HM_ADD: GRAD_A(g); GRAD_B(g); break;
    case HM_SUB: GRAD_A(g); GRAD_B(-g); break;
    case HM_MUL: GRAD_A(g * y); GRAD_B(g * x); break;
    case HM_DIV: GRAD_A(g / y); GRAD_B(-g * x / (y * y)); break;
    case HM_POW:
        GRAD_A(y == 0.0f ? 0.0f : g * (y * powf(x, y - 1.0f)));
        GRAD_B((x == 0.0f && y >= 0.0f) ? 0.0f : g * (powf(x, y) * logf(x)));
        break;
    /* torch: no gradient at the origin, where the angle is undefined */
    case HM_ATAN2:
        GRAD_A(x * x + y * y == 0.0f ? 0.0f : g * y * (1.0f / (x * x + y * y)));
        GRAD_B(x * x + y * y == 0.0f ? 0.0f : g * -x * (1.0f / (x * x + y * y)));
        break;
    case HM_REMAINDER: GRAD_A(g); GRAD_B(-g * floordiv(x, y)); break;
    case HM_FMOD: GRAD_A(g); GRAD_B(-g * truncf(x / y)); break;
    /* torch: the whole gradient to the winner, half to each on a tie, and
     * (since neither is smaller) all of it to both when a nan is involved */
    case HM_MAXIMUM:
        GRAD_A(x < y ? 0.0f : x == y ? 0.5f * g : g);
        GRAD_B(x > y ? 0.0f : x == y ? 0.5f * g : g);
        break;
    case HM_MINIMUM:
        GRAD_A(x > y ? 0.0f : x == y ? 0.5f * g : g);
        GRAD_B(x < y ? 0.0f : x == y ? 0.5f * g : g);
        break;
    default: break;
    }
#undef GRAD_A
#undef GRAD_B
}

void hm_binary_backward(float *da, float *db, const float *dout, const float *a, const float *b, int ndim,
                        const int64_t *shape, const int64_t *sa, const int64_t *sb, int op) {
    ew_iter it;
    if (ew_init(&it, ndim, shape, 2, sa, sb, NULL) == 0) return;
    int64_t ia = it.st[0][it.ndim - 1], ib = it.st[1][it.ndim - 1];
    int64_t thr = costly(op) ? EW_PAR_COSTLY : EW_PAR;
    #pragma omp parallel for schedule(static) if (it.n > thr)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        binary_grad_tile(da ? da + o : NULL, db ? db + o : NULL, dout + o, a + off[0], b + off[1], len, ia, ib, op);
    }
}

/* ------------------------------------------------------------- comparisons */

#define CMP_TILE(T)                                                                                 \
    static void cmp_tile_##T(uint8_t *po, const T *pa, const T *pb, int64_t len, int64_t ia, int64_t ib, \
                             int op) {                                                              \
        switch (op) {                                                                               \
        case HM_EQ: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = pa[j * IA] == pb[j * IB];); break; \
        case HM_NE: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = pa[j * IA] != pb[j * IB];); break; \
        case HM_LT: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = pa[j * IA] < pb[j * IB];); break;  \
        case HM_LE: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = pa[j * IA] <= pb[j * IB];); break; \
        case HM_GT: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = pa[j * IA] > pb[j * IB];); break;  \
        default: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = pa[j * IA] >= pb[j * IB];); break;    \
        }                                                                                           \
    }
CMP_TILE(float)
CMP_TILE(int64_t)

#define CMP_DRIVER(T)                                                                               \
    ew_iter it;                                                                                     \
    if (ew_init(&it, ndim, shape, 2, sa, sb, NULL) == 0) return;                                    \
    int64_t ia = it.st[0][it.ndim - 1], ib = it.st[1][it.ndim - 1];                                 \
    _Pragma("omp parallel for schedule(static) if (it.n > EW_PAR)")                                 \
    for (int64_t t = 0; t < it.ntiles; t++) {                                                       \
        int64_t off[3], len;                                                                        \
        int64_t o = ew_tile(&it, t, off, &len);                                                     \
        cmp_tile_##T(out + o, a + off[0], b + off[1], len, ia, ib, op);                             \
    }

void hm_compare_forward(uint8_t *out, const float *a, const float *b, int ndim, const int64_t *shape,
                        const int64_t *sa, const int64_t *sb, int op) {
    CMP_DRIVER(float)
}

void hm_compare_i64_forward(uint8_t *out, const int64_t *a, const int64_t *b, int ndim, const int64_t *shape,
                            const int64_t *sa, const int64_t *sb, int op) {
    CMP_DRIVER(int64_t)
}

static void logical_tile(uint8_t *po, const uint8_t *pa, const uint8_t *pb, int64_t len, int64_t ia, int64_t ib,
                         int op) {
    switch (op) {
    case HM_LAND: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = (pa[j * IA] != 0) & (pb[j * IB] != 0);); break;
    case HM_LOR: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = (pa[j * IA] != 0) | (pb[j * IB] != 0);); break;
    default: EW_CASES2(for (int64_t j = 0; j < len; j++) po[j] = (pa[j * IA] != 0) ^ (pb[j * IB] != 0);); break;
    }
}

void hm_logical_forward(uint8_t *out, const uint8_t *a, const uint8_t *b, int ndim, const int64_t *shape,
                        const int64_t *sa, const int64_t *sb, int op) {
    ew_iter it;
    if (ew_init(&it, ndim, shape, 2, sa, sb, NULL) == 0) return;
    int64_t ia = it.st[0][it.ndim - 1], ib = it.st[1][it.ndim - 1];
    #pragma omp parallel for schedule(static) if (it.n > EW_PAR)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        logical_tile(out + o, a + off[0], b + off[1], len, ia, ib, op);
    }
}

/* ------------------------------------------------------------------- where */

/* Three-operand stride patterns: all contiguous, or one value operand a
 * scalar (where(mask, x, 0.0)), else general strides. */
#define EW_CASES3(...)                                                                              \
    do {                                                                                            \
        if (ic == 1 && ix == 1 && iy == 1) { const int64_t IC = 1, IX = 1, IY = 1; __VA_ARGS__ }    \
        else if (ic == 1 && ix == 1 && iy == 0) { const int64_t IC = 1, IX = 1, IY = 0; __VA_ARGS__ } \
        else if (ic == 1 && ix == 0 && iy == 1) { const int64_t IC = 1, IX = 0, IY = 1; __VA_ARGS__ } \
        else if (ic == 0 && ix == 1 && iy == 1) { const int64_t IC = 0, IX = 1, IY = 1; __VA_ARGS__ } \
        else { const int64_t IC = ic, IX = ix, IY = iy; __VA_ARGS__ }                               \
    } while (0)

void hm_where_forward(float *out, const uint8_t *c, const float *x, const float *y, int ndim, const int64_t *shape,
                      const int64_t *sc, const int64_t *sx, const int64_t *sy) {
    ew_iter it;
    if (ew_init(&it, ndim, shape, 3, sc, sx, sy) == 0) return;
    int64_t ic = it.st[0][it.ndim - 1], ix = it.st[1][it.ndim - 1], iy = it.st[2][it.ndim - 1];
    #pragma omp parallel for schedule(static) if (it.n > EW_PAR)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        float *po = out + o;
        const uint8_t *pc = c + off[0];
        const float *px = x + off[1], *py = y + off[2];
        /* both values loaded unconditionally, so the select is a blend, not a branch */
        EW_CASES3(for (int64_t j = 0; j < len; j++) {
            float xv = px[j * IX], yv = py[j * IY];
            po[j] = pc[j * IC] ? xv : yv;
        });
    }
}

void hm_where_backward(float *dx, float *dy, const float *dout, const uint8_t *c, int ndim, const int64_t *shape,
                       const int64_t *sc) {
    ew_iter it;
    if (ew_init(&it, ndim, shape, 1, sc, NULL, NULL) == 0) return;
    int64_t ic = it.st[0][it.ndim - 1];
    #pragma omp parallel for schedule(static) if (it.n > EW_PAR)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        const uint8_t *pc = c + off[0];
        const float *pg = dout + o;
        if (ic == 1) {
            if (dx) for (int64_t j = 0; j < len; j++) { float gv = pg[j]; dx[o + j] = pc[j] ? gv : 0.0f; }
            if (dy) for (int64_t j = 0; j < len; j++) { float gv = pg[j]; dy[o + j] = pc[j] ? 0.0f : gv; }
        } else {
            if (dx) for (int64_t j = 0; j < len; j++) { float gv = pg[j]; dx[o + j] = pc[j * ic] ? gv : 0.0f; }
            if (dy) for (int64_t j = 0; j < len; j++) { float gv = pg[j]; dy[o + j] = pc[j * ic] ? 0.0f : gv; }
        }
    }
}

/* ------------------------------------------------------------------- clamp */

/* An absent bound is read as a stride-0 -inf / +inf; the backward keeps
 * track of which were given, since torch's rules differ by case. */
static const float ew_neg_inf = -INFINITY, ew_pos_inf = INFINITY;
static const int64_t ew_zero_strides[EW_MAXD] = {0};

void hm_clamp_forward(float *out, const float *x, const float *lo, const float *hi, int ndim, const int64_t *shape,
                      const int64_t *sx, const int64_t *slo, const int64_t *shi) {
    if (!lo) { lo = &ew_neg_inf; slo = ew_zero_strides; }
    if (!hi) { hi = &ew_pos_inf; shi = ew_zero_strides; }
    ew_iter it;
    if (ew_init(&it, ndim, shape, 3, sx, slo, shi) == 0) return;
    int64_t ic = it.st[0][it.ndim - 1], ix = it.st[1][it.ndim - 1], iy = it.st[2][it.ndim - 1];
    #pragma omp parallel for schedule(static) if (it.n > EW_PAR)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        float *po = out + o;
        const float *pv = x + off[0], *pl = lo + off[1], *ph = hi + off[2];
        /* IC/IX/IY are the strides of x, lo, hi here */
        EW_CASES3(for (int64_t j = 0; j < len; j++) {
            float v = pv[j * IC], l = pl[j * IX], h = ph[j * IY];
            float r = (v < l || l != l) ? l : v;
            po[j] = (r > h || h != h) ? h : r;
        });
    }
}

void hm_clamp_backward(float *dx, float *dlo, float *dhi, const float *dout, const float *x, const float *lo,
                       const float *hi, int ndim, const int64_t *shape, const int64_t *sx, const int64_t *slo,
                       const int64_t *shi) {
    int has_lo = lo != NULL, has_hi = hi != NULL;
    if (!lo) { lo = &ew_neg_inf; slo = ew_zero_strides; }
    if (!hi) { hi = &ew_pos_inf; shi = ew_zero_strides; }
    ew_iter it;
    if (ew_init(&it, ndim, shape, 3, sx, slo, shi) == 0) return;
    int64_t ic = it.st[0][it.ndim - 1], ix = it.st[1][it.ndim - 1], iy = it.st[2][it.ndim - 1];
    #pragma omp parallel for schedule(static) if (it.n > EW_PAR)
    for (int64_t t = 0; t < it.ntiles; t++) {
        int64_t off[3], len;
        int64_t o = ew_tile(&it, t, off, &len);
        const float *pg = dout + o, *pv = x + off[0], *pl = lo + off[1], *ph = hi + off[2];
        if (dx) EW_CASES3(for (int64_t j = 0; j < len; j++) {
            float v = pv[j * IC], l = pl[j * IX], h = ph[j * IY], gv = pg[j];
            dx[o + j] = (v >= l && v <= h) ? gv : 0.0f;
        });
        if (dlo) EW_CASES3(for (int64_t j = 0; j < len; j++) {
            float v = pv[j * IC], l = pl[j * IX], h = ph[j * IY], gv = pg[j];
            dlo[o + j] = (v < l && (!has_hi || l < h)) ? gv : 0.0f;
        });
        if (dhi) EW_CASES3(for (int64_t j = 0; j < len; j++) {
            float v = pv[j * IC], l = pl[j * IX], h = ph[j * IY], gv = pg[j];
            dhi[o + j] = (v > h || (has_lo && h < l)) ? gv : 0.0f;
        });
    }
}
