"""python -m hepml.course run: run the course end to end."""
import argparse
import os
import runpy
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hepml.course")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the course")
    run.add_argument("--profile", choices=["default", "quick"], default="default")
    args = parser.parse_args(argv)
    if args.command == "run":
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        example = os.path.join(root, "examples", "quickstart.py")
        runpy.run_path(example, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
