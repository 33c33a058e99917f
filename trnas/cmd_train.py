"""``trnas train [--config NAME_OR_PATH] [key=value ...] [--resume]``: standard, PGD or TRADES
training of a genotype (or ResNet-18), resumable."""
from __future__ import annotations

from nas_problem.files import check_folder

from .config import UsageError, add_config_arguments, load_config


def add_parser(subparsers):
    from evaluation.training import TRAIN_DEFAULTS
    parser = subparsers.add_parser(
        "train", help="adversarially train an architecture",
        description="Train the evaluation network of a genotype (genotype= DARTS text, JSON, or a name from "
                    "genotypes_file=; or from_run=<search run folder> with pick=best_rscore|knee) or "
                    "arch=resnet18 with method=standard|pgd|trades.")
    add_config_arguments(parser, TRAIN_DEFAULTS, "train_quick, train_paper")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's last checkpoint (same settings, same result)")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from evaluation.training import TRAIN_DEFAULTS, TrainingError, train
    config = load_config(args.config, args.overrides, TRAIN_DEFAULTS)
    if config["out_dir"] is not None:
        check_folder(str(config["out_dir"]))
    try:
        train(config, resume=args.resume)
    except TrainingError as error:
        raise UsageError(str(error)) from None
    return 0
