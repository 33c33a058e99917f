"""``trnas search [--config NAME_OR_PATH] [key=value ...] [--resume [--repair-archive] | --restart]``"""
from __future__ import annotations

import sys

from .config import add_config_arguments, load_config
from .search import SEARCH_DEFAULTS, run_search


def add_parser(subparsers):
    parser = subparsers.add_parser("search", help="training-free robust architecture search",
                                   description="Run a training-free multi-objective search and write a run folder.")
    add_config_arguments(parser, SEARCH_DEFAULTS, "quick, default, paper")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the run folder from its archive (nothing archived is rescored); "
                             "settings other than threads, workers, ray_address and gpus_per_worker must not change")
    parser.add_argument("--restart", action="store_true",
                        help="start a new run in a folder that holds one, moving the earlier run's files to "
                             "RUN_FOLDER/previous-N")
    parser.add_argument("--repair-archive", action="store_true",
                        help="with --resume: keep every readable record of a corrupt archive.jsonl and move its other "
                             "lines to archive.unreadable-N.jsonl beside it")
    parser.set_defaults(run=run)


def run(args) -> int:
    from evaluation.evaluators import WorkerError
    config = load_config(args.config, args.overrides, SEARCH_DEFAULTS)
    try:
        run_search(config, resume=args.resume, restart=args.restart, repair_archive=args.repair_archive)
    except WorkerError as error:
        # not bad input (exit 2), and no traceback: what was scored is archived and reusable
        print(f"trnas search: error: {error}", file=sys.stderr)
        return 1
    return 0
