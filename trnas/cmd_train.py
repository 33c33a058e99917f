"""``trnas train``: standard, PGD or TRADES training of a genotype (or ResNet-18), resumable."""
from __future__ import annotations

from .config import UsageError, load_config

FLAG_KEYS = ("genotype", "genotypes_file", "from_run", "pick", "arch", "method", "out_dir")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="adversarially train an architecture",
        description="Train the evaluation network of a genotype (DARTS text, JSON, a name from "
                    "genotypes_file=, or from_run=<search run folder> with pick=best_rscore|knee) or "
                    "arch=resnet18 with method=standard|pgd|trades. Settings are key=value overrides of "
                    "--config (e.g. configs/train_quick.yaml or configs/train_paper.yaml).")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings overriding the config")
    parser.add_argument("--config", "-c", help="YAML config file or preset name (train_quick, train_paper)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run folder's last checkpoint (same settings, same result)")
    for key in FLAG_KEYS:
        parser.add_argument("--" + key.replace("_", "-"), dest=key, default=None, help=f"same as {key}=...")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from evaluation.training import TRAIN_DEFAULTS, TrainingError, train
    config = load_config(args.config, list(args.overrides), TRAIN_DEFAULTS)
    for key in FLAG_KEYS:
        # flag values are taken verbatim (no YAML reading), so genotype text needs no quoting
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    try:
        train(config, resume=args.resume)
    except TrainingError as error:
        raise UsageError(str(error)) from None
    return 0
