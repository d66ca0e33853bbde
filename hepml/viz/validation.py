"""Validation of a W-boson regression: the course's five figures and the headline numbers.

    figs = validation_plots(target, regressed, scaling=ds.scaling("W_ordered_data"))
    figs["target_vs_regressed"]        # 2 x 4: true vs regressed, diagonal, correlation
    figs["distributions"]              # 2 x 4: 1-D overlays
    figs["residual_correlations"]      # 1 x 4: residual of W1 vs residual of W2
    figs["regressed_w1_vs_w2"]         # 1 x 4: regressed W1 vs W2
    figs["target_w1_vs_w2"]            # 1 x 4: true W1 vs W2
    print(regression_summary(target, regressed, scaling=ds.scaling("W_ordered_data")))

``target`` and ``regressed`` are ``[N, 2, F]`` (two W bosons x (pt, eta, phi, m)),
NumPy arrays or hepml tensors, scaled as in the prepared dataset. With ``scaling``
(the dataset's ``[F, 2]`` (mean, std), or ``[2, F, 2]`` with one per W) they are
brought back to physical units by hepml's C kernels (``hepml.data.unscale``).

Residuals (regressed - true) are formed by hepml ops: in physical units pt is
relative, ``(reg - true) / true``, and phi is wrapped into (-pi, pi]
(``hepml.physics.delta_phi``); in scaled units, and for the other features, they
are plain differences. The statistics of ``regression_summary`` (std, quantiles,
Pearson correlation) run on hepml tensors in C; NumPy only bins the histograms
and picks their ranges. Quantiles and medians come from one C sort per call
(``hepml.sort``), combined with NumPy's interpolation conventions.
"""
import math

import numpy as np

from .. import _C
from .._tensor import Tensor, from_numpy

__all__ = ["validation_plots", "regression_summary", "RegressionSummary", "FIGURES"]

#: The figure names validation_plots returns, in the order the course shows them.
FIGURES = ("target_vs_regressed", "distributions", "residual_correlations", "regressed_w1_vs_w2",
           "target_w1_vs_w2")

# feature name -> (symbol, physical unit)
_FEATURES = {
    "pt": ("$p_T$", "GeV"), "eta": (r"$\eta$", ""), "phi": (r"$\phi$", "rad"), "m": ("$m$", "GeV"),
    "mass": ("$m$", "GeV"), "e": ("$E$", "GeV"), "E": ("$E$", "GeV"), "pz": ("$p_z$", "GeV"),
}
_QUANTILES = (0.002, 0.998)          # histogram range of the distributions: drop the outermost 0.2 %
_RESIDUAL_QUANTILE = 0.99            # residual ranges: symmetric, 98 % of the events inside
# the central 68.27 % (+-1 sigma of a Gaussian): a resolution that tails do not dominate
_Q16, _Q84 = 0.5 * math.erfc(1 / math.sqrt(2)), 1 - 0.5 * math.erfc(1 / math.sqrt(2))


# ------------------------------------------------------------------ inputs

def _array(x, fname, arg):
    if isinstance(x, Tensor):
        x = x.detach().numpy()
    elif x is None:
        raise TypeError(f"{fname}: argument '{arg}' must be an array or hepml tensor, got None")
    try:
        a = np.asarray(x)
    except Exception as e:  # noqa: BLE001 (anything NumPy cannot take)
        raise TypeError(f"{fname}: argument '{arg}' must be an array or hepml tensor, got {type(x).__name__}") from e
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{fname}: argument '{arg}' has dtype {a.dtype}, expected numbers")
    return np.ascontiguousarray(a, dtype=np.float32)


def _check_names(names, fname):
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{fname}: argument 'names' must be a sequence of feature names, got {names!r}")
    names = tuple(names)
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"{fname}: argument 'names' must hold distinct names, got {names!r}")
    return names


