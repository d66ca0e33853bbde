/*
 * Data movement: strided copies, index gathers/scatters, block copies.
 * See shape.h for the layout conventions. Everything here moves bytes; the
 * only arithmetic is the float32 scatter-add of gradients.
 */
#include "shape.h"
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many bytes a copy stays on one thread: the fork/join (~3 us)
 * costs more than the copy itself. */
#define PAR_BYTES (1 << 18)

typedef struct {
    int nd;
    int64_t shape[HM_STRIDED_MAX], stride[HM_STRIDED_MAX];
    int64_t n; /* number of elements */
} view_t;

/* Drop size-1 dims and merge neighbours that are contiguous with each other,
 * so that e.g. a slice of whole rows becomes one long run (a memcpy). */
static void make_view(view_t *v, int nd, const int64_t *shape, const int64_t *stride) {
    v->nd = 0;
    v->n = 1;
    for (int d = 0; d < nd; d++) v->n *= shape[d];
    if (v->n == 0) return;
    for (int d = 0; d < nd; d++) {
        if (shape[d] == 1) continue;
        if (v->nd > 0 && v->stride[v->nd - 1] == stride[d] * shape[d]) {
            v->shape[v->nd - 1] *= shape[d];
            v->stride[v->nd - 1] = stride[d];
        } else {
            v->shape[v->nd] = shape[d];
            v->stride[v->nd] = stride[d];
            v->nd++;
        }
    }
}

static inline int64_t view_offset(const view_t *v, int64_t flat) {
    int64_t off = 0;
    for (int d = v->nd - 1; d >= 0; d--) {
        off += (flat % v->shape[d]) * v->stride[d];
        flat /= v->shape[d];
    }
    return off;
}

/* A run of `n` elements read with source stride `s` into contiguous dst. */
static inline void gather_run(char *dst, const char *src, int64_t n, int64_t s, int64_t es) {
    if (s == 1) { memcpy(dst, src, (size_t)(n * es)); return; }
    if (es == 4) {
        uint32_t *d = (uint32_t *)dst;
        const uint32_t *p = (const uint32_t *)src;
        for (int64_t k = 0; k < n; k++) d[k] = p[k * s];
    } else if (es == 8) {
        uint64_t *d = (uint64_t *)dst;
        const uint64_t *p = (const uint64_t *)src;
        for (int64_t k = 0; k < n; k++) d[k] = p[k * s];
    } else if (es == 1) {
        for (int64_t k = 0; k < n; k++) dst[k] = src[k * s];
    } else {
        for (int64_t k = 0; k < n; k++) memcpy(dst + k * es, src + k * s * es, (size_t)es);
    }
}

/* The mirror image: contiguous src written with destination stride s. */
static inline void scatter_run(char *dst, const char *src, int64_t n, int64_t s, int64_t es) {
    if (s == 1) { memcpy(dst, src, (size_t)(n * es)); return; }
    if (es == 4) {
        uint32_t *d = (uint32_t *)dst;
        const uint32_t *p = (const uint32_t *)src;
        for (int64_t k = 0; k < n; k++) d[k * s] = p[k];
    } else if (es == 8) {
        uint64_t *d = (uint64_t *)dst;
        const uint64_t *p = (const uint64_t *)src;
        for (int64_t k = 0; k < n; k++) d[k * s] = p[k];
    } else if (es == 1) {
        for (int64_t k = 0; k < n; k++) dst[k * s] = src[k];
    } else {
        for (int64_t k = 0; k < n; k++) memcpy(dst + k * s * es, src + k * es, (size_t)es);
    }
}

static inline void add_run(float *dst, const float *src, int64_t n, int64_t s) {
    if (s == 1) {
        for (int64_t k = 0; k < n; k++) dst[k] += src[k];
    } else {
        for (int64_t k = 0; k < n; k++) dst[k * s] += src[k];
    }
}

enum { OP_GATHER, OP_SCATTER, OP_ADD };

/* Walk flat positions [lo, hi) of view v (row-major), moving runs of the
 * innermost dim between the strided side (base) and the contiguous side
 * (flat, indexed from position 0 of the view). */
