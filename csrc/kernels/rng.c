/* Bulk random fills on top of the Philox block function in rng.h. */
#include "rng.h"
#include <stdlib.h>

void hm_rand_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float low, float high) {
    float span = high - low;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        uint64_t g = offset + (uint64_t)i;
        uint32_t r[4];
        hm_philox_block(seed, HM_STREAM_UNIFORM, g >> 2, r);
        float u = hm_u32_to_open01(r[g & 3]);
        float v = low + span * u;
        out[i] = v < high ? v : low; /* rounding could reach high; keep [low, high) */
    }
}

void hm_rand_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        uint64_t g = offset + (uint64_t)i;
        uint32_t r[4];
        hm_philox_block(seed, HM_STREAM_NORMAL, g >> 1, r);
        /* Box-Muller in double: both members of the pair come from one block, even
         * indices take the cosine and odd ones the sine. */
        double u1 = hm_u64_to_open01(r[0], r[1]);
        double u2 = hm_u64_to_open01(r[2], r[3]);
        double rad = sqrt(-2.0 * log(u1));
        double z = (g & 1) ? rad * sin(6.283185307179586 * u2) : rad * cos(6.283185307179586 * u2);
        out[i] = mean + std * (float)z;
    }
}

void hm_rand_int64(int64_t *out, int64_t n, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
    uint64_t range = (uint64_t)(high - low);
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        uint64_t g = offset + (uint64_t)i;
        uint32_t r[4];
        hm_philox_block(seed, HM_STREAM_INT, g, r);
        uint64_t x = ((uint64_t)r[0] << 32) | r[1];
        /* 128-bit multiply-shift maps x uniformly onto [0, range). */
        unsigned __int128 m = (unsigned __int128)x * range;
        out[i] = low + (int64_t)(uint64_t)(m >> 64);
    }
}

static int cmp_key_index(const void *a, const void *b) {
    const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : (x[1] > y[1]);
}

void hm_rand_perm(int64_t *out, uint64_t *keys, int64_t n, uint64_t seed, uint64_t offset) {
    /* keys holds n pairs interleaved as (random key, index): caller gives 2n words. */
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        uint32_t r[4];
        hm_philox_block(seed, HM_STREAM_PERM, offset + (uint64_t)i, r);
        keys[2 * i] = ((uint64_t)r[0] << 32) | r[1];
        keys[2 * i + 1] = (uint64_t)i;
    }
    /* Ties (probability ~n^2/2^65) are broken by index, so the result is a pure
     * function of the keys. */
    qsort(keys, (size_t)n, 2 * sizeof(uint64_t), cmp_key_index);
    for (int64_t i = 0; i < n; i++) out[i] = (int64_t)keys[2 * i + 1];
}

#if defined(__AVX2__)
/* The 32 mask values of blocks block0 .. block0 + 7 into o[0 .. 31]: keep where
 * word >= thresh (unsigned: max(word, t) == word). For p = 1 the threshold 2^32
 * wraps to 0 and keeps everything, but scale is 0 then. */
static inline void dropout_block8_avx2(float *o, uint64_t seed, uint64_t block0, uint32_t thresh, float scale) {
    __m256i w[4];
    hm_philox_x8_avx2(seed, HM_STREAM_DROPOUT, block0, w);
    const __m256i t = _mm256_set1_epi32((int)thresh);
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 kept[4];
    for (int k = 0; k < 4; k++)
        kept[k] = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(w[k], t), w[k])), vs);
    /* kept[k] lane l is element 4 l + k: a 4 x 8 transpose to memory order */
    __m256 t0 = _mm256_unpacklo_ps(kept[0], kept[1]), t1 = _mm256_unpackhi_ps(kept[0], kept[1]);
    __m256 t2 = _mm256_unpacklo_ps(kept[2], kept[3]), t3 = _mm256_unpackhi_ps(kept[2], kept[3]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(o, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}
#endif

void hm_rand_dropout_mask(float *out, int64_t n, uint64_t seed, uint64_t offset, float p) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    /* Compare raw 32-bit words against p * 2^32: no float conversion per element. */
    uint64_t thresh64 = (uint64_t)((double)p * 4294967296.0);
    if (n <= 0) return;
    /* One Philox block serves the four counters g with the same g >> 2, so walk
     * blocks, not elements: 4x fewer block evaluations, identical bits. */
    uint64_t first = offset >> 2, last = (offset + (uint64_t)n - 1) >> 2;
    int64_t nblocks = (int64_t)(last - first + 1);
    /* Eight blocks (32 elements) per step through hm_philox_block8; the
     * counters at the two ends that fall outside [offset, offset + n) are
     * skipped, so the bits are those of one block at a time. */
    int64_t ngroups = (nblocks + 7) / 8;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t grp = 0; grp < ngroups; grp++) {
        uint64_t block0 = first + (uint64_t)(8 * grp);
#if defined(__AVX2__)
        if ((block0 << 2) >= offset && ((block0 + 8) << 2) <= offset + (uint64_t)n) {
            /* the usual case: all 32 counters inside the call, no bounds checks */
            dropout_block8_avx2(out + ((block0 << 2) - offset), seed, block0, (uint32_t)thresh64, scale);
            continue;
        }
#endif
        uint32_t r[32];
        hm_philox_block8(seed, HM_STREAM_DROPOUT, block0, r);
        for (int lane = 0; lane < 8; lane++) {
            uint64_t block = block0 + (uint64_t)lane;
            if (block > last) break;
            for (int l = 0; l < 4; l++) {
                uint64_t g = (block << 2) + (uint64_t)l;
                if (g < offset || g >= offset + (uint64_t)n) continue;
                out[g - offset] = ((uint64_t)r[8 * l + lane] >= thresh64) ? scale : 0.0f;
            }
        }
    }
}
