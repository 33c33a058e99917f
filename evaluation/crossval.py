"""A development protocol that cannot flatter itself: repeated k-fold splits of a benchmark's
architectures; every choice (which proxy, which ensemble members, a predictor's fit and its
hyper-parameters) is made on the training folds only, and Spearman ρ and partial ρ given the
trained network's size are measured on the held-out fold (``trnas correlate --cv``).

Proxy scores are label-free, so they are computed once for every architecture; what uses the
robust accuracies is each method's ``fit(train)``, which sees the training rows alone."""
from __future__ import annotations

from collections import Counter

import numpy as np

from nas_problem.files import write_atomic, write_csv

from .predictor.model import blend_statistics, blended, fit_estimator, input_row
from .predictor.store import matrix
from .settings import SettingError
from .rank_stats import partial_spearman, spearman

HELDOUT_COLUMNS = ["method", "spearman_mean", "spearman_std", "partial_mean", "partial_std", "seconds_per_arch",
                   "chosen"]
MAX_ENSEMBLE = 4
# the baseline row: the parameter count of the network the benchmark trained, no proxy run
TRAINED_PARAMS = "params (trained network)"


def min_architectures(folds: int) -> int:
    """The fewest architectures a k-fold protocol runs on: each training set must hold enough for
    the predictor's inner cross-validation to split again."""
    return max(2 * folds, 10)


def splits_of(n: int, folds: int, repeats: int, seed: int) -> list:
    """``repeats`` × ``folds`` (train, held-out) index pairs: scikit-learn's RepeatedKFold."""
    from sklearn.model_selection import RepeatedKFold
    if n < folds:
        raise SettingError(f"{folds}-fold cross-validation needs at least {folds} architectures, got {n}")
    return list(RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed).split(np.arange(n)))


def ranks(values) -> np.ndarray:
    """Ascending ranks, a missing score (NaN) ranked below every real one."""
    from scipy import stats
    values = np.asarray(values, dtype=float)
    return stats.rankdata(np.where(np.isfinite(values), values, -np.inf))


# ----- methods: fit(train) -> (predict(held_out) -> scores, what was chosen, seconds per architecture) -----
def fixed(scores, seconds):
    return lambda train: (lambda held_out: scores[held_out], "", seconds)


def best_single(candidates: dict, robust, seconds: dict):
    """The candidate with the highest Spearman ρ on the training folds."""
    def fit(train):
        name = max(candidates, key=lambda n: np.nan_to_num(spearman(candidates[n][train], robust[train]), nan=-2))
        return (lambda held_out: candidates[name][held_out]), name, seconds[name]
    return fit


def mean_rank(candidates: dict, members, rows) -> np.ndarray:
    return np.mean([ranks(candidates[m][rows]) for m in members], axis=0)


def rank_ensemble(candidates: dict, robust, seconds: dict):
    """The mean rank of up to ``MAX_ENSEMBLE`` candidates, added greedily while the training
    folds' ρ rises."""
    def fit(train):
        members, best = [], -2.0
        while len(members) < MAX_ENSEMBLE:
            gains = {n: spearman(mean_rank(candidates, members + [n], train), robust[train])
                     for n in candidates if n not in members}
            name = max(gains, key=lambda n: np.nan_to_num(gains[n], nan=-2), default=None)
            if name is None or not gains[name] > best:
                break
            members, best = members + [name], gains[name]
        return ((lambda held_out: mean_rank(candidates, members, held_out)), " + ".join(sorted(members)),
                sum(seconds[m] for m in members))
    return fit


class FoldEstimators:
    """The predictor's estimator fitted on each training set once, for every method that needs it
    (the plain predictor and each blend share the fits of one set of inputs)."""

    def __init__(self, inputs: np.ndarray, robust, seed: int):
        self.inputs, self.robust, self.seed = inputs, np.asarray(robust, dtype=float), seed
        self.fitted = {}

    def __call__(self, train):
        key = np.asarray(train).tobytes()
        if key not in self.fitted:
            self.fitted[key] = fit_estimator(self.inputs[train], self.robust[train], self.seed)
        return self.fitted[key]


def predictor(inputs: np.ndarray, robust, seed: int, seconds: float, estimators: FoldEstimators | None = None):
    """Gradient-boosted trees on ``inputs`` fitted to the training folds (their hyper-parameters
    chosen by cross-validation inside them)."""
    estimators = estimators or FoldEstimators(inputs, robust, seed)

    def fit(train):
        model = estimators(train)
        return (lambda held_out: model.predict(inputs[held_out])), "", seconds
    return fit


def blended_predictor(inputs: np.ndarray, robust, seed: int, blend_scores, seconds: float,
                      estimators: FoldEstimators | None = None):
    """:func:`predictor` blended with a proxy's scores (:func:`~evaluation.predictor.model.blended`),
    standardised over every architecture's prediction and score (no label is read)."""
    blend_scores = np.asarray(blend_scores, dtype=float)
    estimators = estimators or FoldEstimators(inputs, robust, seed)

    def fit(train):
        predictions = estimators(train).predict(inputs)
        statistics = blend_statistics(predictions, blend_scores)
        return (lambda held_out: blended(predictions[held_out], blend_scores[held_out], statistics)), "", seconds
    return fit