static void walk(const view_t *v, char *base, char *flat, int64_t es, int64_t lo, int64_t hi, int op) {
    if (lo >= hi) return;
    if (v->nd == 0) {
        /* a single element */
        if (op == OP_GATHER) memcpy(flat, base, (size_t)es);
        else if (op == OP_SCATTER) memcpy(base, flat, (size_t)es);
        else *(float *)base += *(const float *)flat;
        return;
    }
    int nd = v->nd;
    int64_t idx[HM_STRIDED_MAX], off = 0, rem = lo;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % v->shape[d];
        rem /= v->shape[d];
        off += idx[d] * v->stride[d];
    }
    int64_t inner = v->shape[nd - 1], s = v->stride[nd - 1];
    for (int64_t k = lo; k < hi;) {
        int64_t run = inner - idx[nd - 1];
        if (run > hi - k) run = hi - k;
        if (op == OP_GATHER) gather_run(flat + k * es, base + off * es, run, s, es);
        else if (op == OP_SCATTER) scatter_run(base + off * es, flat + k * es, run, s, es);
        else add_run((float *)base + off, (const float *)flat + k, run, s);
        k += run;
        if (k >= hi) break;
        /* we finished a row: carry into the outer dims */
        off -= idx[nd - 1] * s;
        idx[nd - 1] = 0;
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            off += v->stride[d];
            if (idx[d] < v->shape[d]) break;
            off -= v->shape[d] * v->stride[d];
            idx[d] = 0;
        }
    }
}

/* A float32 batch of transposes (innermost source stride != 1 while the
 * next dim is contiguous in the source): copied in 32 x 32 tiles so both
 * the reads and the writes stay within a few cache lines. */
static int try_tiled_transpose(const view_t *v, float *out, const float *base) {
    int nd = v->nd;
    if (nd < 2 || v->stride[nd - 2] != 1 || v->stride[nd - 1] == 1 || v->shape[nd - 1] < 16 || v->shape[nd - 2] < 16)
        return 0;
    int64_t rows = v->shape[nd - 2], cols = v->shape[nd - 1], cs = v->stride[nd - 1];
    int64_t batch = v->n / (rows * cols);
    view_t outer = {.nd = nd - 2, .n = batch};
    for (int d = 0; d < nd - 2; d++) { outer.shape[d] = v->shape[d]; outer.stride[d] = v->stride[d]; }
    int64_t tr = (rows + 31) / 32, tc = (cols + 31) / 32;
    #pragma omp parallel for schedule(static) if (v->n * 4 > PAR_BYTES)
    for (int64_t t = 0; t < batch * tr * tc; t++) {
        int64_t bidx = t / (tr * tc), ti = (t / tc) % tr, tj = t % tc;
        const float *src = base + view_offset(&outer, bidx);
        float *dst = out + bidx * rows * cols;
        int64_t i1 = ti * 32 + 32 < rows ? ti * 32 + 32 : rows, j1 = tj * 32 + 32 < cols ? tj * 32 + 32 : cols;
        for (int64_t i = ti * 32; i < i1; i++)
            for (int64_t j = tj * 32; j < j1; j++) dst[i * cols + j] = src[i + j * cs];
    }
    return 1;
}

void hm_strided_copy(void *out, const void *base, int64_t elsize, int ndim, const int64_t *shape,
                     const int64_t *stride) {
    view_t v;
    make_view(&v, ndim, shape, stride);
    if (v.n == 0) return;
    if (elsize == 4 && try_tiled_transpose(&v, (float *)out, (const float *)base)) return;
    int64_t n = v.n;
    if (n * elsize <= PAR_BYTES) {
        walk(&v, (char *)base, (char *)out, elsize, 0, n, OP_GATHER);
        return;
    }
    /* Each thread copies a contiguous range of the output; a copy is exact,
     * so how the range is split cannot change the result. */
    #pragma omp parallel
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        walk(&v, (char *)base, (char *)out, elsize, lo, hi, OP_GATHER);
    }
}

void hm_strided_add_f32(float *base, const float *src, int ndim, const int64_t *shape, const int64_t *stride,
                        int overlap) {
    view_t v;
    make_view(&v, ndim, shape, stride);
    if (v.n == 0) return;
    int64_t n = v.n;
    if (overlap || n * 4 <= PAR_BYTES) {
        walk(&v, (char *)base, (char *)src, 4, 0, n, OP_ADD);
        return;
    }
    #pragma omp parallel
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        walk(&v, (char *)base, (char *)src, 4, lo, hi, OP_ADD);
    }
}

