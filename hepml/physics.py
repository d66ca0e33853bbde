"""Four-vectors, azimuthal rotations and the course's feature scalings.

Every function takes NumPy arrays or hepml tensors and returns the same kind
(a tensor in, a tensor out), computed by hepml's C kernels (csrc/kernels/physics.c).
These are data-preparation tools, not differentiable ops: a tensor that requires
grad is read as plain values and the result carries no graph.

Conventions (the same as the course's notebooks and the ``vector`` package):

- Kinematic rows are ``(pt, eta, phi, m)`` in GeV; shorter rows mean massless
  objects: ``(pt, eta, phi)`` (leptons, neutrinos) and ``(pt, phi)`` (MET, with
  eta = 0). Columns beyond the fourth (e.g. the VBS label) are ignored.
- Cartesian rows are ``(px, py, pz, E)``.
- phi is in (-pi, pi].
- Masks mark *real* objects with True (the course's ``padding mask = pt > 0``).
  This is the opposite of PyTorch's ``key_padding_mask`` (True = ignore): pass
  ``~mask`` to attention layers.

All arithmetic is done in double inside the kernels and rounded once to float32.
"""
import numpy as np

from . import _C
from ._tensor import Tensor, from_numpy

__all__ = [
    "COURSE_PI", "BEAM_ENERGY", "PHI_LOGIT_CLIP",
    "to_cartesian", "to_ptetaphim", "p4_sum", "invariant_mass",
    "wrap_phi", "delta_phi", "rotate_phi",
    "scale_log_pt", "unscale_log_pt", "scale_logit_phi", "unscale_logit_phi", "scale_log1p", "unscale_log1p",
    "masked_mean_std", "standardize", "unstandardize",
    "order_by_eta", "swap_pairs", "pad_jets", "ecm_pz",
    "COURSE_SCALINGS", "scale_features", "unscale_features",
]

#: The course's pi for the phi logit scaling: float32(3.1416015625), a little above pi,
#: so that (phi + PI) / (2 PI) stays strictly inside (0, 1) for every phi in [-pi, pi].
COURSE_PI = 3.1416015625
#: Clip of the logit argument (the course's 1e-6).
PHI_LOGIT_CLIP = 1e-6
#: LHC Run 2 beam energy [GeV]: E_cm = BEAM_ENERGY (x1 + x2), p_z = BEAM_ENERGY (x1 - x2).
BEAM_ENERGY = 6500.0


# ----------------------------------------------------------------- plumbing

def _arr(x, name="x", dtype=np.float32):
    """(contiguous array of dtype, was_tensor). Tensors share their storage."""
    if isinstance(x, Tensor):
        a = x.numpy()
        if a.dtype != dtype:
            a = np.ascontiguousarray(a, dtype=dtype)
        return a, True
    if x is None:
        raise TypeError(f"argument '{name}' must be an array or tensor, got None")
    return np.ascontiguousarray(x, dtype=dtype), False


def _mask(mask, name="mask"):
    if mask is None:
        return None
    if isinstance(mask, Tensor):
        m = mask.numpy()
    else:
        m = np.asarray(mask)
    if m.dtype not in (np.bool_, np.uint8):
        raise TypeError(f"argument '{name}' must be a bool mask (True = real object), got dtype {m.dtype}")
    return np.ascontiguousarray(m)


def _out(arr, tensor):
    return from_numpy(arr) if tensor else arr


def _check_count(bad, what, on_invalid):
    if on_invalid not in ("raise", "keep"):
        raise ValueError(f"argument 'on_invalid' must be 'raise' or 'keep', got {on_invalid!r}")
    if bad and on_invalid == "raise":
        raise ValueError(f"{what}: {bad} value(s) have no finite image (NaN/inf input or outside the domain); "
                         "drop those rows first, or pass on_invalid='keep' to get NaN there")


def _lastdim(a, name, allowed):
    if a.ndim < 1 or a.shape[-1] not in allowed:
        raise ValueError(f"argument '{name}' has shape {a.shape}, expected (..., F) with F in {sorted(allowed)}")


# ------------------------------------------------------------ four-vectors

def to_cartesian(x):
    """(pt, eta, phi[, m, ...]) or (pt, phi) rows -> (px, py, pz, E), shape [..., 4].

    Padded rows (all zeros) give zeros."""
    a, t = _arr(x)
    if a.ndim < 1 or a.shape[-1] < 2:
        raise ValueError(f"to_cartesian(): argument 'x' has shape {a.shape}, expected (..., F) with F >= 2")
    out = np.empty(a.shape[:-1] + (4,), np.float32)
    _C.phys_to_cartesian(out, a)
    return _out(out, t)


