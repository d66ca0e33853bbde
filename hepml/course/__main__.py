"""python -m hepml.course run [--profile default|quick]: run the course end to end.

Executes the course notebooks found in notebooks/ in order, headless, writing the executed
notebooks to build/course/, and prints a table of notebook and wall time. A failing cell stops
the run naming the notebook, the cell and the error.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from .config import PROFILES, repo_root


def run_notebooks(profile, out_dir):
    import nbclient
    import nbformat
    root = repo_root()
    if root is None:
        raise SystemExit("hepml.course run needs the repository checkout (notebooks/ was not found)")
    notebooks = sorted((root / "notebooks").glob("[0-9]_*.ipynb"))
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["HEPML_PROFILE"] = profile
    os.environ.setdefault("MPLBACKEND", "Agg")
    rows = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        client = nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as e:
            failed = out_dir / path.name
            nbformat.write(nb, failed)
            raise SystemExit(f"\n{path.name}: a cell failed (executed notebook saved to {failed}):\n{e}")
        dt = time.perf_counter() - t0
        target = out_dir / path.name
        tmp = target.with_suffix(".tmp")
        nbformat.write(nb, tmp)
        os.replace(tmp, target)
        rows.append((path.name, dt))
        print(f"  {path.name:40s} {dt:8.1f} s", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hepml.course")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the course notebooks headless")
    run.add_argument("--profile", choices=PROFILES, default=os.environ.get("HEPML_PROFILE", "default"))
    run.add_argument("--out", default=None, help="where executed notebooks go (default build/course)")
    args = parser.parse_args(argv)
    if args.command == "run":
        out = Path(args.out) if args.out else (repo_root() or Path.cwd()) / "build" / "course"
        print(f"hepml course, profile '{args.profile}', executed notebooks -> {out}")
        rows = run_notebooks(args.profile, out)
        print(f"\n{len(rows)} notebooks, {sum(t for _, t in rows):.1f} s in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
