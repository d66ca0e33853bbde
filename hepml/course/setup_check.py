"""``hepml.course.check_setup()``: is this machine ready for the course?

One call checks, in order: that hepml and its C extension load; that a small matrix
product gives a result known in closed form (small and BLAS-sized); which BLAS and
kernel are in use (and whether OPENBLAS_CORETYPE forces an odd one); the thread
count against the CPUs available; whether the course dataset of the active profile
is already in ``hepml.course.data_dir()`` (it is never generated here); the optional
packages the notebooks use; and the free disk space where the data go.

Each check is OK, WARN (works, but look at it) or FAIL (the course will not run).
Nothing raises: a check that cannot even run is reported as FAIL with the reason.
"""
import importlib
import importlib.util
import json
import os
import shutil
import sys
from collections import namedtuple

__all__ = ["check_setup", "SetupCheck", "CheckResult"]

OK, WARN, FAIL = "OK", "WARN", "FAIL"

CheckResult = namedtuple("CheckResult", ["status", "message", "hint"])
CheckResult.__doc__ = "One line of the checklist: status (OK/WARN/FAIL), what was found, what to do (or '')."

# Optional packages the notebooks use, with what they are for.
COURSE_PACKAGES = (
    ("matplotlib", "plots in every notebook"),
    ("tqdm", "progress bars"),
    ("nbclient", "running the notebooks headless (python -m hepml.course run)"),
    ("ipywidgets", "notebook progress bars and widgets"),
)

# Disk the prepared dataset needs, measured on the course machines (generated events
# + prepared arrays, 11 copies per event), with headroom.
_DATASET_BYTES = {"default": 2.5e9, "quick": 1.0e8}
_MIN_FREE_BYTES = 2.0e8

# OpenBLAS kernel names by the widest vector unit they use.
_AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}
_AVX2_CORES = {"haswell", "zen", "skylake"}
_OLD_CORES = {"sandybridge", "nehalem", "prescott", "core2", "penryn", "dunnington", "atom", "barcelona",
              "bulldozer", "piledriver", "steamroller", "excavator", "opteron", "katmai", "coppermine",
              "northwood", "banias", "athlon", "generic"}


class SetupCheck(dict):
    """The result of ``check_setup``: a dict ``{check name: CheckResult}`` in the order
    the checks ran. ``.ok`` is True when nothing FAILed (warnings allowed);
    ``.failures`` and ``.warnings`` list the names; ``str()`` is the checklist."""

    @property
    def ok(self):
        return all(r.status != FAIL for r in self.values())

    @property
    def failures(self):
        return [k for k, r in self.items() if r.status == FAIL]

    @property
    def warnings(self):
        return [k for k, r in self.items() if r.status == WARN]

    def __str__(self):
        width = max((len(k) for k in self), default=8)
        lines = ["hepml setup check"]
        for name, r in self.items():
            lines.append(f"  [{r.status:4s}] {name:{width}s}  {r.message}")
            if r.hint and r.status != OK:
                lines.append(f"  {'':6s} {'':{width}s}  -> {r.hint}")
        if self.ok and not self.warnings:
            lines.append("Everything is in place.")
        elif self.ok:
            lines.append(f"Ready, with {len(self.warnings)} warning(s): {', '.join(self.warnings)}.")
        else:
            lines.append(f"NOT ready: {', '.join(self.failures)} failed.")
        return "\n".join(lines)

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, p, cycle):  # IPython shows the checklist, not the raw dict
        p.text(str(self))


def _gib(n):
    return f"{n / 2**30:.1f} GiB"


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ----------------------------------------------------------------- the checks

