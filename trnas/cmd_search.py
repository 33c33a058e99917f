"""``trnas search [--config NAME_OR_PATH] [key=value ...] [--resume [--repair-archive] | --restart]``

``algorithm=rnas-os`` or ``rnas-fd`` runs a differentiable search (``differentiable``) with its
own settings instead of the training-free one."""
from __future__ import annotations

from .config import UsageError, add_config_arguments, add_run_folder_arguments, load_config, read_config
from .search import SEARCH_DEFAULTS, run_search


def add_parser(subparsers):
    parser = subparsers.add_parser("search", help="training-free robust architecture search",
                                   description="Run a training-free multi-objective search and write a run folder.")
    add_config_arguments(parser, SEARCH_DEFAULTS, "quick, default, paper, rnas_os_quick, rnas_fd_quick, "
                                                  "rnas_os_paper, rnas_fd_paper")
    add_run_folder_arguments(parser, "continue the run in the run folder from its archive (nothing archived is "
                                     "rescored); settings other than threads, workers, ray_address and "
                                     "gpus_per_worker must not change")
    parser.add_argument("--repair-archive", action="store_true",
                        help="with --resume: keep every readable record of a corrupt archive.jsonl and move its other "
                             "lines to archive.unreadable-N.jsonl beside it")
    parser.set_defaults(run=run)


def chosen_algorithm(args) -> str:
    loaded, _, overrides = read_config(args.config, args.overrides)
    return overrides.get("algorithm", loaded.get("algorithm", SEARCH_DEFAULTS["algorithm"]))


def run_differentiable(args, algorithm: str) -> int:
    from differentiable import defaults_for, run_differentiable_search
    if args.restart or args.repair_archive:
        raise UsageError(f"algorithm={algorithm} keeps a checkpoint, not an archive: only --resume applies "
                         "(overwrite=true starts a new run in the folder)")
    run_differentiable_search(load_config(args.config, args.overrides, defaults_for(algorithm)), resume=args.resume)
    return 0


def run(args) -> int:
    from differentiable import ALGORITHMS
    algorithm = chosen_algorithm(args)
    if algorithm in ALGORITHMS:
        return run_differentiable(args, algorithm)
    config = load_config(args.config, args.overrides, SEARCH_DEFAULTS)
    run_search(config, resume=args.resume, restart=args.restart, repair_archive=args.repair_archive)
    return 0
