"""``trnas fit-predictor [--config NAME_OR_PATH] benchmark=PATH out=MODEL.skops [key=value ...]``: fit a
robustness predictor on a benchmark, say how well it ranks architectures it did not see, and save
it for ``proxy=predictor`` (:mod:`evaluation.predictor.fit`)."""
from __future__ import annotations

import sys

from .cmd_correlate import progress, say
from .config import add_config_arguments, load_config


def add_parser(subparsers):
    from evaluation.predictor.fit import FIT_DEFAULTS
    parser = subparsers.add_parser(
        "fit-predictor", help="fit a robustness predictor on a benchmark, for proxy=predictor",
        description="Fit gradient-boosted trees that predict robust accuracy from genotype graph features, the "
                    "trained network's parameter count and the values of input proxies (proxies= names, none by "
                    "default), on a robustness benchmark (benchmark= as for trnas correlate). Prints the Spearman "
                    "rho of an outer repeated k-fold (folds x repeats held-out folds) and writes the model to "
                    "out= (a skops file; overwrite=true replaces one); blend=rscore also reports the blend with the "
                    "R-Score that proxy_kwargs.blend=rscore scores with. Search with it: trnas search "
                    "proxy=predictor proxy_kwargs.model=MODEL.skops proxy_kwargs.blend=rscore")
    add_config_arguments(parser, FIT_DEFAULTS)
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from evaluation.predictor.fit import FIT_DEFAULTS, check_config, cv_line, fit_predictor
    from evaluation.predictor.store import save_predictor

    from . import __version__
    c = check_config(load_config(args.config, args.overrides, FIT_DEFAULTS))
    predictor, cv = fit_predictor(c, log=say, progress=progress if sys.stderr.isatty() else None,
                                  version=__version__)
    print(cv_line(cv))
    if "blend" in cv:
        print(cv_line(cv["blend"], cv["blend"]["name"]))
    save_predictor(predictor, c["out"], overwrite=c["overwrite"])
    print(f"wrote {c['out']} ({len(predictor.input_names)} inputs, {cv['n_architectures']} architectures)")
    return 0
