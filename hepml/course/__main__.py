"""python -m hepml.course run [--profile default|quick] [--only 3 5 ...]: run the course end to end.

Executes the course notebooks found in notebooks/ in order, headless, writing the executed
notebooks and their HTML renderings to build/course/, and prints a table: notebook, wall
time, and the headline figures each notebook recorded with ``hepml.course.record``
(also saved to build/course/results.json). A failing cell stops the run naming the
notebook, the cell and the error.

python -m hepml.course grade SUBMISSION_DIR: see hepml/course/grading.py.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from .._atomic import atomic_path, write_text_atomic
from .config import PROFILES, repo_root
from .nbrun import execute_notebook
from .results import RESULTS_ENV, read_results


def course_notebooks(only=None, notebooks_dir=None):
    if notebooks_dir is None:
        root = repo_root()
        if root is None:
            raise SystemExit("hepml.course run needs the repository checkout (notebooks/ was not found)")
        notebooks_dir = root / "notebooks"
    notebooks = sorted(Path(notebooks_dir).glob("[0-9]_*.ipynb"))
    if only:
        wanted = {str(n) for n in only}
        notebooks = [p for p in notebooks if p.name.split("_", 1)[0] in wanted]
        if not notebooks:
            raise SystemExit(f"--only {' '.join(map(str, only))}: no notebook has that number")
    return notebooks


def _render_html(nb, target):
    """An HTML rendering next to the executed notebook (needs nbconvert; skipped without it)."""
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        return None
    body, _ = HTMLExporter().from_notebook_node(nb)
    write_text_atomic(target, body)
    return target


def _failed_cell(nb):
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return i, cell.get("source", "")
    return None, ""


def run_notebooks(profile, out_dir, only=None, notebooks_dir=None):
    import nbclient
    import nbformat
    notebooks = course_notebooks(only, notebooks_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["HEPML_PROFILE"] = profile
    os.environ.setdefault("MPLBACKEND", "Agg")
    rows = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        results_file = out_dir / (path.stem + ".results.jsonl")
        results_file.unlink(missing_ok=True)
        os.environ[RESULTS_ENV] = str(results_file)   # the kernel inherits it; course.record appends
        t0 = time.perf_counter()
        try:
            execute_notebook(nb, path.parent)
        except nbclient.exceptions.CellExecutionError as e:
            failed = out_dir / path.name
            nbformat.write(nb, failed)
            index, source = _failed_cell(nb)
            where = f"cell {index}" if index is not None else "a cell"
            raise SystemExit(f"\n{path.name}: {where} failed (executed notebook saved to {failed}).\n"
                             f"--- cell source ---\n{source}\n--- error ---\n{e}")
        finally:
            os.environ.pop(RESULTS_ENV, None)
        dt = time.perf_counter() - t0
        target = out_dir / path.name
        with atomic_path(target) as tmp:
            nbformat.write(nb, tmp)
        _render_html(nb, target.with_suffix(".html"))
        figures = read_results(results_file)
        rows.append({"notebook": path.name, "seconds": round(dt, 1), "figures": figures})
        shown = ", ".join(_fmt_figure(f) for f in figures)
        print(f"  {path.name:36s} {dt:8.1f} s   {shown}", flush=True)
    return rows


def _fmt_figure(f):
    unit = f" {f['unit']}" if f.get("unit") else ""
    shown = f.get("shown") or f"{f['value']:.4g}"   # as the notebook printed it
    return f"{f['name']} = {shown}{unit}"


def print_summary(rows, profile):
    print(f"\nhepml course, profile '{profile}': {len(rows)} notebooks, "
          f"{sum(r['seconds'] for r in rows):.1f} s in total\n")
    print(f"{'notebook':36s} {'time':>9s}   headline figures")
    print("-" * 100)
    for r in rows:
        figures = r["figures"] or [{"name": "(none recorded)", "value": float('nan')}]
        for i, f in enumerate(figures):
            left = f"{r['notebook']:36s} {r['seconds']:8.1f}s" if i == 0 else " " * 46
            text = _fmt_figure(f) if f["name"] != "(none recorded)" else f["name"]
            print(f"{left}   {text}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hepml.course")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the course notebooks headless")
    run.add_argument("--profile", choices=PROFILES, default=os.environ.get("HEPML_PROFILE", "default"))
    run.add_argument("--out", default=None, help="where executed notebooks go (default build/course)")
    run.add_argument("--notebooks", default=None, help="directory of the notebooks (default: the checkout's)")
    run.add_argument("--only", nargs="+", type=int, default=None, metavar="N",
                     help="run only the notebooks with these numbers")
    grade = sub.add_parser("grade", help="grade a final-exercise submission")
    grade.add_argument("submission", help="the submission directory (with submission.toml)")
    grade.add_argument("--rubric", default=None, help="rubric TOML (default course/grading/rubric.toml)")
    grade.add_argument("--out", default=None, help="where grade.json/grade.md go (default: the submission)")
    args = parser.parse_args(argv)
    if args.command == "grade":
        from .grading import RubricError, grade_markdown, grade as grade_submission
        try:
            sheet = grade_submission(args.submission, args.rubric, args.out, progress=True)
        except RubricError as e:   # the lecturer's file; problems of the submission are on the sheet
            print(f"hepml.course grade: {e}", file=sys.stderr)
            return 2
        print(grade_markdown(sheet))
        print(f"grade sheet written to {Path(sheet['written_to']) / 'grade.json'} and grade.md")
        return 0
    if args.command == "run":
        out = Path(args.out) if args.out else (repo_root() or Path.cwd()) / "build" / "course"
        print(f"hepml course, profile '{args.profile}', executed notebooks -> {out}")
        rows = run_notebooks(args.profile, out, args.only, args.notebooks)
        summary = {"profile": args.profile, "notebooks": rows}
        write_text_atomic(out / "results.json", json.dumps(summary, indent=2))
        print_summary(rows, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
