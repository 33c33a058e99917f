"""Fitting a robustness predictor on a benchmark (``trnas fit-predictor``): score the input
proxies over the benchmark's architectures, build one row of inputs per architecture, measure
how well the estimator ranks architectures it never saw (an outer repeated k-fold whose
estimators are fitted on the training folds only, hyper-parameters included), then fit on
every row.

The input proxies default to none: graph features and the log of the trained network's
parameter count are always inputs, need no data set and cost microseconds, and a model without
proxy inputs scores a search on any data set; every proxy added costs its scoring time per
architecture in the search and ties the model to the data set it was measured on.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..correlate import benchmark_paths, final_scores, score_benchmark
from ..crossval import FoldEstimators, blended_predictor, mean_std, min_architectures, predictor, splits_of
from ..rank_stats import spearman
from ..settings import SettingError, as_bool, as_int, as_names, as_number, as_text, check_known
from .model import fit_estimator, input_row
from .store import FORMAT, FORMAT_VERSION, Predictor, PredictorError, check_output, matrix, plain

FIT_DEFAULTS = dict(
    benchmark=None, out=None, overwrite=False, proxies="none", dataset="npz", data_path=None, root=None,
    download=False, n_images=16, seed=0, folds=5, repeats=5, limit=None, bench_dataset="cifar10",
    robust_metric=None, clean_metric=None, epsilon="8/255", device="auto", threads=None, blend="none",
)


# ----- the settings -----
def input_proxies(value, key: str = "proxies") -> list[str]:
    """Proxy names from a list or comma-separated text; ``none`` (or nothing) for none."""
    if value in (None, "", []) or (isinstance(value, str) and value.strip().lower() == "none"):
        return []
    names = as_names(value, key)
    if any(name.partition(":")[0] == "predictor" for name in names):
        raise SettingError(f"{key}: a predictor cannot be an input of a predictor")
    if len(set(names)) < len(names):
        raise SettingError(f"{key}: a proxy is named twice in {', '.join(names)}")
    from .. import zoo  # noqa: F401  (registers the zoo's proxies)
    from ..registry import knobs_of
    for name in names:
        knobs_of(name.partition(":")[0])  # an unknown name fails here, before any work
    return names


def check_config(config: dict) -> dict:
    """The settings of :func:`fit_predictor`, over :data:`FIT_DEFAULTS`, checked, and ``out``
    refused before any work when it cannot be written."""
    check_known(config, FIT_DEFAULTS, "the fit-predictor settings")
    c = {**FIT_DEFAULTS, **config}
    c["benchmark"] = benchmark_paths(c["benchmark"])
    c["proxies"] = input_proxies(c["proxies"])
    blend = input_proxies(c["blend"], "blend")
    if len(blend) > 1:
        raise SettingError(f"blend: one proxy (rscore), got {', '.join(blend)}")
    c["blend"] = blend[0] if blend else None
    for key in ("dataset", "bench_dataset", "device"):
        c[key] = as_text(c[key], key)
    for key in ("data_path", "root", "robust_metric", "clean_metric"):
        c[key] = as_text(c[key], key, allow_none=True)
    for key in ("download", "overwrite"):
        c[key] = as_bool(c[key], key)
    c["n_images"] = as_int(c["n_images"], "n_images", minimum=1)
    c["seed"] = as_int(c["seed"], "seed", minimum=0, maximum=2 ** 32 - 1)
    c["folds"] = as_int(c["folds"], "folds", minimum=2)
    c["repeats"] = as_int(c["repeats"], "repeats", minimum=1)
    c["limit"] = as_int(c["limit"], "limit", minimum=1, allow_none=True)
    c["threads"] = as_int(c["threads"], "threads", minimum=1, allow_none=True)
    c["epsilon"] = as_number(c["epsilon"], "epsilon", minimum=0)
    if c["out"] is None:
        raise SettingError("out: none given (the model file to write, e.g. out=model.skops)")
    c["out"] = as_text(c["out"], "out")
    check_output(c["out"], c["overwrite"])
    return c


# ----- the rows -----
def score_inputs(c: dict, records: list[dict], log, progress=None) -> tuple[dict, dict, str | None]:
    """(``{name: components of every record}``, ``{name: Proxy}``, the data set's name) of the
    input proxies; no data set is loaded when there are none."""
    names = c["proxies"] + ([c["blend"]] if c["blend"] and c["blend"] not in c["proxies"] else [])
    if not names:
        return {}, {}, None
    from ..datasets import load_dataset, proxy_batch
    from ..registry import get_proxy
    data = load_dataset(c["dataset"], root=c["root"], download=c["download"], data_path=c["data_path"])
    images, labels = proxy_batch(data, c["n_images"])
    # every proxy built first: an unknown name fails before any work
    proxies = {name: get_proxy(name, device=c["device"], num_classes=data.num_classes, mean=data.mean,
                               std=data.std, n_images=c["n_images"]) for name in names}
    scored = {}
    for k, (name, proxy) in enumerate(proxies.items(), start=1):
        step = (lambda done, total: progress(k, len(proxies), name, done, total)) if progress else None
        scored[name], _, wall, described = score_benchmark(name, proxy, records, images, labels, c["seed"], log, step)
        log(f"[{k}/{len(proxies)}] {name}: {wall:.0f} s ({described})")
    return scored, proxies, data.name


def usable_rows(records: list[dict], scored: dict, proxies: dict, inputs: list) -> tuple[list[dict], list[int]]:
    """The input rows (of the proxies ``inputs``) of the records whose every input proxy is valid
    and every input finite, and those records' positions (a blend proxy's failures leave the fit alone)."""
    rows, kept = [], []
    for i, record in enumerate(records):
        components = {name: scored[name][i] for name in inputs}
        if not all(proxies[name].is_valid(values) for name, values in components.items()):
            continue
        row = input_row(record["genotype"], components, record["trained_network"])
        if all(math.isfinite(value) for value in row.values()):
            rows.append(row)
            kept.append(i)
    return rows, kept


def common_names(rows: list[dict]) -> list[str]:
    """The inputs every row has, in the first row's order (a diagnostic component a proxy
    reports for some architectures only is not an input)."""
    return [name for name in rows[0] if all(name in row for row in rows)]


def one_space(records: list[dict]) -> str:
    spaces = sorted({record["genotype"].space_name for record in records})
    if len(spaces) != 1:
        raise PredictorError(f"the benchmark holds {' and '.join(spaces) or 'no'} architectures: a predictor "
                             f"is fitted on one space")
    return spaces[0]


def enough(n: int, folds: int, what: str) -> None:
    """Refuse fewer architectures than the folds' fits can learn from: each of k held-out
    folds needs a training set that the inner cross-validation can split again."""
    need = min_architectures(folds)
    if n < need:
        raise PredictorError(f"{what} {n} architectures: {folds}-fold cross-validation needs at least {need}")


def trained_network(records: list[dict], log) -> dict:
    """The most common size settings of the networks the benchmark trained: a search's
    architectures are predicted as if trained at these."""
    counts = Counter(tuple(sorted(r["trained_network"].items())) for r in records)
    settings, n = counts.most_common(1)[0]
    if len(counts) > 1:
        log(f"note: the benchmark trained networks of {len(counts)} sizes; a search's architectures are predicted "
            f"as trained at the most common, {dict(settings)} ({n} of {len(records)})")
    return dict(settings)


# ----- the numbers -----
def cross_validate(X: np.ndarray, y: np.ndarray, folds: int, repeats: int, seed: int, blend_scores=None,
                   estimators=None) -> dict:
    """Spearman ρ between predicted and true ``y`` on each held-out fold of the held-out
    protocol's splits (:mod:`evaluation.crossval`), of the predictions or, given
    ``blend_scores``, of their blend with them; each fold's estimator sees its training folds
    only (``estimators``, a :class:`~evaluation.crossval.FoldEstimators`, shares the fits between
    calls). A fold whose predictions or targets are constant has no ρ and is counted apart."""
    fit = (predictor(X, y, seed, 0.0, estimators) if blend_scores is None else
           blended_predictor(X, y, seed, blend_scores, 0.0, estimators))
    rhos = []
    for train, held_out in splits_of(len(y), folds, repeats, seed):
        predict, _, _ = fit(train)
        rhos.append(spearman(predict(held_out), y[held_out]))
    mean, std = mean_std(rhos)
    n_defined = sum(math.isfinite(rho) for rho in rhos)
    return {"spearman_mean": mean, "spearman_std": std, "n_folds": n_defined, "n_undefined": len(rhos) - n_defined,
            "folds": folds, "repeats": repeats, "n_architectures": len(y), "fold_spearman": rhos}


def cv_line(cv: dict, blend: str | None = None) -> str:
    """What ``trnas fit-predictor`` says of the cross-validation (of the blend with ``blend``)."""
    undefined = f", {cv['n_undefined']} more without one (constant predictions)" if cv["n_undefined"] else ""
    label = f" (blended with {blend})" if blend else ""
    return (f"cross-validated Spearman rho{label}: {cv['spearman_mean']:.3f} ± "
            f"{cv['spearman_std']:.3f} over "
            f"{cv['n_folds']} held-out folds{undefined} ({cv['n_architectures']} architectures)")


# ----- the whole fit -----
def fit_predictor(config: dict, log=print, progress=None, version: str = "unknown") -> tuple[Predictor, dict]:
    """Fit a predictor of robust accuracy on ``config["benchmark"]`` (keys of :data:`FIT_DEFAULTS`);
    ``progress(k, n_proxies, name, done, total)`` follows the scoring. Returns the predictor
    (not yet saved) and the cross-validation's numbers."""
    from ..benchmarks import read_benchmark
    c = check_config(config)
    if c["threads"]:
        import torch
        torch.set_num_threads(c["threads"])
    records = read_benchmark(c["benchmark"], dataset=c["bench_dataset"], robust_metric=c["robust_metric"],
                             clean_metric=c["clean_metric"], epsilon=c["epsilon"])[:c["limit"]]
    space = one_space(records)
    enough(len(records), c["folds"], "the benchmark holds")
    log(f"fit-predictor: {len(records)} {space} architectures, input proxies: {', '.join(c['proxies']) or 'none'}")
    scored, proxies, dataset = score_inputs(c, records, log, progress)
    rows, kept = usable_rows(records, scored, proxies, c["proxies"])
    if len(rows) < len(records):
        log(f"dropped {len(records) - len(rows)} of {len(records)} architectures: an input proxy flagged them or "
            f"gave a value that is not finite")
    enough(len(rows), c["folds"], "the input proxies left")
    names = common_names(rows)
    X, y = matrix(rows, names), np.array([records[i]["robust_acc"] for i in kept], dtype=float)
    estimators = FoldEstimators(X, y, c["seed"])  # the blend's cross-validation reuses the folds' fits
    cv = cross_validate(X, y, c["folds"], c["repeats"], c["seed"], estimators=estimators)
    if c["blend"]:
        blend_scores = final_scores(proxies[c["blend"]], [scored[c["blend"]][i] for i in kept])
        try:
            cv["blend"] = {"name": c["blend"], **cross_validate(X, y, c["folds"], c["repeats"], c["seed"],
                                                                blend_scores, estimators)}
        except ValueError as error:
            raise PredictorError(f"blend={c['blend']}: {error} (blend with a proxy whose scores are positive, "
                                 f"such as rscore)") from None
    inputs = {name: proxies[name] for name in c["proxies"]}
    metadata = describe(c, space, names, inputs, dataset, trained_network([records[i] for i in kept], log), cv,
                        len(records), version)
    return Predictor(fit_estimator(X, y, c["seed"]), metadata), cv


