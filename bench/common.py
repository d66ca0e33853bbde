"""Shared benchmark machinery: timing, page faults and peak memory, hepml vs PyTorch.

Times are medians of repeated runs measured in the same process with the same
thread count; we report ratios (torch time / hepml time: > 1 means hepml is
faster). Peak memory is measured in a fresh subprocess per library, since a
process's high-water mark cannot be reset.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def threads():
    return int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


def setup_threads(n=None):
    n = n or threads()
    import hepml
    hepml.set_num_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def timeit(fn, repeat=7, warmup=2, min_time=0.0):
    """Median wall time of fn() in seconds, plus minor page faults per call."""
    for _ in range(warmup):
        fn()
    times = []
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    calls = 0
    t_start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - t_start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        calls += 1
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / calls
    return statistics.median(times), faults


def _vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_memory_mb(module, func, *args):
    """Run bench.<module>.<func>(*args) in a fresh interpreter; return its peak RSS growth in MiB
    (VmHWM after the run minus VmRSS after the imports; exec starts a fresh high-water mark,
    unlike ru_maxrss, which a child inherits from its parent)."""
    code = (
        "import json, importlib\n"
        "from bench.common import _vm\n"
        f"m = importlib.import_module('bench.{module}')\n"
        "base = _vm('VmRSS')\n"
        f"m.{func}(*{args!r})\n"
        "print(json.dumps(_vm('VmHWM') - base))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(rows, title):
    """Print a table of (name, hepml_s, torch_s, hepml_faults, torch_faults) rows with ratios."""
    print(f"\n{title}  ({threads()} threads)")
    print(f"{'case':48s} {'hepml ms':>10s} {'torch ms':>10s} {'speed-up':>9s} {'faults/call h/t':>16s}")
    for name, h, t, hf, tf in rows:
        ratio = t / h if h > 0 else float("nan")
        print(f"{name:48s} {1e3 * h:10.3f} {1e3 * t:10.3f} {ratio:8.2f}x {hf:7.0f}/{tf:<8.0f}")
    sys.stdout.flush()