/* Shared driver of the three index kernels. */
static void index_op(char *base, char *flat, int64_t es, int np, const int64_t *pshape, const int64_t *pstride,
                     int64_t nb, const int64_t *boff, int nq, const int64_t *qshape, const int64_t *qstride, int op) {
    view_t P, Q;
    make_view(&P, np, pshape, pstride);
    make_view(&Q, nq, qshape, qstride);
    int64_t pn = P.n, qn = Q.n;
    if (pn == 0 || qn == 0 || nb == 0) return;
    int64_t bytes = pn * nb * qn * es;
    if (op == OP_GATHER) {
        /* reads only: split the (p, b) pairs across threads */
        int64_t pairs = pn * nb;
        #pragma omp parallel for schedule(static) if (bytes > PAR_BYTES)
        for (int64_t t = 0; t < pairs; t++) {
            int64_t p = t / nb, b = t - p * nb;
            int64_t off = (P.nd ? view_offset(&P, p) : 0) + boff[b];
            if (qn == 1 && es == 4) ((uint32_t *)flat)[t] = ((const uint32_t *)base)[off];
            else walk(&Q, base + off * es, flat + t * qn * es, es, 0, qn, OP_GATHER);
        }
        return;
    }
    /* Split P across threads: distinct P positions never share a destination,
     * and within one the b loop keeps its order (accumulation / last write). */
    #pragma omp parallel for schedule(static) if (bytes > PAR_BYTES && pn > 1)
    for (int64_t p = 0; p < pn; p++) {
        int64_t poff = view_offset(&P, p);
        char *fp = flat + p * nb * qn * es;
        for (int64_t b = 0; b < nb; b++) walk(&Q, base + (poff + boff[b]) * es, fp + b * qn * es, es, 0, qn, op);
    }
}

void hm_index_gather(void *out, const void *base, int64_t elsize, int np, const int64_t *pshape,
                     const int64_t *pstride, int64_t nb, const int64_t *boff, int nq, const int64_t *qshape,
                     const int64_t *qstride) {
    index_op((char *)base, (char *)out, elsize, np, pshape, pstride, nb, boff, nq, qshape, qstride, OP_GATHER);
}

void hm_index_scatter_add_f32(float *base, const float *src, int np, const int64_t *pshape, const int64_t *pstride,
                              int64_t nb, const int64_t *boff, int nq, const int64_t *qshape, const int64_t *qstride) {
    index_op((char *)base, (char *)src, 4, np, pshape, pstride, nb, boff, nq, qshape, qstride, OP_ADD);
}

void hm_index_scatter(void *base, const void *src, int64_t elsize, int np, const int64_t *pshape,
                      const int64_t *pstride, int64_t nb, const int64_t *boff, int nq, const int64_t *qshape,
                      const int64_t *qstride) {
    index_op((char *)base, (char *)src, elsize, np, pshape, pstride, nb, boff, nq, qshape, qstride, OP_SCATTER);
}

void hm_block_copy(void *dst, int64_t dst_row, int64_t dst_off, const void *src, int64_t src_row, int64_t src_off,
                   int64_t rows, int64_t len, int64_t elsize) {
    char *d = (char *)dst;
    const char *s = (const char *)src;
    size_t nbytes = (size_t)(len * elsize);
    #pragma omp parallel for schedule(static) if (rows * len * elsize > PAR_BYTES && rows > 1)
    for (int64_t r = 0; r < rows; r++)
        memcpy(d + (r * dst_row + dst_off) * elsize, s + (r * src_row + src_off) * elsize, nbytes);
}

/* Offset into src of the first element of row r (all dims but the last) of
 * an index of shape ishape, leaving out the `dim` coordinate. */
static inline int64_t gather_row_offset(int64_t r, int ndim, const int64_t *ishape, const int64_t *sstride, int dim) {
    int64_t off = 0;
    for (int d = ndim - 2; d >= 0; d--) {
        int64_t i = r % ishape[d];
        r /= ishape[d];
        if (d != dim) off += i * sstride[d];
    }
    return off;
}

void hm_gather_dim(void *out, const void *src, int64_t elsize, const int64_t *index, int ndim, const int64_t *ishape,
                   const int64_t *sstride, int dim) {
    if (ndim == 0) { memcpy(out, (const char *)src + index[0] * sstride[0] * elsize, (size_t)elsize); return; }
    int64_t cols = ishape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= ishape[d];
    if (rows * cols == 0) return;
    int64_t cs = dim == ndim - 1 ? 0 : sstride[ndim - 1], ds = sstride[dim];
    #pragma omp parallel for schedule(static) if (rows * cols * elsize > PAR_BYTES)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = gather_row_offset(r, ndim, ishape, sstride, dim);
        const int64_t *ix = index + r * cols;
        if (elsize == 4) {
            const float *s = (const float *)src + off;
            float *o = (float *)out + r * cols;
            for (int64_t j = 0; j < cols; j++) o[j] = s[j * cs + ix[j] * ds];
        } else {
            char *o = (char *)out + r * cols * elsize;
            for (int64_t j = 0; j < cols; j++)
                memcpy(o + j * elsize, (const char *)src + (off + j * cs + ix[j] * ds) * elsize, (size_t)elsize);
        }
    }
}