def to_ptetaphim(p):
    """(px, py, pz, E) rows -> (pt, eta, phi, m). pt = 0 rows give zeros; m = sqrt(max(m^2, 0))."""
    a, t = _arr(p, "p")
    _lastdim(a, "p", {4})
    out = np.empty_like(a)
    _C.phys_to_ptetaphim(out, a)
    return _out(out, t)


def p4_sum(x, mask=None):
    """Sum of the four-momenta of the K objects of x[..., K, F]: (px, py, pz, E), shape [..., 4].
    Objects with mask False are skipped."""
    a, t = _arr(x)
    if a.ndim < 2:
        raise ValueError(f"p4_sum(): argument 'x' has shape {a.shape}, expected (..., K, F)")
    out = np.empty(a.shape[:-2] + (4,), np.float32)
    _C.phys_p4_sum(out, a, _mask(mask), False)
    return _out(out, t)


def invariant_mass(x, mask=None):
    """Invariant mass of the summed objects of x[..., K, F] (e.g. m_jj of the VBS jets,
    m(l nu) of a lepton and a neutrino stacked on axis -2). Shape [...]."""
    a, t = _arr(x)
    if a.ndim < 2:
        raise ValueError(f"invariant_mass(): argument 'x' has shape {a.shape}, expected (..., K, F)")
    out = np.empty(a.shape[:-2], np.float32)
    _C.phys_p4_mass(out, a, _mask(mask))
    return _out(out, t)


# ------------------------------------------------------------------ azimuth

def wrap_phi(phi):
    """phi modulo 2 pi in (-pi, pi] (exact remainder in double; in-range values untouched)."""
    a, t = _arr(phi, "phi")
    out = np.empty_like(a)
    _C.phys_wrap_phi(out, a)
    return _out(out, t)


def delta_phi(a, b):
    """wrap(a - b): the signed azimuthal difference in (-pi, pi]."""
    x, t = _arr(a, "a")
    y, _ = _arr(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"delta_phi(): 'a' has shape {x.shape} and 'b' has shape {y.shape}; they must agree")
    out = np.empty_like(x)
    _C.phys_delta_phi(out, x, y)
    return _out(out, t)


def rotate_phi(x, angle, phi_col=None, mask=None):
    """Rotate events about the beam axis: phi -> wrap(phi + angle) for every object.

    x: [N, K, F] (K objects per event) or [N, F] (one object). angle: a number or
    one angle per event, [N]. phi_col defaults to 1 for (pt, phi) rows and 2 otherwise.
    Objects with mask False ([N, K]) come out as zeros (padding stays padding)."""
    a, t = _arr(x)
    if a.ndim not in (2, 3):
        raise ValueError(f"rotate_phi(): argument 'x' has shape {a.shape}, expected (N, K, F) or (N, F)")
    x3 = a if a.ndim == 3 else a.reshape(a.shape[0], 1, a.shape[1])
    n, _, f = x3.shape
    if phi_col is None:
        phi_col = 1 if f == 2 else 2
    ang, _ = _arr(angle, "angle")
    if ang.ndim == 0:
        ang = np.full(n, ang, np.float32)
    if ang.shape != (n,):
        raise ValueError(f"rotate_phi(): argument 'angle' has shape {ang.shape}, expected a number or ({n},)")
    out = np.empty_like(x3)
    _C.phys_rotate_copies(out, x3, _mask(mask), ang, int(phi_col))
    return _out(out.reshape(a.shape), t)


# ----------------------------------------------------------------- scalings

def _scale1(kind, x, param, on_invalid, fname):
    a, t = _arr(x)
    flat = a.reshape(-1, 1)
    out = np.empty_like(flat)
    bad = _C.phys_scale(kind, out, flat, 0, float(param))
    _check_count(bad, fname, on_invalid)
    return _out(out.reshape(a.shape), t)


def _unscale1(kind, y, param, mask):
    a, t = _arr(y, "y")
    flat = a.reshape(-1, 1)
    m = _mask(mask)
    if m is not None and m.size != a.size:
        raise ValueError(f"argument 'mask' has shape {m.shape}, expected the shape of 'y' {a.shape}")
    out = np.empty_like(flat)
    _C.phys_unscale(kind, out, flat, 0, float(param), m)
    return _out(out.reshape(a.shape), t)


def scale_log_pt(pt, pt_min, on_invalid="raise"):
    """log(1 + pt - pt_min) (course: leptons and MET pt_min = 15, jets 30). Padding (pt <= 0)
    gives 0. Values with pt <= pt_min - 1 have no logarithm: ValueError (on_invalid='raise')
    or NaN ('keep')."""
    return _scale1("log_pt", pt, pt_min, on_invalid, "scale_log_pt()")


def unscale_log_pt(y, pt_min, mask=None):
    """Inverse of scale_log_pt: exp(y) - 1 + pt_min; 0 where mask is False."""
    return _unscale1("log_pt", y, pt_min, mask)


