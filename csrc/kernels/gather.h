/*
 * Data-movement kernels for the dataset pipeline and the DataLoader: row gathers,
 * strided column copies, jagged <-> padded conversions, finiteness checks and
 * mask -> index compaction. None of them does arithmetic on the values; they exist
 * so that hepml.data never loops over events in Python and never leans on NumPy
 * for per-event work.
 *
 * Conventions: sizes are int64_t; rows are byte blocks of `row_bytes` (so one
 * kernel serves float32, int64 and bool arrays alike); index arrays are int64.
 * Every parallel loop writes disjoint output ranges, so results never depend on
 * the thread count. No allocation anywhere.
 */
#ifndef HM_GATHER_H
#define HM_GATHER_H

#include <stddef.h>
#include <stdint.h>

/* Position of the first idx[j] outside [0, n_rows), or -1 when all are in range.
 * The binding calls it before hm_gather_rows so a bad index never reads out of bounds. */
int64_t hm_index_first_bad(const int64_t *idx, int64_t n_idx, int64_t n_rows);

/* out row j = in row idx[j] (rows of row_bytes bytes). Indices must be in range
 * (see hm_index_first_bad). Parallel over rows: this is the DataLoader's batch
 * gather from memory-mapped arrays, where each row touches its own pages. */
void hm_gather_rows(void *out, const void *in, const int64_t *idx, int64_t n_idx, int64_t row_bytes);

/* memcpy of n bytes split over threads (large copies of memory-mapped outputs). */
void hm_copy_bytes(void *out, const void *in, int64_t n);

/* out[i * out_stride] = in[i * in_stride], i < n, for 4-byte elements (float32 or
 * int32, moved as bits): one column of an array of structures to or from a plain
 * column. Strides are in elements. */
void hm_copy_strided32(uint32_t *out, int64_t out_stride, const uint32_t *in, int64_t in_stride, int64_t n);

/* Row blocks: out[r * out_stride + (0 .. row_bytes-1)] = in[r * in_stride + ...], r < n
 * (strides in bytes). Places a narrow array into some columns of a wider one, e.g. the
 * 13 jet mask bytes at the start of each 16-byte jet+lepton+MET mask row. */
void hm_copy_rows_strided(uint8_t *out, int64_t out_stride, const uint8_t *in, int64_t in_stride,
                          int64_t row_bytes, int64_t n);

/*
 * Jagged collections: event i owns rows offsets[i] .. offsets[i+1]-1 of a flat array.
 * offsets[0] = base, offsets[i+1] = offsets[i] + counts[i]. Returns offsets[n] (the
 * total), or -1 if a count is negative or above max_count (nothing meaningful written).
 * Sequential: a prefix sum, n small compared with the copy that follows.
 */
int64_t hm_offsets_from_counts(int64_t *offsets, const int32_t *counts, int64_t n, int64_t base,
                               int64_t max_count);

/* flat[(offsets[i] - offsets[0]) + j] = padded[i, j] for j < offsets[i+1] - offsets[i]:
 * padded[n, k, f] float32 holds the valid objects of each event first (as the generator
 * writes them). The caller guarantees counts <= k (hm_offsets_from_counts with max_count k). */
void hm_jagged_from_padded(float *flat, const float *padded, const int64_t *offsets, int64_t n, int64_t k,
                           int64_t f);

/* 0 if offsets[0] >= 0, offsets is non-decreasing and offsets[n] <= n_flat; else the
 * (1-based) position of the first violation. */
int64_t hm_offsets_check(const int64_t *offsets, int64_t n, int64_t n_flat);

/*
 * Finiteness of rows: x[n, row_len] float32 (row r at x + r * row_len). ok[r] is cleared
 * where row r holds a NaN or an infinity (ok[r] is never set, so several arrays can be
 * checked in turn into one mask). Returns the number of rows of x that are not finite,
 * whatever ok held before, so the caller can say which array the bad values were in.
 */
int64_t hm_rows_finite_and(uint8_t *ok, const float *x, int64_t n, int64_t row_len);

/* The same for a jagged collection: event i is not finite if any of its flat rows
 * (f floats each, rows offsets[i] - offsets[0] .. offsets[i+1] - offsets[0] - 1) is not. */
int64_t hm_jagged_rows_finite_and(uint8_t *ok, const float *flat, const int64_t *offsets, int64_t n, int64_t f);

/* Number of nonzero entries of mask[n]. */
int64_t hm_mask_count(const uint8_t *mask, int64_t n);
/* idx[0 .. count-1] = positions of the nonzero entries of mask[n], in order; returns count.
 * idx must have room for hm_mask_count(mask, n) entries. */
int64_t hm_mask_to_index(int64_t *idx, const uint8_t *mask, int64_t n);

#endif