void hm_gather_dim_backward(float *dsrc, const float *g, const int64_t *index, int ndim, const int64_t *ishape,
                            const int64_t *sstride, int dim) {
    if (ndim == 0) { dsrc[index[0] * sstride[0]] += g[0]; return; }
    int64_t cols = ishape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= ishape[d];
    if (rows * cols == 0) return;
    int64_t cs = dim == ndim - 1 ? 0 : sstride[ndim - 1], ds = sstride[dim];
    /* Two index positions can hit the same source element only when they
     * differ in the `dim` coordinate alone; so for dim > 0 the blocks of
     * different first coordinates are independent and may run in parallel,
     * each in its serial order (deterministic). */
    int64_t n0 = ishape[0], per0 = rows / (n0 ? n0 : 1);
    int par = dim != 0 && ndim > 1 && rows * cols > 65536;
    #pragma omp parallel for schedule(static) if (par)
    for (int64_t i0 = 0; i0 < n0; i0++) {
        for (int64_t r = i0 * per0; r < (i0 + 1) * per0; r++) {
            int64_t off = gather_row_offset(r, ndim, ishape, sstride, dim);
            const int64_t *ix = index + r * cols;
            const float *gr = g + r * cols;
            for (int64_t j = 0; j < cols; j++) dsrc[off + j * cs + ix[j] * ds] += gr[j];
        }
    }
}

int64_t hm_index_find_out_of_range(const int64_t *index, int64_t n, int64_t size, int allow_negative) {
    int64_t lo = allow_negative ? -size : 0;
    for (int64_t k = 0; k < n; k++)
        if (index[k] < lo || index[k] >= size) return k;
    return -1;
}

/* The mask is read through broadcast strides; its innermost stride is 0
 * (one mask value per row: fill or copy the whole row) or 1 (vector loop). */
void hm_masked_fill_forward(float *out, const float *x, const uint8_t *mask, int ndim, const int64_t *shape,
                            const int64_t *mstride, float value) {
    if (ndim == 0) { out[0] = mask[0] ? value : x[0]; return; }
    int64_t inner = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    int64_t ms = mstride[ndim - 1];
    #pragma omp parallel for schedule(static) if (rows * inner > 131072)
    for (int64_t r = 0; r < rows; r++) {
        int64_t moff = 0, rem = r;
        for (int d = ndim - 2; d >= 0; d--) {
            moff += (rem % shape[d]) * mstride[d];
            rem /= shape[d];
        }
        const uint8_t *m = mask + moff;
        float *o = out + r * inner;
        const float *a = x + r * inner;
        if (ms == 0) {
            if (m[0]) for (int64_t j = 0; j < inner; j++) o[j] = value;
            else if (o != a) memcpy(o, a, (size_t)inner * sizeof(float));
        } else {
            for (int64_t j = 0; j < inner; j++) o[j] = m[j] ? value : a[j];
        }
    }
}

void hm_masked_fill_backward(float *dx, const float *g, const uint8_t *mask, int ndim, const int64_t *shape,
                             const int64_t *mstride) {
    if (ndim == 0) { dx[0] = mask[0] ? 0.0f : g[0]; return; }
    int64_t inner = shape[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
    int64_t ms = mstride[ndim - 1];
    #pragma omp parallel for schedule(static) if (rows * inner > 131072)
    for (int64_t r = 0; r < rows; r++) {
        int64_t moff = 0, rem = r;
        for (int d = ndim - 2; d >= 0; d--) {
            moff += (rem % shape[d]) * mstride[d];
            rem /= shape[d];
        }
        const uint8_t *m = mask + moff;
        float *o = dx + r * inner;
        const float *a = g + r * inner;
        if (ms == 0) {
            if (m[0]) memset(o, 0, (size_t)inner * sizeof(float));
            else memcpy(o, a, (size_t)inner * sizeof(float));
        } else {
            for (int64_t j = 0; j < inner; j++) o[j] = m[j] ? 0.0f : a[j];
        }
    }
}

int64_t hm_count_true(const uint8_t *mask, int64_t n) {
    int64_t c = 0;
    for (int64_t k = 0; k < n; k++) c += mask[k] != 0;
    return c;
}

void hm_nonzero(int64_t **out, const uint8_t *mask, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    int64_t idx[HM_STRIDED_MAX] = {0}, c = 0;
    for (int64_t k = 0; k < n; k++) {
        if (mask[k]) {
            for (int d = 0; d < ndim; d++) out[d][c] = idx[d];
            c++;
        }
        for (int d = ndim - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

void hm_roll(void *out, const void *x, int64_t elsize, int64_t outer, int64_t n, int64_t inner, int64_t shift) {
    /* rows [0, n - shift) move to [shift, n), rows [n - shift, n) wrap to [0, shift) */
    int64_t row = n * inner;
    hm_block_copy(out, row, shift * inner, x, row, 0, outer, (n - shift) * inner, elsize);
    hm_block_copy(out, row, 0, x, row, (n - shift) * inner, outer, shift * inner, elsize);
}
