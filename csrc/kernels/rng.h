/*
 * Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
 *
 * Why counter-based: a number is a pure function of (seed, stream, index), so a
 * kernel can hand element i to whichever OpenMP thread it likes and still produce
 * the same numbers for the same seed whatever the thread count. There is no
 * generator state in the kernels; the Python layer owns the (seed, offset) pair
 * and advances the offset by what each call consumed.
 */
#ifndef HM_RNG_H
#define HM_RNG_H

#include <stdint.h>
#include <math.h>

/* One Philox4x32-10 block: 128-bit counter, 64-bit key -> 128 random bits. */
static inline void hm_philox4x32(const uint32_t ctr_in[4], uint64_t key64, uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = (uint32_t)key64, k1 = (uint32_t)(key64 >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Block number `block` of stream `stream` for `seed`. */
static inline void hm_philox_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    hm_philox4x32(ctr, seed, out);
}

/* Eight consecutive blocks block0 .. block0 + 7 of one stream at once, laid out
 * out[8 * word + lane]: the same bits as eight hm_philox_block calls. Written
 * lane-wise so the compiler maps the 32x32->64 products onto vector multiplies
 * (vpmuludq); one block at a time is a serial chain of 20 multiplies, and bulk
 * fills (dropout masks of millions of elements) were bound by it. */
#if defined(__AVX2__)
#include <immintrin.h>
/* 32x32 -> 64 products of eight lanes by one constant: (hi, lo) halves. */
static inline void hm_mul32x8(__m256i a, __m256i k, __m256i *hi, __m256i *lo) {
    __m256i even = _mm256_mul_epu32(a, k);                         /* lanes 0, 2, 4, 6 */
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), k);   /* lanes 1, 3, 5, 7 */
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}
#endif

#if defined(__AVX2__)
/* The four output words of blocks block0 .. block0 + 7 as four vectors
 * (w[k] lane l = word k of block block0 + l). */
static inline void hm_philox_x8_avx2(uint64_t seed, uint64_t stream, uint64_t block0, __m256i w[4]) {
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint32_t lo[8], hi[8];
    for (int l = 0; l < 8; l++) {
        uint64_t b = block0 + (uint64_t)l;
        lo[l] = (uint32_t)b; hi[l] = (uint32_t)(b >> 32);
    }
    __m256i c0 = _mm256_loadu_si256((const __m256i *)lo), c1 = _mm256_loadu_si256((const __m256i *)hi);
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)stream), c3 = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    for (int round = 0; round < 10; round++) {
        __m256i h0, l0, h1, l1;
        hm_mul32x8(c0, m0, &h0, &l0);
        hm_mul32x8(c2, m1, &h1, &l1);
        c0 = _mm256_xor_si256(_mm256_xor_si256(h1, c1), _mm256_set1_epi32((int)k0));
        c2 = _mm256_xor_si256(_mm256_xor_si256(h0, c3), _mm256_set1_epi32((int)k1));
        c1 = l1;
        c3 = l0;
        k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}
#endif

static inline void hm_philox_block8(uint64_t seed, uint64_t stream, uint64_t block0, uint32_t out[32]) {
#if defined(__AVX2__)
    __m256i w[4];
    hm_philox_x8_avx2(seed, stream, block0, w);
    for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)(out + 8 * k), w[k]);
#else
    for (int l = 0; l < 8; l++) {
        uint32_t r[4];
        hm_philox_block(seed, stream, block0 + (uint64_t)l, r);
        out[l] = r[0]; out[8 + l] = r[1]; out[16 + l] = r[2]; out[24 + l] = r[3];
    }
#endif
}


/* 32 random bits -> float in the open interval (0, 1): never exactly 0 or 1, so
 * log(u) and logit(u) are always finite. 24 bits of mantissa are used. */
static inline float hm_u32_to_open01(uint32_t x) {
    return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

/* Same in double precision (used by the event generator, 53 bits from two words). */
static inline double hm_u64_to_open01(uint32_t hi, uint32_t lo) {
    uint64_t x = ((uint64_t)hi << 21) ^ (uint64_t)lo; /* 53 bits */
    x &= ((uint64_t)1 << 53) - 1;
    return ((double)x + 0.5) * (1.0 / 9007199254740992.0);
}

/*
 * A sequential reader over one stream: convenient for kernels that need a
 * variable number of draws per item (the event generator draws per event).
 * It lives on the caller's stack for the duration of one item; nothing global.
 */
typedef struct {
    uint64_t seed, stream, block;
    uint32_t buf[4];
    int pos; /* next unused word in buf, 4 = empty */
} hm_stream;

static inline void hm_stream_init(hm_stream *s, uint64_t seed, uint64_t stream) {
    s->seed = seed; s->stream = stream; s->block = 0; s->pos = 4;
}
static inline uint32_t hm_stream_u32(hm_stream *s) {
    if (s->pos == 4) { hm_philox_block(s->seed, s->stream, s->block++, s->buf); s->pos = 0; }
    return s->buf[s->pos++];
}
/* Uniform double in (0, 1). */
static inline double hm_stream_uniform(hm_stream *s) {
    uint32_t hi = hm_stream_u32(s), lo = hm_stream_u32(s);
    return hm_u64_to_open01(hi, lo);
}
/* Standard normal double (Box-Muller; one of the pair is discarded for simplicity). */
static inline double hm_stream_normal(hm_stream *s) {
    double u1 = hm_stream_uniform(s), u2 = hm_stream_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- bulk fills: element i of the call is global index offset + i ---- */

/* Uniform floats in [low, high). Consumes n counter values (4 per Philox block). */
void hm_rand_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float low, float high);
/* Normal floats N(mean, std^2). Consumes n counter values (2 per block). */
void hm_rand_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std);
/* Uniform 64-bit integers in [low, high) by rejection-free multiply-shift
 * (bias < 2^-32 for ranges below 2^32). Consumes n counter values. */
void hm_rand_int64(int64_t *out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high);
/* A uniformly random permutation of 0..n-1 (sort by random 64-bit keys;
 * thread-count independent). `keys` is caller-provided scratch of 2n uint64. */
void hm_rand_perm(int64_t *out, uint64_t *keys, int64_t n, uint64_t seed, uint64_t offset);
/* Bernoulli keep mask for dropout: out[i] = (u_i >= p) ? scale : 0, scale = 1/(1-p). */
void hm_rand_dropout_mask(float *out, int64_t n, uint64_t seed, uint64_t offset, float p);

/* Streams reserved so that different consumers never share counter space. */
#define HM_STREAM_UNIFORM 1u
#define HM_STREAM_NORMAL  2u
#define HM_STREAM_INT     3u
#define HM_STREAM_PERM    4u
#define HM_STREAM_DROPOUT 5u
#define HM_STREAM_EVENTS  ((uint64_t)1 << 32) /* event e of the generator uses stream HM_STREAM_EVENTS + e */

#endif
