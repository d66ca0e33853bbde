"""python -m bench.run_all: every benchmark in bench/, one after the other."""
import importlib
import pkgutil
import sys

import bench


def main():
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    for name in names:
        mod = importlib.import_module(f"bench.{name}")
        if hasattr(mod, "main"):
            mod.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
