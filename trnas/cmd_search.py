"""``trnas search [--config NAME_OR_PATH] [key=value ...] [--resume [--repair-archive] | --restart]``"""
from __future__ import annotations

from .config import add_config_arguments, add_run_folder_arguments, load_config
from .search import SEARCH_DEFAULTS, run_search


def add_parser(subparsers):
    parser = subparsers.add_parser("search", help="training-free robust architecture search",
                                   description="Run a training-free multi-objective search and write a run folder.")
    add_config_arguments(parser, SEARCH_DEFAULTS, "quick, default, paper")
    add_run_folder_arguments(parser, "continue the run in the run folder from its archive (nothing archived is "
                                     "rescored); settings other than threads, workers, ray_address and "
                                     "gpus_per_worker must not change")
    parser.add_argument("--repair-archive", action="store_true",
                        help="with --resume: keep every readable record of a corrupt archive.jsonl and move its other "
                             "lines to archive.unreadable-N.jsonl beside it")
    parser.set_defaults(run=run)


def run(args) -> int:
    config = load_config(args.config, args.overrides, SEARCH_DEFAULTS)
    run_search(config, resume=args.resume, restart=args.restart, repair_archive=args.repair_archive)
    return 0