def _inputs(fname, target, regressed, scaling, names, unscale, mask, scaling_name, physical):
    """(target, regressed) as float32 [n, 2, F] in the units to show, and whether those are physical."""
    names = _check_names(names, fname)
    F = len(names)
    t = _array(target, fname, "target")
    r = _array(regressed, fname, "regressed")
    for arr, arg in ((t, "target"), (r, "regressed")):
        if arr.ndim != 3 or arr.shape[1] != 2 or arr.shape[2] != F:
            raise ValueError(f"{fname}: argument '{arg}' has shape {arr.shape}, expected (N, 2, {F}) "
                             f"(two W bosons x {names})")
    if t.shape[0] != r.shape[0]:
        raise ValueError(f"{fname}: arguments 'target' ({t.shape[0]} events) and 'regressed' "
                         f"({r.shape[0]} events) must have the same N")
    if mask is not None:
        m = mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype not in (np.bool_, np.uint8) or m.shape != (t.shape[0],):
            raise ValueError(f"{fname}: argument 'mask' has shape {m.shape} and dtype {m.dtype}, expected a bool "
                             f"array ({t.shape[0]},) (True = use the event)")
        idx = _C.data_mask_to_index(np.ascontiguousarray(m, dtype=np.uint8))
        t, r = _gather(t, idx), _gather(r, idx)
    if t.shape[0] < 2:
        raise ValueError(f"{fname}: need at least 2 events, got {t.shape[0]}")
    if scaling is not None:
        if physical:
            raise ValueError(f"{fname}: 'physical=True' says the inputs are already in physical units; do not "
                             "pass 'scaling' as well")
        sc = np.asarray(scaling.numpy() if isinstance(scaling, Tensor) else scaling, dtype=np.float64)
        if sc.shape not in ((F, 2), (2, F, 2)):
            raise ValueError(f"{fname}: argument 'scaling' has shape {sc.shape}, expected ({F}, 2) (mean, std per "
                             f"feature, as ds.scaling(name) gives) or (2, {F}, 2) (one per W)")
        if not unscale:
            return t, r, names, False
        return _unscale(t, sc, scaling_name, F, fname), _unscale(r, sc, scaling_name, F, fname), names, True
    return t, r, names, bool(physical)


def _gather(a, idx):
    out = np.empty((idx.shape[0],) + a.shape[1:], np.float32)
    _C.data_gather_rows(out, a, idx)
    return out


def _unscale(a, sc, scaling_name, F, fname):
    from ..physics import COURSE_SCALINGS, unscale_features
    spec = COURSE_SCALINGS.get(scaling_name) if isinstance(scaling_name, str) else scaling_name
    if spec is None:
        raise KeyError(f"{fname}: argument 'scaling_name' is {scaling_name!r}; known: {sorted(COURSE_SCALINGS)}")
    if len(spec) != F:
        raise ValueError(f"{fname}: the scaling {scaling_name!r} has {len(spec)} features, the data have {F}")
    if sc.ndim == 2:
        return unscale_features(a, spec, sc)
    out = np.empty_like(a)
    for w in range(2):  # one scaling per W boson
        out[:, w] = unscale_features(np.ascontiguousarray(a[:, w]), spec, sc[w])
    return out


# ------------------------------------------------------------------ statistics (hepml ops, in C)

def _kinds(names, physical):
    """How each feature's residual is formed."""
    if not physical:
        return ["difference"] * len(names)
    return ["relative" if n == "pt" else "wrapped" if n == "phi" else "difference" for n in names]


def _residuals(t, r, kinds):
    """regressed - true per feature (relative for pt, wrapped for phi in physical units): a
    hepml tensor [n, 2, F]."""
    import hepml
    from ..physics import delta_phi
    T, R = from_numpy(t), from_numpy(r)
    cols = []
    for j, kind in enumerate(kinds):
        tj, rj = hepml.select(T, 2, j), hepml.select(R, 2, j)
        if kind == "relative":
            cols.append((rj - tj) / tj)
        elif kind == "wrapped":
            cols.append(delta_phi(rj, tj))
        else:
            cols.append(rj - tj)
    return hepml.stack(cols, dim=2)


def _pearson(a, b):
    """Pearson correlation of the columns of a and b ([n, C] tensors) -> float64 [C]."""
    da = a - a.mean(0, keepdim=True)
    db = b - b.mean(0, keepdim=True)
    cov = (da * db).mean(0)
    den = ((da * da).mean(0) * (db * db).mean(0)).sqrt()
    return (cov / den).numpy().astype(np.float64)


