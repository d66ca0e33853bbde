"""Losses for the course's regression notebooks: MMD, the periodic phi loss, and
masked / NaN-aware means. The pointwise losses (``mse_loss``, ``l1_loss``,
``huber_loss``, ``smooth_l1_loss``) live in ``hepml.ops.losses`` and are
re-exported here so ``hepml.losses`` is the one place to look.

Everything here is composition: the MMD is one C autograd node
(csrc/python/ops_mmd.c over csrc/kernels/mmd.c), the phi loss and the means are
formulas of existing hepml ops. No NumPy arithmetic on model data.
"""
import math

from . import _C
from .ops.losses import mse_loss, l1_loss, huber_loss, smooth_l1_loss  # noqa: F401 (re-export)

# The course's phi scaling uses this rounded value of pi
# (3.1416015625 = pi rounded to a multiple of 2**-10), not math.pi.
COURSE_PI = 3.1416015625

_KERNELS = ("multiscale", "rbf", "gaussian", "polynomial")


def mmd(x, y, kernel="multiscale", bandwidths=None, estimator="biased", degree=3, per_feature=False):
    """Maximum mean discrepancy between samples ``x [N, D]`` and ``y [M, D]``.

    kernel (``r2 = |a - b|^2``):
      - ``"multiscale"``: ``sum_c c^2 / (c^2 + r2)``; default bandwidths
        ``(0.1, 0.2, 0.5, 0.9, 1.4, 2.0)`` (the course's).
      - ``"rbf"``: ``sum_c exp(-r2 / (2 c))``; default ``(10, 15, 20, 50)``. Note
        ``2 c``, not ``2 c^2``: the course's formula.
      - ``"gaussian"``: ``exp(-r2 / (2 sigma^2))``, ``bandwidths=sigma``; with
        ``bandwidths=None`` sigma is the median pairwise distance of the pooled
        sample (median heuristic, on an evenly spaced subsample of at most 1000
        points; per column when ``per_feature``). See ``median_bandwidth``.
        The heuristic sigma is a constant of the graph: gradients do not flow
        through it (as with a detached sigma in torch).
      - ``"polynomial"``: ``(a.b / D + 1)^degree``; ``degree=3`` is KID/KPD.
    estimator: ``"biased"`` (V-statistic, diagonals included, the course's;
    needs ``N == M``) or ``"unbiased"`` (U-statistic, diagonals excluded,
    ``N, M >= 2``, unequal sizes allowed).

    Returns a 0-d tensor, or with ``per_feature=True`` a ``[D]`` tensor whose
    entry f is the 1-D MMD between column f of x and column f of y (what the
    course sums over its 8 features). Differentiable with respect to both
    samples; the value and both gradients come from one fused pass, computed in
    tiles (memory O((N + M) D), never an N x M matrix), summed in double, and
    independent of the thread count.

    Differences from the course's torch code on purpose: inputs must be finite
    2-D samples (a NaN raises instead of silently poisoning the loss), and the
    biased estimator refuses unequal sizes instead of broadcasting.
    """
    if not isinstance(per_feature, bool):
        raise TypeError(f"mmd(): argument 'per_feature' must be a bool, got {type(per_feature).__name__}")
    if isinstance(degree, bool) or not isinstance(degree, int):
        raise TypeError(f"mmd(): argument 'degree' must be an int, got {type(degree).__name__}")
    return _C.mmd(x, y, kernel, bandwidths, estimator, degree, per_feature)


def median_bandwidth(x, y, n_sub=1000):
    """Median Euclidean distance between points of the pooled sample ``[x; y]``
    (over an evenly spaced subsample of ``n_sub`` points, numpy.median's
    convention): the sigma ``mmd(kernel="gaussian")`` uses by default. A float."""
    return _C.mmd_median_bandwidth(x, y, int(n_sub))


