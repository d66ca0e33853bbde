"""Shared test utilities: finite-difference gradient checks and PyTorch comparisons.

(NumPy arithmetic is fine here: tests are the reference, not the product.)
"""
import contextlib

import numpy as np
import pytest

import hepml


def to_np(t):
    return np.array(t.numpy() if isinstance(t, hepml.Tensor) else t, dtype=np.float64)


def gradcheck(fn, *arrays, eps=1e-3, rtol=2e-2, atol=2e-3, seed=0, argnums=None):
    """Check hepml's backward of ``fn(*tensors)`` against central differences.

    fn takes hepml tensors and returns one tensor. The scalar checked is
    sum(fn(...) * W) with a fixed random W, so every output element counts.
    Differences are taken in float32 (the ops' precision) with step ``eps``
    relative to each entry's magnitude (at least eps).
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float32) for a in arrays]
    argnums = range(len(arrays)) if argnums is None else argnums
    tensors = [hepml.tensor(a, requires_grad=(i in argnums)) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    w = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(gradient=w)

    def scalar(arrs):
        with hepml.no_grad():
            o = fn(*[hepml.tensor(a) for a in arrs])
        return float(np.sum(o.numpy().astype(np.float64) * w))

    for i in argnums:
        analytic = to_np(tensors[i].grad) if tensors[i].grad is not None else np.zeros(arrays[i].shape)
        numeric = np.zeros(arrays[i].shape)
        flat = arrays[i].reshape(-1)
        for k in range(flat.size):
            h = eps * max(1.0, abs(float(flat[k])))
            orig = flat[k]
            flat[k] = orig + h
            plus = scalar(arrays)
            flat[k] = orig - h
            minus = scalar(arrays)
            flat[k] = orig
            hh = (np.float32(orig + h) - np.float32(orig - h))
            numeric.reshape(-1)[k] = (plus - minus) / float(hh)
        scale = max(1.0, np.abs(numeric).max())
        err = np.abs(analytic - numeric).max()
        assert err <= atol * scale + rtol * np.abs(numeric).max(), (
            f"gradient of argument {i} differs from finite differences by {err:.3g}\n"
            f"analytic:\n{analytic}\nnumeric:\n{numeric}")


def torch_or_skip():
    return pytest.importorskip("torch")


@contextlib.contextmanager
def no_torch_fastpath():
    """Turn off PyTorch's MultiheadAttention fast path (inference-only kernels with
    their own semantics) so that torch runs the reference path we compare against."""
    import torch
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    old = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(old)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, what="values"):
    a, e = to_np(actual), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)