def scale_logit_phi(phi, on_invalid="raise"):
    """logit((phi + PI) / (2 PI)) with the course's PI = 3.1416015625, argument clipped to
    [1e-6, 1 - 1e-6]. phi = 0 gives 0."""
    return _scale1("logit_phi", phi, 0.0, on_invalid, "scale_logit_phi()")


def unscale_logit_phi(y, mask=None):
    """Inverse: 2 PI sigmoid(y) - PI; 0 where mask is False."""
    return _unscale1("logit_phi", y, 0.0, mask)


def scale_log1p(x, on_invalid="raise"):
    """log(1 + x) (jet and W masses, W and neutrino pt, energies)."""
    return _scale1("log1p", x, 0.0, on_invalid, "scale_log1p()")


def unscale_log1p(y, mask=None):
    """Inverse: exp(y) - 1; 0 where mask is False."""
    return _unscale1("log1p", y, 0.0, mask)


# ---------------------------------------------------------- standardisation

def _rows(a, mask, fname):
    m = _mask(mask)
    if m is not None and m.size * a.shape[-1] != a.size:
        raise ValueError(f"{fname}: argument 'mask' has shape {m.shape}, expected one entry per row of 'x' "
                         f"{a.shape[:-1]}")
    return m


def masked_mean_std(x, mask=None, features=None):
    """Per-feature mean and std (ddof = 0, NumPy's default) of x[..., F] over the rows with
    mask True (all rows without a mask), as float64 arrays [features]. ``features`` < F
    leaves trailing columns (e.g. a label) out. Two-pass, double accumulation, the same
    result for every thread count. Returns (mean, std)."""
    a, _ = _arr(x)
    if a.ndim < 1:
        raise ValueError("masked_mean_std(): argument 'x' must have at least one dimension")
    f = a.shape[-1] if features is None else int(features)
    mean, std, count = _C.phys_masked_mean_std(a, f, _rows(a, mask, "masked_mean_std()"))
    if count == 0:
        raise ValueError("masked_mean_std(): no valid rows (empty input or an all-False mask)")
    return mean, std


def standardize(x, mean, std, mask=None):
    """(x - mean) / std on the first len(mean) features of x[..., F]; rows with mask False
    become 0 there. A zero std divides by 1 (constant features become 0, not NaN)."""
    a, t = _arr(x)
    out = np.empty_like(a)
    _C.phys_standardize(out, a, np.asarray(mean, np.float64).reshape(-1), np.asarray(std, np.float64).reshape(-1),
                        _rows(a, mask, "standardize()"), False)
    return _out(out, t)


def unstandardize(y, mean, std, mask=None):
    """Inverse of standardize: y * std + mean; masked-out rows 0."""
    a, t = _arr(y, "y")
    out = np.empty_like(a)
    _C.phys_standardize(out, a, np.asarray(mean, np.float64).reshape(-1), np.asarray(std, np.float64).reshape(-1),
                        _rows(a, mask, "unstandardize()"), True)
    return _out(out, t)


# ---------------------------------------------------- targets and padding

def order_by_eta(x, eta_col=1):
    """Order the two objects of each pair x[..., 2, F] by eta, larger first (ties keep their
    order). Returns (ordered, swapped) with swapped a bool array [...] (True where the pair
    was swapped), so the same order can be applied to a partner with swap_pairs."""
    a, t = _arr(x)
    if a.ndim < 2 or a.shape[-2] != 2:
        raise ValueError(f"order_by_eta(): argument 'x' has shape {a.shape}, expected (..., 2, F)")
    out = np.empty_like(a)
    swapped = np.empty(a.shape[:-2], np.bool_)
    _C.phys_order_pairs(out, swapped, a, int(eta_col))
    return _out(out, t), _out(swapped, t)


def swap_pairs(x, swapped):
    """Swap the two objects of x[..., 2, F] where swapped[...] is True."""
    a, t = _arr(x)
    out = np.empty_like(a)
    _C.phys_swap_pairs(out, a, _mask(swapped, "swapped"))
    return _out(out, t)


def pad_jets(lead, other_flat, offsets, n_slots=13, label=True):
    """The course's padded jet array: the two VBS jets lead[N, 2, F] followed by the event's
    other jets (a jagged collection: rows offsets[i]..offsets[i+1]-1 of other_flat[M, F]),
    zero-padded to n_slots. With label=True a column is appended: 1 for the leading jets,
    0 otherwise. Returns (jets [N, n_slots, F(+1)], mask [N, n_slots] = slot filled and
    pt > 0, truncated), truncated = number of events whose extra jets did not fit."""
    ld, t = _arr(lead, "lead")
    fl, _ = _arr(other_flat, "other_flat")
    off, _ = _arr(offsets, "offsets", np.int64)
    if ld.ndim != 3:
        raise ValueError(f"pad_jets(): argument 'lead' has shape {ld.shape}, expected (N, L, F)")
    n, _, f = ld.shape
    out = np.empty((n, int(n_slots), f + (1 if label else 0)), np.float32)
    mask = np.empty((n, int(n_slots)), np.bool_)
    truncated = _C.phys_pad_jets(out, mask, ld, fl, off)
    return _out(out, t), _out(mask, t), truncated