def describe(c: dict, space: str, names: list, proxies: dict, dataset, trained: dict, cv: dict, n_read: int,
             version: str) -> dict:
    """The metadata a predictor file carries (:mod:`.store`)."""
    from pathlib import Path

    from ..benchmarks import ROBUST_METRICS, detect_layout
    target = c["robust_metric"] or ", ".join(sorted({ROBUST_METRICS[detect_layout(p)] for p in c["benchmark"]}))
    return plain({
        "format": FORMAT, "format_version": FORMAT_VERSION, "space": space, "input_names": names,
        "inputs": [{"name": name, "revision": proxy.revision, "config": proxy.config}
                   for name, proxy in proxies.items()],
        "n_images": c["n_images"], "dataset": dataset, "seed": c["seed"], "trained_network": trained,
        "target": target, "benchmark": {"files": [Path(p).name for p in c["benchmark"]], "n_architectures": n_read,
                                        "n_fitted": cv["n_architectures"]},
        "cv": {key: cv[key] for key in ("spearman_mean", "spearman_std", "n_folds", "n_undefined", "folds",
                                        "repeats")},
        "cv_blend": {key: cv["blend"][key] for key in ("name", "spearman_mean", "spearman_std", "n_folds")}
        if "blend" in cv else None,
        "trnas_version": version,
    })