def _check_install():
    import hepml
    ext = importlib.import_module("hepml._C")
    where = getattr(ext, "__file__", "?")
    version = getattr(hepml, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as _v
            version = _v("hepml")
        except Exception:
            version = "unknown"
    return CheckResult(OK, f"hepml {version} on Python {sys.version.split()[0]}, C extension "
                           f"{os.path.basename(where)} loaded", "")


def _check_matmul():
    import numpy as np
    import hepml
    # Small: [[1 2 3] [4 5 6]] @ [[7 8] [9 10] [11 12]] = [[58 64] [139 154]].
    a = hepml.tensor(np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    b = hepml.tensor(np.array([[7, 8], [9, 10], [11, 12]], np.float32))
    small = np.asarray(hepml.matmul(a, b).numpy())
    want_small = np.array([[58, 64], [139, 154]], np.float32)
    # BLAS-sized: A = ones(m, k), B[p, j] = p + j, so C[i, j] = k (k - 1) / 2 + k j exactly
    # (integers below 2^24 are exact in float32, whatever the summation order).
    m, k, n = 80, 96, 72
    A = np.ones((m, k), np.float32)
    B = (np.arange(k, dtype=np.float32)[:, None] + np.arange(n, dtype=np.float32)[None, :])
    big = np.asarray(hepml.matmul(hepml.tensor(A), hepml.tensor(B)).numpy())
    want_big = np.broadcast_to(k * (k - 1) / 2 + k * np.arange(n, dtype=np.float64), (m, n))
    bad = []
    if small.shape != (2, 2) or not np.array_equal(small, want_small):
        bad.append(f"2x3 @ 3x2 gave {small.tolist()}, expected {want_small.tolist()}")
    if big.shape != (m, n) or not np.allclose(big, want_big, rtol=1e-6, atol=0):
        bad.append(f"{m}x{k} @ {k}x{n} differs from the exact result by up to "
                   f"{float(np.max(np.abs(big - want_big))) if big.shape == (m, n) else 'shape ' + str(big.shape)}")
    if bad:
        return CheckResult(FAIL, "; ".join(bad),
                           "the C extension or BLAS computes wrong numbers: reinstall hepml "
                           "(pip install --force-reinstall hepml) and unset OPENBLAS_CORETYPE")
    return CheckResult(OK, f"2x3 @ 3x2 and {m}x{k} @ {k}x{n} exact", "")


def _check_blas():
    from .. import _config
    cfg = _config.config()
    lib = cfg.get("blas") or ""
    core = (cfg.get("blas_core") or "").strip()
    avx2, avx512 = bool(cfg.get("cpu_avx2")), bool(cfg.get("cpu_avx512"))
    cpu = "AVX-512" if avx512 else ("AVX2" if avx2 else "no AVX2")
    msg = f"{lib or 'unknown library'}, kernel {core or 'unknown'} (CPU: {cpu})"
    if not lib or lib.lower().startswith("unknown"):
        return CheckResult(FAIL, "no BLAS library reported by hepml's C extension",
                           "reinstall hepml; it needs scipy-openblas32 (pip install scipy-openblas32)")
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:
        f = forced.strip().lower()
        msg += f"; forced by OPENBLAS_CORETYPE={forced}"
        problem = None
        if f in _AVX512_CORES and not avx512:
            problem = "asks for an AVX-512 kernel on a CPU without AVX-512"
        elif f in _AVX2_CORES | _AVX512_CORES and not avx2:
            problem = "asks for an AVX2 kernel on a CPU without AVX2"
        elif avx512 and f in _AVX2_CORES | _OLD_CORES:
            problem = "throws away the CPU's AVX-512 (about half the matrix-multiply speed)"
        elif avx2 and f in _OLD_CORES:
            problem = "throws away the CPU's AVX2/FMA (much slower matrix products)"
        elif core and f != core.lower():
            problem = f"but OpenBLAS runs its {core} kernel (the name was not recognised)"
        if problem:
            return CheckResult(WARN, f"{msg}: it {problem}",
                               "unset OPENBLAS_CORETYPE before starting Python/Jupyter so OpenBLAS picks the "
                               "kernel for this CPU")
        return CheckResult(OK, msg, "")
    if not core:
        return CheckResult(WARN, msg, "OpenBLAS did not report its kernel; hepml.show_config() prints the details")
    return CheckResult(OK, msg, "")


def _check_threads():
    import hepml
    from .. import _config
    cfg = _config.config()
    threads = int(hepml.get_num_threads())
    blas_threads = cfg.get("blas_threads")
    cpus = _cpus()
    omp_env = os.environ.get("OMP_NUM_THREADS")
    msg = f"hepml uses {threads} thread(s), BLAS {blas_threads}, on {cpus} available CPU(s)"
    if omp_env:
        msg += f" (OMP_NUM_THREADS={omp_env})"
    if threads > cpus or (isinstance(blas_threads, int) and blas_threads > cpus):
        return CheckResult(WARN, msg + ": more threads than CPUs, which slows everything down",
                           f"hepml.set_num_threads({cpus}) or set OMP_NUM_THREADS={cpus} before starting Jupyter")
    if threads < cpus and not omp_env:
        return CheckResult(WARN, msg + ": not all CPUs are used",
                           f"hepml.set_num_threads({cpus}) to use them all")
    return CheckResult(OK, msg, "")


class _Finding(Exception):
    """Raised by a helper to end a check with a specific result."""

    def __init__(self, result):
        super().__init__(result.message)
        self.result = result


def _profile():
    from .config import PROFILES, profile
    try:
        return profile()
    except ValueError:
        raise _Finding(CheckResult(FAIL, f"HEPML_PROFILE={os.environ.get('HEPML_PROFILE')!r} is not a course "
                                         f"profile", f"set HEPML_PROFILE to one of {', '.join(PROFILES)} "
                                         "(or unset it for 'default')")) from None


def _dataset_paths():
    from .config import data_dir, pick
    prof = _profile()
    n = pick(200_000, 5_000)
    # The names hepml.data.course_dataset() uses with its defaults (seed 1, 10 rotations, seed 42).
    base = data_dir()
    return prof, n, base, base / f"ww_events_{n}_seed1", base / f"ww_prepared_{n}_seed1_aug10_seed42"


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _check_dataset():
    from ..data import output_files
    from ..data._io import GENERATED_FORMAT, GENERATED_MANIFEST, PREPARED_FORMAT, PREPARED_MANIFEST
    prof, n, base, gen_dir, prep_dir = _dataset_paths()
    how = ("run hepml.data.course_dataset() once (or notebook 1, 1_DatasetPreparation.ipynb); it generates and "
           "prepares the data and caches them for every later notebook")
    man = _read_json(prep_dir / PREPARED_MANIFEST)
    if man and man.get("format") == PREPARED_FORMAT:
        missing = [f for f in output_files() if not (prep_dir / f).is_file()]
        if missing:
            return CheckResult(WARN, f"profile '{prof}': {prep_dir} is incomplete ({len(missing)} of "
                                     f"{len(output_files())} files missing, e.g. {missing[0]})",
                               "delete that directory and " + how)
        rows = man.get("n_rows", {})
        return CheckResult(OK, f"profile '{prof}': prepared, {rows.get('training', '?')} training / "
                               f"{rows.get('validation', '?')} validation rows in {prep_dir}", "")
    gen = _read_json(gen_dir / GENERATED_MANIFEST)
    if gen and gen.get("format") == GENERATED_FORMAT:
        return CheckResult(WARN, f"profile '{prof}': {n} events generated in {gen_dir} but not prepared yet",
                           how)
    others = sorted(p.name for p in base.glob("ww_prepared_*") if p.is_dir()) if base.is_dir() else []
    extra = f" (other prepared sets there: {', '.join(others)})" if others else ""
    return CheckResult(WARN, f"profile '{prof}': the course dataset ({n} events) is not in {base} yet{extra}", how)


def _check_packages():
    from importlib.metadata import PackageNotFoundError, version
    found, missing = [], []
    for name, why in COURSE_PACKAGES:
        if importlib.util.find_spec(name) is None:
            missing.append(f"{name} ({why})")
            continue
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(name)
    if missing:
        return CheckResult(WARN, "missing: " + "; ".join(missing) + (f". Found: {', '.join(found)}" if found else ""),
                           'pip install "hepml[course]" matplotlib tqdm')
    return CheckResult(OK, ", ".join(found), "")


def _check_disk():
    prof, _, base, _, prep_dir = _dataset_paths()
    free = shutil.disk_usage(base).free
    need = _DATASET_BYTES.get(prof, _DATASET_BYTES["default"])
    have_data = prep_dir.is_dir()
    msg = f"{_gib(free)} free in {base}"
    if free < _MIN_FREE_BYTES:
        return CheckResult(FAIL, msg + ": too little to write anything",
                           "free some space or point HEPML_DATA_DIR at a disk with room")
    if not have_data and free < need:
        return CheckResult(WARN, msg + f": the course dataset needs about {_gib(need)}",
                           "free some space or point HEPML_DATA_DIR at a disk with room")
    return CheckResult(OK, msg, "")


_CHECKS = (
    ("install", _check_install),
    ("matmul", _check_matmul),
    ("BLAS", _check_blas),
    ("threads", _check_threads),
    ("dataset", _check_dataset),
    ("packages", _check_packages),
    ("disk space", _check_disk),
)


def check_setup(verbose=True):
    """Check the install, BLAS, threads, course dataset, optional packages and disk
    space in one call. Prints a checklist when ``verbose`` and returns a
    ``SetupCheck`` (a dict of ``CheckResult(status, message, hint)``; ``.ok`` is True
    when nothing failed). Never raises for a failed check: it reports it."""
    result = SetupCheck()
    for name, fn in _CHECKS:
        try:
            result[name] = fn()
        except _Finding as f:
            result[name] = f.result
        except Exception as e:  # a check that cannot run is itself the finding
            result[name] = CheckResult(FAIL, f"could not run: {type(e).__name__}: {e}",
                                       "hepml.show_config() prints the build configuration; include this checklist "
                                       "when you ask for help")
    if verbose:
        try:
            print(result, flush=True)
        except Exception:
            pass
    return result