def _quantiles(x, qs):
    """Quantiles of every column of x [n, C] -> float64 [len(qs), C], with NumPy's
    defaults: linear interpolation between order statistics, and for q = 0.5 the
    median exactly as numpy.median (the mean of the two middle values for even n).

    The order statistics come from one C sort of the columns (hepml.sort along dim 0;
    hepml.quantile would interpolate in float32 with a float32 rank, as torch does);
    only the len(qs) x C interpolations are done here, in float64 as NumPy does, so
    the results agree with numpy.quantile / numpy.median on the float64 data."""
    import hepml
    n = int(x.shape[0])
    s = hepml.sort(x, dim=0).values    # columns ascending, NaN last
    out = np.empty((len(qs), int(x.shape[1])), np.float64)
    for i, q in enumerate(qs):         # over levels, not events
        h = (n - 1) * float(q)
        lo = int(math.floor(h))
        frac = h - lo
        a = hepml.select(s, 0, lo).numpy().astype(np.float64)
        if frac == 0.0 or lo + 1 >= n:
            out[i] = a
            continue
        b = hepml.select(s, 0, lo + 1).numpy().astype(np.float64)
        if q == 0.5:
            out[i] = 0.5 * (a + b)
        else:
            # numpy's lerp: from the nearer end, so that frac -> 1 gives b exactly
            out[i] = a + (b - a) * frac if frac < 0.5 else b - (b - a) * (1.0 - frac)
    if n:
        out[:, np.isnan(hepml.select(s, 0, n - 1).numpy())] = np.nan   # as NumPy: NaN in, NaN out
    return out


def _median(x):
    """Median of every column of x [n, C] (as numpy.median: the mean of the two middle
    values for even n, unlike hepml.median / torch.median) -> float64 [C]."""
    return _quantiles(x, (0.5,))[0]


# ------------------------------------------------------------------ summary

class RegressionSummary(dict):
    """``summary["W1"]["pt"] -> {"resolution", "width68", "bias", "correlation"}``, printed
    as a table.

    ``kinds[feature]`` says how the residuals were formed ("relative": (reg - true) /
    true, "wrapped": azimuthal difference in (-pi, pi], "difference": reg - true) and
    ``physical`` whether they are in physical units."""

    def __init__(self, data, names, kinds, physical, n_events):
        super().__init__(data)
        self.names, self.physical, self.n_events = names, physical, n_events
        self.kinds = dict(zip(names, kinds))

    def flat(self):
        """``{"W1_pt_resolution": ..., ...}``: one number per entry (for course.record)."""
        return {f"{w}_{f}_{k}": v for w, feats in self.items() for f, d in feats.items() for k, v in d.items()}

    def __str__(self):
        units = "physical units" if self.physical else "scaled units"
        lines = [f"regression summary ({self.n_events} events, {units}; resolution = std of the residual, "
                 "width68 = half its central 68% interval, bias = its median)",
                 f"{'':4s} {'feature':8s} {'residual':>22s} {'resolution':>11s} {'width68':>11s} {'bias':>11s} "
                 f"{'corr.':>7s}"]
        for w, feats in self.items():
            for f, d in feats.items():
                kind = self.kinds[f]
                what = {"relative": "(reg - true) / true", "wrapped": "wrap(reg - true)"}.get(kind, "reg - true")
                lines.append(f"{w:4s} {f:8s} {what:>22s} {d['resolution']:11.4g} {d['width68']:11.4g} "
                             f"{d['bias']:11.4g} {d['correlation']:7.4f}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython shows the table
        p.text(str(self))


def regression_summary(target, regressed, scaling=None, *, names=("pt", "eta", "phi", "m"), mask=None,
                       scaling_name="W_data", physical=False):
    """Headline numbers of a W regression per W boson and feature.

    Returns a RegressionSummary: ``summary["W1"]["pt"]["resolution"]`` etc., with

    - resolution: the standard deviation (ddof 0) of the residual; in physical units
      the pt residual is relative, ``(reg - true) / true``, so its resolution is
      relative too, and phi residuals are wrapped into (-pi, pi];
    - width68: half the width of the central 68.27 % interval of the residual (the
      std of a Gaussian; unlike the std, not dominated by a few huge relative pt
      residuals of events with small true pt);
    - bias: the median residual (robust against the tails);
    - correlation: Pearson's correlation of regressed and true values.

    target, regressed: ``[N, 2, F]`` arrays or tensors. scaling: the dataset's
    ``[F, 2]`` (mean, std) (``ds.scaling("W_ordered_data")``) or ``[2, F, 2]``: the
    inputs are unscaled to physical units first; without it they are taken as they
    are (``physical=True`` if they are already physical, e.g. the ``*_original``
    arrays, so that pt is relative and phi wrapped). mask: ``[N]`` bool, True = use
    the event. scaling_name: whose course scaling to undo (hepml.physics.COURSE_SCALINGS;
    "nu_data" for neutrinos with names ("pt", "eta", "phi")).
    """
    fname = "regression_summary()"
    t, r, names, phys = _inputs(fname, target, regressed, scaling, names, True, mask, scaling_name, physical)
    kinds = _kinds(names, phys)
    n, F = t.shape[0], len(names)
    res = _residuals(t, r, kinds).reshape(n, 2 * F)
    if not bool(res.isfinite().all().item()):
        raise ValueError(f"{fname}: the residuals are not all finite (NaN/inf in the inputs, or a true pt of 0 "
                         "for the relative pt residual); pass 'mask' to leave such events out")
    std = res.std(0, correction=0).numpy().astype(np.float64)
    q16, med, q84 = _quantiles(res, (_Q16, 0.5, _Q84))
    corr = _pearson(from_numpy(np.ascontiguousarray(r.reshape(n, 2 * F))),
                    from_numpy(np.ascontiguousarray(t.reshape(n, 2 * F))))
    data = {}
    for w in range(2):
        data[f"W{w + 1}"] = {f: {"resolution": float(std[w * F + j]),
                                 "width68": float(0.5 * (q84[w * F + j] - q16[w * F + j])),
                                 "bias": float(med[w * F + j]),
                                 "correlation": float(corr[w * F + j])} for j, f in enumerate(names)}
    return RegressionSummary(data, names, kinds, phys, n)


# ------------------------------------------------------------------ pictures

def _label(name, physical, scaled, prefix=""):
    sym, unit = _FEATURES.get(name, (name, ""))
    text = f"{prefix}{sym}"
    if physical and unit:
        return f"{text} [{unit}]"
    if scaled:
        return f"{text} (scaled)"
    return text


def _residual_label(name, kind, physical, scaled, prefix=""):
    sym, unit = _FEATURES.get(name, (name, ""))
    if kind == "relative":
        return f"{prefix}$\\Delta${sym} / {sym}"
    text = f"{prefix}$\\Delta${sym}"
    if physical and unit:
        return f"{text} [{unit}]"
    return f"{text} (scaled)" if scaled else text


def _finite(x):
    # the range of a histogram ignores non-finite entries (an exploding regression)
    return x[np.isfinite(x)]


def _range(values, name, physical, ranges):
    if ranges and name in ranges:
        lo, hi = ranges[name]
        return float(lo), float(hi)
    if physical and name == "phi":
        return -math.pi, math.pi
    v = _finite(values)
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = np.quantile(v, _QUANTILES)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def _sym_range(values):
    v = _finite(values)
    if v.size == 0:
        return -1.0, 1.0
    a = float(np.quantile(np.abs(v), _RESIDUAL_QUANTILE))
    if not a > 0:
        a = 1.0
    return -a, a


def _hist2d(ax, x, y, xr, yr, bins, rho=None, diagonal=False):
    from matplotlib.colors import LogNorm
    ax.hist2d(x, y, bins=bins, range=[xr, yr], norm=LogNorm(), cmap="viridis", cmin=1)
    if diagonal:
        lo, hi = max(xr[0], yr[0]), min(xr[1], yr[1])
        ax.plot([lo, hi], [lo, hi], color="red", ls="--", lw=1)
    if rho is not None:
        ax.text(0.04, 0.95, f"$\\rho$ = {rho:.3f}", transform=ax.transAxes, va="top", ha="left", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))


