/*
 * Data movement kernels: strided copies (permute, transpose, expand, flip,
 * slicing), gathers and scatters for indexing, block copies for cat/stack/
 * narrow, and the dim-wise gather of torch.gather.
 *
 * hepml tensors are contiguous, so every non-trivial shape op is a copy that
 * reads its source through element strides. A "strided view" is (ndim,
 * shape[], stride[]) over a base pointer: element (i0, i1, ...) lives at
 * base[sum_d i_d * stride[d]]. Strides may be 0 (broadcast) or negative (flip).
 * The kernels are generic in the element size (1, 4 or 8 bytes: bool,
 * float32, int64) so masks and indices move through the same code.
 *
 * The index kernels describe a result of shape [P..., B, Q...]:
 *   P: a strided view (the dims before the advanced-index block),
 *   B: nb positions given as element offsets boff[b] (advanced indices,
 *      already bounds-checked and combined with their strides),
 *   Q: a strided view (the dims after the block).
 * Plain slicing is the special case nb = 1, boff = {0}, P empty.
 */
#ifndef HM_SHAPE_H
#define HM_SHAPE_H
#include <stdint.h>

/* At most this many dims in a strided view (repeat uses 2 per tensor dim). */
#define HM_STRIDED_MAX 16

/* out (contiguous, `shape`) = base[strided]; overwrites out. */
void hm_strided_copy(void *out, const void *base, int64_t elsize, int ndim, const int64_t *shape,
                     const int64_t *stride);

/* base[strided] += src (contiguous, `shape`), float32. When `overlap` is
 * nonzero the view may map several elements to one place (stride 0): it is
 * then summed serially in row-major order; otherwise split across threads. */
void hm_strided_add_f32(float *base, const float *src, int ndim, const int64_t *shape, const int64_t *stride,
                        int overlap);

/* out[p, b, q] = base[p . pstride + boff[b] + q . qstride]; out contiguous. */
void hm_index_gather(void *out, const void *base, int64_t elsize, int np, const int64_t *pshape,
                     const int64_t *pstride, int64_t nb, const int64_t *boff, int nq, const int64_t *qshape,
                     const int64_t *qstride);

/* base[p . pstride + boff[b] + q . qstride] += src[p, b, q] (float32).
 * Repeated positions in boff accumulate; the b loop runs in order, so the
 * result does not depend on the thread count (threads split p only, and
 * distinct p never share a destination). */
void hm_index_scatter_add_f32(float *base, const float *src, int np, const int64_t *pshape, const int64_t *pstride,
                              int64_t nb, const int64_t *boff, int nq, const int64_t *qshape, const int64_t *qstride);

/* base[p . pstride + boff[b] + q . qstride] = src[p, b, q]; with repeated
 * positions the last one in order wins (as NumPy). */
void hm_index_scatter(void *base, const void *src, int64_t elsize, int np, const int64_t *pshape,
                      const int64_t *pstride, int64_t nb, const int64_t *boff, int nq, const int64_t *qshape,
                      const int64_t *qstride);

/* For r in [0, rows): dst[r * dst_row + dst_off + k] = src[r * src_row + src_off + k], k < len
 * (all in elements). cat, stack, narrow and their gradients. */
void hm_block_copy(void *dst, int64_t dst_row, int64_t dst_off, const void *src, int64_t src_row, int64_t src_off,
                   int64_t rows, int64_t len, int64_t elsize);

/* torch.gather along `dim`: out has index's shape (ndim dims, ishape);
 *   out[m] = src[sum_{d != dim} m_d * sstride[d] + index[m] * sstride[dim]].
 * Index values must already be in range. */
void hm_gather_dim(void *out, const void *src, int64_t elsize, const int64_t *index, int ndim, const int64_t *ishape,
                   const int64_t *sstride, int dim);
/* The gradient: dsrc[...] += g[m] at the same positions (dsrc not cleared). */
void hm_gather_dim_backward(float *dsrc, const float *g, const int64_t *index, int ndim, const int64_t *ishape,
                            const int64_t *sstride, int dim);
/* First flat position k in [0, n) with index[k] out of range, or -1: the
 * range is [0, size), or [-size, size) when allow_negative is set. */
int64_t hm_index_find_out_of_range(const int64_t *index, int64_t n, int64_t size, int allow_negative);

/* out = mask ? value : x over `shape`, mask read through broadcast strides
 * mstride (0 where broadcast). dx = mask ? 0 : g. */
void hm_masked_fill_forward(float *out, const float *x, const uint8_t *mask, int ndim, const int64_t *shape,
                            const int64_t *mstride, float value);
void hm_masked_fill_backward(float *dx, const float *g, const uint8_t *mask, int ndim, const int64_t *shape,
                             const int64_t *mstride);

/* Positions of the true entries of a bool array of `ndim` dims, as ndim
 * index arrays out[k][0..count) (k-th coordinate). count = hm_count_true. */
int64_t hm_count_true(const uint8_t *mask, int64_t n);
void hm_nonzero(int64_t **out, const uint8_t *mask, int ndim, const int64_t *shape);

/* Roll along the middle axis of [outer, n, inner]: out[o, (i + shift) % n, :] = x[o, i, :], 0 <= shift < n. */
void hm_roll(void *out, const void *x, int64_t elsize, int64_t outer, int64_t n, int64_t inner, int64_t shift);

#endif
