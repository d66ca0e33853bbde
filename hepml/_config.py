"""Threads, random seed and build configuration."""
import os
import warnings

from . import _C

set_num_threads = _C.set_num_threads
get_num_threads = _C.get_num_threads
get_rng_state = _C.get_rng_state


def manual_seed(seed):
    """Seed hepml's counter-based generator: the same seed gives the same numbers
    whatever the thread count."""
    _C.manual_seed(int(seed))


def set_rng_state(state):
    seed, offset = state
    _C.set_rng_state(int(seed), int(offset))


def config():
    """The build and run-time configuration as a dict."""
    cfg = dict(_C._config())
    cfg["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    cfg["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    cfg["pool"] = _C._pool_stats()
    return cfg


def show_config(file=None):
    """Print the BLAS in use (library, version, kernel), thread counts and build flags."""
    cfg = config()
    lines = [
        f"hepml {__import__('hepml').__version__}",
        f"  BLAS            : {cfg['blas']}",
        f"  BLAS config     : {cfg['blas_config'].strip()}",
        f"  BLAS kernel     : {cfg['blas_core']}"
        + (f"  (forced by OPENBLAS_CORETYPE={cfg['OPENBLAS_CORETYPE']})" if cfg["OPENBLAS_CORETYPE"] else ""),
        f"  CPU             : AVX2 {'yes' if cfg['cpu_avx2'] else 'no'}, AVX-512 {'yes' if cfg['cpu_avx512'] else 'no'}",
        f"  OpenMP threads  : {cfg['omp_threads']}",
        f"  BLAS threads    : {cfg['blas_threads']}",
        f"  compiler        : {cfg['compiler']}",
        f"  C flags         : {cfg['cflags']}",
        f"  buffer pool     : {cfg['pool']['cached_bytes'] / 2**20:.1f} MiB cached, "
        f"limit {cfg['pool']['limit_bytes'] / 2**20:.0f} MiB",
    ]
    print("\n".join(lines), file=file)


def _check_coretype():
    # OpenBLAS reads OPENBLAS_CORETYPE when it loads. We respect an explicit
    # choice, but say so when it throws away AVX-512 on a CPU that has it.
    forced = os.environ.get("OPENBLAS_CORETYPE")
    cfg = _C._config()
    if forced and cfg["cpu_avx512"] and forced.lower() in ("haswell", "zen", "sandybridge", "nehalem", "prescott"):
        warnings.warn(
            f"OPENBLAS_CORETYPE={forced} forces OpenBLAS's {forced} kernel on a CPU with AVX-512, which halves "
            "matrix-multiply throughput. Unset it (or set OPENBLAS_CORETYPE=SkylakeX) before starting Python "
            "to let OpenBLAS pick its AVX-512 kernel.", RuntimeWarning, stacklevel=3)


_check_coretype()