# ----- the protocol -----
def mean_std(values) -> tuple:
    """Mean and standard deviation of the defined (finite) values; NaNs when none is."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return (float(values.mean()), float(values.std())) if len(values) else (float("nan"), float("nan"))


def evaluate(name: str, fit, splits, robust, size) -> dict:
    rhos, partials, chosen, seconds = [], [], Counter(), []
    for train, held_out in splits:
        predict, choice, cost = fit(train)
        predicted = predict(held_out)
        rhos.append(spearman(predicted, robust[held_out]))
        partials.append(partial_spearman(predicted, robust[held_out], size[held_out]))
        chosen[choice] += 1
        seconds.append(cost)
    top = ", ".join(f"{c} ({k}/{len(splits)})" for c, k in chosen.most_common(3) if c)
    (rho, rho_std), (partial, partial_std) = mean_std(rhos), mean_std(partials)
    return {"method": name, "spearman_mean": rho, "spearman_std": rho_std, "partial_mean": partial,
            "partial_std": partial_std, "seconds_per_arch": float(np.mean(seconds)), "chosen": top}


def predictor_inputs(records, scored: dict, names) -> np.ndarray:
    """The predictor's inputs for every record: every input any row has, NaN where a row lacks it
    (an architecture a proxy could not score), for the estimator's imputation to fill."""
    rows = [input_row(r["genotype"], {n: scored[n]["components"][i] for n in names}, r.get("trained_network", {}))
            for i, r in enumerate(records)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return matrix(rows, columns)


def methods(records, size, scored: dict, robust, config: dict) -> list:
    """(name, fit) of every method the protocol compares."""
    candidates = {TRAINED_PARAMS: np.asarray(size, dtype=float),
                  **{n: np.asarray(s["scores"], dtype=float) for n, s in scored.items()}}
    seconds = {TRAINED_PARAMS: 0.0, **{n: s["seconds_per_arch"] for n, s in scored.items()}}
    listed = [(name, fixed(candidates[name], seconds[name])) for name in candidates]
    if len(candidates) > 1:
        listed += [("best single proxy (chosen on training folds)", best_single(candidates, robust, seconds)),
                   ("rank ensemble (chosen on training folds)", rank_ensemble(candidates, robust, seconds))]
    graph = predictor_inputs(records, scored, [])
    graph_estimators = FoldEstimators(graph, robust, config["seed"])
    listed.append(("predictor: graph features + trained size",
                   predictor(graph, robust, config["seed"], 0.0, graph_estimators)))
    # the blend the predictor proxy offers (blend=rscore), with each R-Score preset scored
    listed += [(f"predictor: graph features + trained size, blended with {name}",
                blended_predictor(graph, robust, config["seed"], candidates[name], seconds[name], graph_estimators))
               for name in scored if scored[name].get("proxy", name).partition(":")[0] == "rscore"]
    if scored:
        listed.append((f"predictor: graph features + trained size + {', '.join(scored)}",
                       predictor(predictor_inputs(records, scored, list(scored)), robust, config["seed"],
                                 sum(seconds[n] for n in scored))))
    return listed


def cross_validate(records, size, scored: dict, config: dict, log=print) -> list[dict]:
    """The held-out table: each method's Spearman ρ and partial ρ given size, mean ± std over
    ``config["repeats"]`` × ``config["folds"]`` held-out folds."""
    robust, size = np.array([r["robust_acc"] for r in records], dtype=float), np.asarray(size, dtype=float)
    splits = splits_of(len(records), config["folds"], config["repeats"], config["seed"])
    log(f"cross-validation: {config['repeats']} x {config['folds']}-fold over {len(records)} architectures")
    table = []
    for name, fit in methods(records, size, scored, robust, config):
        table.append(evaluate(name, fit, splits, robust, size))
        row = table[-1]
        log(f"  held out: {name}: rho {row['spearman_mean']:.3f} ± {row['spearman_std']:.3f}, partial "
            f"{row['partial_mean']:.3f} ± {row['partial_std']:.3f}")
    return table


def heldout_markdown(table) -> str:
    lines = ["| method | held-out Spearman ρ | held-out partial ρ given size | s / arch | chosen on training folds |",
             "| --- | ---: | ---: | ---: | --- |"]
    for r in table:
        lines.append(f"| {r['method']} | {r['spearman_mean']:.3f} ± {r['spearman_std']:.3f} | "
                     f"{r['partial_mean']:.3f} ± {r['partial_std']:.3f} | {r['seconds_per_arch']:.2f} | "
                     f"{r['chosen'] or '—'} |")
    return "\n".join(lines) + "\n"


def write_heldout(out, table) -> None:
    write_csv(out / "heldout.csv", table, HELDOUT_COLUMNS)
    write_atomic(out / "heldout.md", heldout_markdown(table))