def mmd_course(x, y):
    """The course's MMD loss (libs/mmd.py semantics) for the regressed W bosons.

    ``x`` and ``y`` are ``[N, 8]`` (or ``[N, 2, 4]``): the two W bosons' four
    (scaled) features each, regressed vs target, with the same N. Each of the 8
    columns is treated as a one-dimensional sample and compared with the
    corresponding column of the other with the multiscale kernel (bandwidths
    0.1, 0.2, 0.5, 0.9, 1.4, 2.0) and the biased V-statistic
    ``mean K_xx + mean K_yy - 2 mean K_xy``; the result is the mean of the 8
    one-dimensional MMDs (a 0-d tensor, differentiable w.r.t. both). The
    course builds dense N x N distance matrices in torch for each feature; this
    is the same number computed in one tiled C pass over all 8 columns.
    """
    shape = tuple(x.shape)
    if len(shape) == 3:
        x = x.reshape(shape[0], shape[1] * shape[2])
    yshape = tuple(y.shape)
    if len(yshape) == 3:
        y = y.reshape(yshape[0], yshape[1] * yshape[2])
    return mmd(x, y, kernel="multiscale", estimator="biased", per_feature=True).mean()


def _as_tensor(t):
    from ._tensor import Tensor, tensor
    return t if isinstance(t, Tensor) else tensor(t)


def periodic_phi_loss(pred_phi_scaled, target_phi_scaled, scaling=(0.0, 1.0), reduction="mean"):
    """Squared azimuthal difference of two logit-scaled phi values, wrapped.

    The course stores phi as a standardised logit: ``u = logit((phi + PI) / (2 PI))``
    with ``PI = 3.1416015625``, then ``(u - mean) / std``. This loss undoes
    both (``u = x * std + mean``, ``phi = sigmoid(u) * 2 PI - PI``), wraps the
    difference ``phi_pred - phi_target`` into ``(-pi, pi]`` and squares it, so
    predicting -3.1 for a true +3.1 costs (2 pi - 6.2)^2, not 6.2^2.

    ``scaling = (mean, std)`` as numbers or anything broadcastable against the
    inputs (per-column scalings). ``reduction``: ``"mean"``, ``"sum"`` or
    ``"none"``. Gradients flow to both arguments (the wrap is a remainder,
    whose derivative is 1 almost everywhere, as in torch).
    """
    import hepml
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"periodic_phi_loss(): argument 'reduction' is {reduction!r}, expected 'mean', 'sum' "
                         "or 'none'")
    try:
        mean, std = scaling
    except (TypeError, ValueError):
        raise ValueError("periodic_phi_loss(): argument 'scaling' must be a pair (mean, std)") from None
    p, t = _as_tensor(pred_phi_scaled), _as_tensor(target_phi_scaled)
    if tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"periodic_phi_loss(): arguments 'pred_phi_scaled' {tuple(p.shape)} and "
                         f"'target_phi_scaled' {tuple(t.shape)} must have the same shape")

    def unscale(v):
        return hepml.sigmoid(v * std + mean) * (2.0 * COURSE_PI) - COURSE_PI

    d = unscale(p) - unscale(t)
    # pi - ((pi - d) mod 2 pi) lies in (-pi, pi]: the half-open end torch.remainder's
    # [0, 2 pi) range gives, mirrored so +pi (not -pi) is kept.
    wrapped = math.pi - hepml.remainder(math.pi - d, 2.0 * math.pi)
    sq = wrapped * wrapped
    if reduction == "none":
        return sq
    return sq.mean() if reduction == "mean" else sq.sum()


def masked_mean(x, mask, dim=None, keepdim=False):
    """Mean of ``x`` over the entries where ``mask`` is True (broadcast to x's
    shape), over all entries or along ``dim``. Masked-out entries do not reach
    the value or the gradient, even when they hold NaN. An all-False mask gives
    NaN (0/0), as torch's ``x[mask].mean()`` does."""
    import hepml
    x = _as_tensor(x)
    m = _as_tensor(mask)
    if m.dtype != hepml.bool:
        m = m != 0
    kept = hepml.where(m, x, 0.0)
    count = hepml.where(m, hepml.ones_like(x), 0.0)
    return kept.sum(dim, keepdim) / count.sum(dim, keepdim)


def nan_mean(x, dim=None, keepdim=False):
    """Mean over the non-NaN entries of ``x`` (torch.nanmean); NaN entries get a
    zero gradient. All-NaN gives NaN."""
    import hepml
    x = _as_tensor(x)
    return masked_mean(x, hepml.logical_not(hepml.isnan(x)), dim, keepdim)


__all__ = ["mmd", "mmd_course", "median_bandwidth", "periodic_phi_loss", "masked_mean", "nan_mean",
           "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "COURSE_PI"]
