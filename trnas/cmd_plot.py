"""trnas plot RUN_DIR [--out FILE]: redraw a search's Pareto-front plot."""
from __future__ import annotations

from pathlib import Path

from nas_problem.files import check_folder

from .config import UsageError
from .runs import plot_run


def add_parser(subparsers):
    parser = subparsers.add_parser("plot", help="redraw the Pareto-front plot of a search run folder")
    parser.add_argument("run_dir", help="a search run folder (holds front.json, population.json, summary.json)")
    parser.add_argument("--out", help="PNG file to write (default RUN_DIR/front.png)")
    parser.set_defaults(run=run)


def run(args) -> int:
    folder = Path(args.run_dir)
    missing = [name for name in ("front.json", "population.json", "summary.json") if not (folder / name).exists()]
    if missing:
        raise UsageError(f"{folder} is not a finished search run folder (missing {', '.join(missing)})")
    if args.out:
        check_folder(Path(args.out).resolve().parent, "--out")
    print(plot_run(folder, path=args.out))
    return 0