def validation_plots(target, regressed, *, scaling=None, names=("pt", "eta", "phi", "m"), unscale=True, mask=None,
                     bins=60, title=None, ranges=None, scaling_name="W_data", physical=False):
    """The course's five validation figures of a W regression, as a dict name -> Figure
    (names in ``FIGURES``):

    - "target_vs_regressed": 2-D histograms of true vs regressed per W and feature
      (2 x F), the diagonal dashed, Pearson's correlation in each panel;
    - "distributions": 1-D histograms of true and regressed per W and feature (2 x F);
    - "residual_correlations": residual of W1 vs residual of W2 per feature (1 x F),
      with their correlation (it should be small: the two Ws are regressed jointly);
    - "regressed_w1_vs_w2" and "target_w1_vs_w2": W1 vs W2 per feature (1 x F); the
      regressed correlations should look like the true ones.

    target, regressed: ``[N, 2, F]`` arrays or tensors, scaled as in the prepared
    dataset. scaling: ``[F, 2]`` (mean, std) as ``ds.scaling("W_ordered_data")`` gives,
    or ``[2, F, 2]`` one per W; with ``unscale=True`` the plots are in physical units
    (pt and m in GeV, phi in rad), else in scaled units. Without scaling the inputs
    are plotted as they are (``physical=True`` if they are physical already).
    mask: ``[N]`` bool, True = use the event. bins: per axis. ranges: optional
    ``{feature: (lo, hi)}`` for the value histograms (default: the central 99.6 % of
    the pooled values; phi in physical units spans (-pi, pi)). title: prefixed to
    each figure's title. scaling_name: whose course scaling to undo.
    Residuals are formed as in ``regression_summary``.
    """
    import matplotlib.pyplot as plt

    fname = "validation_plots()"
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"{fname}: argument 'bins' must be a positive integer, got {bins!r}")
    if ranges is not None and not isinstance(ranges, dict):
        raise TypeError(f"{fname}: argument 'ranges' must be a dict feature -> (lo, hi), got {type(ranges).__name__}")
    t, r, names, phys = _inputs(fname, target, regressed, scaling, names, unscale, mask, scaling_name, physical)
    scaled = scaling is not None and not unscale
    kinds = _kinds(names, phys)
    n, F = t.shape[0], len(names)
    res = _residuals(t, r, kinds).numpy()
    # correlations in C on the unbinned values: true vs regressed per (W, feature), W1 vs W2 per feature
    rho_tr = _pearson(from_numpy(np.ascontiguousarray(t.reshape(n, 2 * F))),
                      from_numpy(np.ascontiguousarray(r.reshape(n, 2 * F)))).reshape(2, F)
    pairs = {}
    for key, a in (("res", res), ("reg", r), ("tgt", t)):
        pairs[key] = _pearson(from_numpy(np.ascontiguousarray(a[:, 0])), from_numpy(np.ascontiguousarray(a[:, 1])))
    value_ranges = [_range(np.concatenate([t[:, :, j].ravel(), r[:, :, j].ravel()]), nm, phys, ranges)
                    for j, nm in enumerate(names)]

    def suptitle(fig, text):
        fig.suptitle(f"{title}: {text}" if title else text)

    figs = {}
    w = 3.6
    # (a) true vs regressed
    fig, axes = plt.subplots(2, F, figsize=(w * F, 2 * w * 0.9), squeeze=False, layout="constrained")
    for k in range(2):
        for j, nm in enumerate(names):
            ax = axes[k, j]
            xr = value_ranges[j]
            _hist2d(ax, t[:, k, j], r[:, k, j], xr, xr, bins, rho=rho_tr[k, j], diagonal=True)
            ax.set_xlabel(_label(nm, phys, scaled, f"true W{k + 1} "))
            ax.set_ylabel(_label(nm, phys, scaled, f"regressed W{k + 1} "))
    suptitle(fig, "true vs regressed")
    figs["target_vs_regressed"] = fig

    # (b) 1-D distributions
    fig, axes = plt.subplots(2, F, figsize=(w * F, 2 * w * 0.8), squeeze=False, layout="constrained")
    for k in range(2):
        for j, nm in enumerate(names):
            ax = axes[k, j]
            xr = value_ranges[j]
            ax.hist(t[:, k, j], bins=bins, range=xr, histtype="stepfilled", alpha=0.35, color="C0", label="true")
            ax.hist(r[:, k, j], bins=bins, range=xr, histtype="step", lw=1.5, color="C1", label="regressed")
            ax.set_xlabel(_label(nm, phys, scaled, f"W{k + 1} "))
            ax.set_ylabel("events")
            if k == 0 and j == 0:
                ax.legend(fontsize="small")
    suptitle(fig, "distributions")
    figs["distributions"] = fig

    # (c)-(e) W1 vs W2
    for key, src, text, fig_name in (("res", res, "residual correlations between the two Ws", "residual_correlations"),
                                     ("reg", r, "regressed W1 vs W2", "regressed_w1_vs_w2"),
                                     ("tgt", t, "true W1 vs W2", "target_w1_vs_w2")):
        fig, axes = plt.subplots(1, F, figsize=(w * F, w * 0.95), squeeze=False, layout="constrained")
        for j, nm in enumerate(names):
            ax = axes[0, j]
            if key == "res":
                rr = _sym_range(src[:, :, j].ravel())
                xl = _residual_label(nm, kinds[j], phys, scaled, "W1 ")
                yl = _residual_label(nm, kinds[j], phys, scaled, "W2 ")
                diagonal = False
            else:
                rr = value_ranges[j]
                who = "regressed" if key == "reg" else "true"
                xl = _label(nm, phys, scaled, f"{who} W1 ")
                yl = _label(nm, phys, scaled, f"{who} W2 ")
                diagonal = True
            _hist2d(ax, src[:, 0, j], src[:, 1, j], rr, rr, bins, rho=pairs[key][j], diagonal=diagonal)
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
        suptitle(fig, text)
        figs[fig_name] = fig
    return figs
