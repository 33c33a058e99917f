"""A fitted robustness predictor on disk: the estimator and what it was fitted on, in one skops
file (never pickle: loading runs no code but that of types on an explicit allow-list).

The file holds ``{"metadata": JSON text, "estimator": the sklearn estimator}``. The metadata
names the format and its version, the space, the ordered input names, the input proxies (name
with preset, revision, configuration as built), their batch, data set and seed, the trained
network's size settings, the target, the benchmark, the outer cross-validated Spearman ρ and
the trnas version that wrote it. Every problem with a file is one :class:`PredictorError`.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas_problem.files import OutputError, check_folder, write_atomic

from ..errors import ProxyError

FORMAT = "trnas-predictor"
# bumped whenever the file's layout or the meaning of an input changes: older files are refused
FORMAT_VERSION = 1
REFIT = "refit with trnas fit-predictor"
REQUIRED_METADATA = ("space", "input_names", "inputs", "n_images", "trained_network")

# what the fitted pipeline (median imputation, then a GradientBoostingRegressor) holds that skops does not trust by default (which of
# these it reports depends on the skops and scikit-learn versions); anything else is refused
ALLOWED_TYPES = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.dummy.DummyRegressor",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "numpy.dtype",  # the imputer's statistics carry their dtype: a type descriptor, no code
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
})


class PredictorError(ProxyError):
    """A predictor file that is missing, unreadable, untrusted, stale or used out of its scope."""


@dataclass(frozen=True)
class Predictor:
    """A fitted estimator and its metadata (see the module docstring)."""

    estimator: object
    metadata: dict
    sha256: str = ""

    @property
    def space(self) -> str:
        return self.metadata["space"]

    @property
    def input_names(self) -> list[str]:
        return list(self.metadata["input_names"])

    @property
    def inputs(self) -> list[dict]:
        """``[{"name", "revision", "config"}]`` of the input proxies, in fitting order."""
        return list(self.metadata["inputs"])

    @property
    def n_images(self) -> int:
        return int(self.metadata["n_images"])

    @property
    def trained_network(self) -> dict:
        return dict(self.metadata["trained_network"])

    def predict_row(self, row: dict) -> float:
        """The predicted target of one ``input_row``; NaN when an input is missing or not finite."""
        x = matrix([row], self.input_names)
        if not np.isfinite(x).all():
            return math.nan
        return float(self.estimator.predict(x)[0])

    def check_space(self, genotype) -> None:
        if genotype.space_name != self.space:
            raise PredictorError(f"the predictor was fitted on {self.space} architectures and cannot score a "
                                 f"{genotype.space_name} genotype ({genotype})")


def matrix(rows: list[dict], names: list[str]) -> np.ndarray:
    """``rows`` (``input_row`` dicts) as a matrix of the columns ``names``; an input a row lacks is NaN."""
    return np.array([[float(row.get(name, math.nan)) for name in names] for row in rows],
                    dtype=float).reshape(len(rows), len(names))


def plain(value):
    """``value`` as the JSON the file stores it as (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(value, default=str))


# ----- writing -----
def check_output(path, overwrite: bool) -> Path:
    """Refuse an ``out`` that exists (unless ``overwrite``), is a folder, or whose folder cannot
    be made or written, before any work."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"out={path}: {path} is a folder; name the model file, e.g. out={path / 'model.skops'}")
    if path.exists() and not overwrite:
        raise OutputError(f"out={path} already exists: overwrite=true replaces it, or choose another out")
    try:
        check_folder(path.parent, "out")
    except OutputError as error:
        raise OutputError(f"out={path}: {str(error).split(': ', 1)[1]}") from None
    return path


def save_predictor(predictor: Predictor, path, overwrite: bool = False) -> None:
    """Write ``predictor`` to ``path`` whole or not at all."""
    from skops import io as sio
    path = check_output(path, overwrite)
    content = {"metadata": json.dumps(predictor.metadata, sort_keys=True), "estimator": predictor.estimator}
    write_atomic(path, lambda stream: sio.dump(content, stream))


# ----- reading -----
def load_predictor(path) -> Predictor:
    """The predictor in ``path``, trusting only allow-listed types; any other file is refused."""
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"predictor model not found: {path} (trnas fit-predictor writes one)")
    content = _load_trusted(path)
    if not (isinstance(content, dict) and isinstance(content.get("metadata"), str) and "estimator" in content):
        raise PredictorError(f"{path} is a skops file but not a trnas predictor (trnas fit-predictor writes one)")
    try:
        metadata = json.loads(content["metadata"])
    except json.JSONDecodeError:
        raise PredictorError(f"{path}: its metadata is not valid JSON (a corrupt predictor file)") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise PredictorError(f"{path} is a skops file but not a trnas predictor (trnas fit-predictor writes one)")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise PredictorError(f"{path} is a predictor of format version {metadata.get('format_version')}, this "
                             f"trnas reads version {FORMAT_VERSION}: {REFIT}")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise PredictorError(f"{path}: its metadata lacks {', '.join(missing)} (a corrupt predictor file): {REFIT}")
    if not is_fitted_pipeline(content["estimator"]):
        raise PredictorError(f"{path}: its estimator is a {type(content['estimator']).__name__}, not the imputing "
                             f"gradient-boosting pipeline trnas fit-predictor fits: {REFIT}")
    return Predictor(content["estimator"], metadata, hashlib.sha256(path.read_bytes()).hexdigest())


def is_fitted_pipeline(estimator) -> bool:
    """Whether ``estimator`` is what :func:`~evaluation.predictor.model.fit_estimator` returns:
    skops trusts every scikit-learn type by default, so the allow-list alone would admit others."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    return (type(estimator) is Pipeline and [name for name, _ in estimator.steps] == ["impute", "trees"]
            and type(estimator.named_steps["impute"]) is SimpleImputer
            and type(estimator.named_steps["trees"]) is GradientBoostingRegressor)


def _load_trusted(path: Path):
    import zipfile

    from skops import io as sio
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, TypeError) as error:
        raise PredictorError(f"{path} is not a readable skops file ({type(error).__name__}: "
                             f"{(str(error).splitlines() or [''])[0]})") from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise PredictorError(f"{path} holds types a predictor never needs, so it is not loaded: {', '.join(refused)}")
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as error:  # skops reports a damaged member as whatever its reader raised
        raise PredictorError(f"{path} is not a readable skops file ({type(error).__name__}: "
                             f"{(str(error).splitlines() or [''])[0]})") from None


def check_inputs(predictor: Predictor, built: dict) -> None:
    """The input proxies ``built`` now (``{name: Proxy}``) must compute what they computed when
    the predictor was fitted: the same revision and configuration."""
    for item in predictor.inputs:
        proxy = built[item["name"]]
        if proxy.revision != item["revision"]:
            raise PredictorError(f"the predictor's input proxy {item['name']!r} was revision {item['revision']} when "
                                 f"fitted and is revision {proxy.revision} now, so its values moved: {REFIT}")
        now = plain(proxy.config)
        if now != item["config"]:
            fitted = item["config"]
            changes = ", ".join(f"{k}: {fitted.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(now) | set(fitted))
                                if now.get(k) != fitted.get(k))
            raise PredictorError(f"the predictor's input proxy {item['name']!r} was fitted with other settings "
                                 f"({changes}): score with the data set it was fitted on "
                                 f"({predictor.metadata.get('dataset')}), or {REFIT}")
