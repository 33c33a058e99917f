"""``trnas compare [--config NAME_OR_PATH] [key=value ...] [--resume | --restart]``"""
from __future__ import annotations

import sys

from .compare import COMPARE_DEFAULTS, run_comparison
from .config import add_config_arguments, load_config


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "compare", help="compare search algorithms over several seeds at an equal budget of evaluations",
        description="Run several search algorithms (algorithms=trnas/<paper|spread>/<inverse|neglog>, "
                    "nsga2/<objective>, moead/<objective>, random) over several seeds at one budget of evaluations "
                    "on one problem whose archive they share, and write a run folder: hypervolume against "
                    "evaluations, the final fronts, and a table with a rank-sum test against the baseline.")
    add_config_arguments(parser, COMPARE_DEFAULTS)
    parser.add_argument("--resume", action="store_true",
                        help="continue the comparison in the run folder: finished runs are kept, the others rerun "
                             "from the archive; algorithms, seeds and baseline may change, the budget and the "
                             "problem may not")
    parser.add_argument("--restart", action="store_true",
                        help="start a new comparison in a folder that holds one, moving the earlier one's files "
                             "to RUN_FOLDER/previous-N")
    parser.set_defaults(run=run)


def run(args) -> int:
    from evaluation.evaluators import WorkerError
    config = load_config(args.config, args.overrides, COMPARE_DEFAULTS)
    try:
        run_comparison(config, resume=args.resume, restart=args.restart)
    except WorkerError as error:
        print(f"trnas compare: error: {error}; --resume continues from the finished runs and the archive",
              file=sys.stderr)
        return 1
    return 0
