"""The learned robustness predictor's inputs and its estimator: graph features of the genotype,
the log of the trained network's parameter count, and the raw components of zero-cost proxies,
fed to gradient-boosted trees whose hyper-parameters are chosen by cross-validation on the
architectures it is fitted on (and nothing else); and its blend with a proxy (the R-Score):
both standardised over a calibration set and averaged."""
from __future__ import annotations

import math

import numpy as np

from nas_problem import space_of

from .features import genotype_features

# components that mark a failed measurement rather than measure anything
FLAG_COMPONENTS = ("error", "degenerate")

# the grid searched on the fitting architectures: shallow trees, few of them, because a
# robustness benchmark holds a hundred or so architectures
GRID = {"trees__max_depth": [1, 2, 3], "trees__n_estimators": [50, 150]}


def input_row(genotype, proxy_components: dict, trained_network: dict) -> dict:
    """``{input name: value}``: graph features, ``log_trained_params`` (the network the
    benchmark trained, ``trained_network`` its size settings) and every numeric component of
    each proxy in ``proxy_components`` (``{proxy name: components}``) as ``name.component``;
    a missing or non-finite value is NaN."""
    row = dict(genotype_features(genotype))
    row["log_trained_params"] = math.log(space_of(genotype).count_params(genotype, **trained_network))
    for name, components in proxy_components.items():
        for key, value in sorted(components.items()):
            if key in FLAG_COMPONENTS:
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            row[f"{name}.{key}"] = value if math.isfinite(value) else math.nan
    return row


def spearman_scorer(estimator, X, y) -> float:
    """Spearman ρ of the predictions, 0 where undefined (a constant prediction ranks nothing)."""
    from ..rank_stats import spearman
    rho = spearman(estimator.predict(X), y)
    return rho if math.isfinite(rho) else 0.0


def fit_estimator(X, y, seed: int = 0, inner_folds: int = 5):
    """Gradient-boosted trees fitted to ``(X, y)``, their depth and size chosen by ``inner_folds``-
    fold cross-validated Spearman ρ on these rows alone, then refitted on all of them. A missing
    input (NaN: a proxy that failed on that architecture) takes the fitting rows' median."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    model = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                      ("trees", GradientBoostingRegressor(learning_rate=0.05, subsample=0.8, random_state=seed))])
    search = GridSearchCV(model, GRID,
                          scoring=spearman_scorer, cv=KFold(min(inner_folds, len(y)), shuffle=True, random_state=seed))
    search.fit(X, y)
    return search.best_estimator_


def blend_statistics(predictions, blend_scores) -> dict:
    """Mean and standard deviation of the predictions and of ln(blend proxy's score) over a
    calibration set (the architectures where both are finite, the score positive)."""
    predictions = np.asarray(predictions, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.asarray(blend_scores, dtype=float))
    keep = np.isfinite(predictions) & np.isfinite(logs)
    if keep.sum() < 2:
        raise ValueError(f"a blend needs 2 or more calibration architectures with a prediction and a positive "
                         f"score, got {int(keep.sum())}")

    def moments(values):
        return [float(values.mean()), float(values.std()) or 1.0]

    return {"prediction": moments(predictions[keep]), "log_blend": moments(logs[keep])}


def blended(prediction, blend_score, statistics: dict):
    """exp of the mean of the two standardised values (prediction, ln blend score): positive,
    strictly increasing in both, with no ceiling; NaN where the blend score is not positive."""
    (p_mean, p_std), (b_mean, b_std) = statistics["prediction"], statistics["log_blend"]
    blend_score = np.asarray(blend_score, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_blend = np.where(blend_score > 0, np.log(blend_score), np.nan)
    z = 0.5 * ((np.asarray(prediction, dtype=float) - p_mean) / p_std + (log_blend - b_mean) / b_std)
    return np.exp(z)
