"""``trnas compare [--config NAME_OR_PATH] [key=value ...] [--resume | --restart]``"""
from __future__ import annotations

from .compare import COMPARE_DEFAULTS, run_comparison
from .config import add_config_arguments, add_run_folder_arguments, load_config


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="compare search algorithms over several seeds at an equal budget of evaluations",
        description="Run several search algorithms (algorithms=trnas/<paper|spread>/<inverse|neglog>, "
                    "nsga2/<objective>, moead/<objective>, random) over several seeds at one budget of evaluations "
                    "on one problem whose archive they share, and write a run folder: hypervolume against "
                    "evaluations, the final fronts, and a table with a rank-sum test against the baseline.")
    add_config_arguments(parser, COMPARE_DEFAULTS)
    add_run_folder_arguments(parser, "continue the comparison in the run folder: finished runs are kept, the others "
                                     "rerun from the archive; algorithms, seeds and baseline may change, the budget "
                                     "and the problem may not", "comparison")
    parser.set_defaults(run=run)


def run(args) -> int:
    config = load_config(args.config, args.overrides, COMPARE_DEFAULTS)
    run_comparison(config, resume=args.resume, restart=args.restart)
    return 0