def ecm_pz(x1x2, beam_energy=BEAM_ENERGY):
    """(E_cm, p_z) = (E_beam (x1 + x2), E_beam (x1 - x2)) of the incoming partons, [..., 2]."""
    a, t = _arr(x1x2, "x1x2")
    _lastdim(a, "x1x2", {2})
    out = np.empty_like(a)
    _C.phys_ecm_pz(out, a, float(beam_energy))
    return _out(out, t)


# ----------------------------------------------------- the course's scalings

#: Per-feature scalings of the course's arrays, by file stem: a tuple (kind, parameter)
#: per column (None = left as it is) before standardisation. 'log_pt' is
#: log(1 + x - parameter); 'log1p' is log(1 + x); 'logit_phi' is the phi logit.
COURSE_SCALINGS = {
    "jet_data": (("log_pt", 30.0), None, ("logit_phi", 0.0), ("log1p", 0.0)),   # (pt, eta, phi, m) [+ label]
    "lepton_data": (("log_pt", 15.0), None, ("logit_phi", 0.0)),                  # (pt, eta, phi)
    "met_data": (("log_pt", 15.0), ("logit_phi", 0.0)),                           # (pt, phi)
    "W_data": (("log1p", 0.0), None, ("logit_phi", 0.0), ("log1p", 0.0)),         # (pt, eta, phi, m)
    "W_ordered_data": (("log1p", 0.0), None, ("logit_phi", 0.0), ("log1p", 0.0)),
    "nu_data": (("log1p", 0.0), None, ("logit_phi", 0.0)),                        # (pt, eta, phi)
    "nu_ordered_data": (("log1p", 0.0), None, ("logit_phi", 0.0)),
    "x1x2_data": (None, None),                                                    # (x1, x2)
    "EcmPz_data": (("log1p", 0.0), None),                                         # (E_cm, p_z)
    "EcmPz_reco_data": (("log1p", 0.0), None),                                    # (E, p_z) reconstructed
}


def _spec(spec):
    if isinstance(spec, str):
        if spec not in COURSE_SCALINGS:
            raise KeyError(f"no course scaling called {spec!r}; known: {sorted(COURSE_SCALINGS)}")
        return COURSE_SCALINGS[spec]
    return tuple(spec)


def scale_features(x, spec, on_invalid="raise"):
    """Apply a per-column scaling to x[..., F] (spec: a COURSE_SCALINGS key or a tuple of
    (kind, parameter) / None per column; columns beyond the spec are copied)."""
    sp = _spec(spec)
    a, t = _arr(x)
    if a.ndim < 1 or a.shape[-1] < len(sp):
        raise ValueError(f"scale_features(): 'x' has shape {a.shape}, expected at least {len(sp)} columns")
    out = np.empty_like(a)
    _C.data_copy(out, a)
    for col, s in enumerate(sp):
        if s is not None:
            bad = _C.phys_scale(s[0], out, out, col, float(s[1]))
            _check_count(bad, f"scale_features(): column {col} ({s[0]})", on_invalid)
    return _out(out, t)


def unscale_features(y, spec, scaling=None, mask=None):
    """Back to physical units: undo the standardisation (scaling = [F, 2] array of
    (mean, std), as saved in <name>_scaling.npy; None if y is not standardised), then each
    column's scaling. Rows with mask False come out as 0."""
    sp = _spec(spec)
    a, t = _arr(y, "y")
    if a.ndim < 1 or a.shape[-1] < len(sp):
        raise ValueError(f"unscale_features(): 'y' has shape {a.shape}, expected at least {len(sp)} columns")
    m = _rows(a, mask, "unscale_features()")
    out = np.empty_like(a)
    if scaling is not None:
        sc = np.asarray(scaling.numpy() if isinstance(scaling, Tensor) else scaling, np.float64)
        if sc.ndim != 2 or sc.shape[1] != 2 or sc.shape[0] > a.shape[-1]:
            raise ValueError(f"unscale_features(): 'scaling' has shape {sc.shape}, expected (F, 2) = (mean, std)")
        _C.phys_standardize(out, a, np.ascontiguousarray(sc[:, 0]), np.ascontiguousarray(sc[:, 1]), m, True)
    else:
        _C.data_copy(out, a)
    for col, s in enumerate(sp):
        if s is not None:
            _C.phys_unscale(s[0], out, out, col, float(s[1]), m)
    return _out(out, t)
