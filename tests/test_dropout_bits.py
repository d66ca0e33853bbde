"""Dropout masks are Philox4x32-10 words, a pure function of (seed, counter): element i
of a call that starts at counter `offset` is kept iff word (g & 3) of block g >> 2
(g = offset + i, stream 5) is >= p * 2^32. The C fill walks eight blocks at a time
with a vector Philox (AVX2 in the extension built for this machine); this checks it
bit for bit against a NumPy transcription of the algorithm, at every alignment."""
import numpy as np
import pytest

import hepml
import hepml.nn.functional as F

STREAM_DROPOUT = 5
M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)


def philox_words(seed, blocks):
    """[len(blocks), 4] uint32 words of Philox4x32-10 for counters (block, stream 5)."""
    blocks = np.asarray(blocks, dtype=np.uint64)
    c0, c1 = blocks & MASK32, blocks >> np.uint64(32)
    c2 = np.full_like(blocks, STREAM_DROPOUT)
    c3 = np.zeros_like(blocks)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2   # < 2^64: exact in uint64
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & MASK32)
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1)


def reference_mask(seed, offset, n, p):
    g = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    words = philox_words(seed, g >> np.uint64(2))[np.arange(n), (g & np.uint64(3)).astype(np.int64)]
    keep = words >= np.uint64(int(p * 4294967296.0))
    return np.where(keep, np.float32(1.0 / (1.0 - p)), np.float32(0.0)).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5, 33, 1000003, (1 << 34) + 7])
def test_dropout_mask_is_philox_at_any_alignment(offset, threads):
    before = hepml.get_num_threads()
    hepml.set_num_threads(threads)
    try:
        for n in (1, 3, 5, 31, 32, 33, 100, 70001):
            hepml.set_rng_state((99, offset))
            out = F.dropout(hepml.ones(n), p=0.3, training=True).numpy()
            np.testing.assert_array_equal(out, reference_mask(99, offset, n, 0.3), err_msg=f"n={n}")
    finally:
        hepml.set_num_threads(before)


def test_reference_matches_the_published_philox_vector():
    # Salmon et al.'s known-answer test for Philox4x32-10: counter and key all ones
    ones = 0xFFFFFFFF
    c0 = c1 = c2 = c3 = np.array([ones], dtype=np.uint64)
    k0 = k1 = ones
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & MASK32,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & MASK32)
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    assert [int(c[0]) for c in (c0, c1, c2, c3)] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
