"""python -m hepml.data generate|prepare: the course dataset from the command line.

    python -m hepml.data generate --events 1000000 --seed 1 --out datasets/cache/default/ww
    python -m hepml.data prepare --input datasets/cache/default/ww --out datasets/cache/default/prepared
"""
import argparse
import sys
import time
import warnings


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hepml.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate same-sign WW events (hepml's teaching generator)")
    g.add_argument("--events", type=int, required=True, help="number of events")
    g.add_argument("--seed", type=int, required=True, help="random seed (events depend on it only)")
    g.add_argument("--out", required=True, help="output directory (written atomically)")
    g.add_argument("--chunk-size", type=int, default=None, help="events per generator call")
    g.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a generator setting, e.g. --set met_min=20 (see datasets/README.md)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("prepare", help="prepare the course's training/validation arrays")
    p.add_argument("--input", required=True, nargs="+",
                   help="a directory written by 'generate', or the course's parquet file(s) / directory")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--augment", type=int, default=10, help="rotated copies per event (default 10)")
    p.add_argument("--seed", type=int, default=42, help="seed of the rotation angles (default 42)")
    p.add_argument("--split", type=float, default=0.7, help="training fraction (default 0.7)")
    p.add_argument("--max-events", type=int, default=None, help="use only the first events")
    p.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    import hepml
    from . import generator
    from .prepare import DataQualityWarning, prepare
    if args.threads is not None:
        hepml.set_num_threads(args.threads)
    try:
        if args.command == "generate":
            config = {}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep:
                    parser.error(f"--set expects KEY=VALUE, got {item!r}")
                config[key.strip()] = int(value) if key.strip() == "max_trials" else float(value)
            kw = {} if args.chunk_size is None else {"chunk_size": args.chunk_size}
            t0 = time.perf_counter()
            cols = generator.generate(args.events, args.seed, out_dir=args.out, progress=not args.no_progress,
                                      config=config or None, **kw)
            dt = time.perf_counter() - t0
            print(f"generated {args.events} events (seed {args.seed}) in {dt:.1f} s "
                  f"({args.events / dt:,.0f} events/s) -> {args.out} ({len(cols)} columns)")
        else:
            source = args.input[0] if len(args.input) == 1 else args.input
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataQualityWarning)  # the summary reports the drops
                prepare(source, args.out, augment=args.augment, seed=args.seed, split=args.split,
                                progress=not args.no_progress, verbose=True, max_events=args.max_events)
    except (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
