"""The learned robustness predictor: fitting on a benchmark (``trnas fit-predictor``), its
cross-validation, the model file and every way a file is refused, and ``proxy=predictor`` in a
search. Benchmarks are synthetic: random DARTS genotypes whose robust accuracy is a known
function of their operations plus noise, scored on the embedded digits."""
import json
import math
import os
import shutil
from fractions import Fraction

import numpy as np
import pytest
from skops import io as sio

from evaluation import ProxyError, get_proxy, load_dataset, proxy_batch
from evaluation.benchmarks import read_benchmark
from evaluation.predictor import fit as fitting
from evaluation.predictor.fit import FIT_DEFAULTS, fit_predictor
from evaluation.predictor.model import input_row
from evaluation.predictor.store import (FORMAT_VERSION, Predictor, PredictorError, load_predictor, matrix,
                                        save_predictor)
from nas_problem import DartsSpace
from nas_problem.nb201 import NB201Genotype
from trnas import make_problem
from trnas.cli import main
from trnas.config import UsageError, load_config
from trnas.search import SEARCH_DEFAULTS

TRAINED = {"channels": 16, "layers": 8}
# a fit that takes seconds: the params proxy (no network run) on 4 digits images, 3 folds once
QUICK = dict(proxies="params", dataset="digits", n_images=4, folds=3, repeats=1)


def synthetic_benchmark(path, n=20, seed=0):
    """A tiny-RobustBench file of ``n`` random DARTS genotypes with distinct graph features and
    robust accuracy 20 + 3 (normal cell's convolutions) + 2 (reduction cell's) + noise."""
    rng, space, seen, records = np.random.default_rng(seed), DartsSpace(), set(), []
    while len(records) < n:
        genotype = space.decode(space.random_x(rng))
        row = input_row(genotype, {}, TRAINED)
        if tuple(row.values()) in seen:
            continue
        seen.add(tuple(row.values()))
        robust = 20 + 3 * row["normal_parametric"] + 2 * row["reduce_parametric"] + rng.normal(0, 0.3)
        records.append({"seed": len(records), "net": {"genotype": genotype.to_json(), "width": 16, "depth": 8},
                        "max_test_top1_original": 70.0, "max_test_top1_adv": float(robust)})
    path.write_text(json.dumps(records))
    return path


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(benchmark path, model path, the predictor as fitted, its cross-validation)."""
    folder = tmp_path_factory.mktemp("predictor")
    bench = synthetic_benchmark(folder / "bench.json")
    model = folder / "model.skops"
    predictor, cv = fit_predictor({**QUICK, "benchmark": str(bench), "out": str(model)}, log=quiet, version="test")
    save_predictor(predictor, model)
    return bench, model, predictor, cv


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def batch(digits):
    """The 4 images the quick fit measured its input proxy on."""
    return proxy_batch(digits, 4)


def predictor_proxy(model, digits, **knobs):
    return get_proxy("predictor", model=str(model), device="cpu", num_classes=digits.num_classes, mean=digits.mean,
                     std=digits.std, **knobs)


# ----- the round trip -----
def test_a_loaded_predictor_predicts_exactly_what_the_saved_one_did(fitted, batch):
    bench, model, predictor, _ = fitted
    loaded = load_predictor(model)
    records = read_benchmark(str(bench))
    params = get_proxy("params", device="cpu")
    rows = [input_row(r["genotype"], {"params": params.measure(r["genotype"], *batch, 0)}, TRAINED)
            for r in records]
    X = matrix(rows, predictor.input_names)
    assert np.array_equal(loaded.estimator.predict(X), predictor.estimator.predict(X))
    assert loaded.metadata == predictor.metadata


def test_the_proxy_scores_what_the_estimator_predicts_for_the_same_row(fitted, digits, batch):
    bench, model, predictor, _ = fitted
    scorer = predictor_proxy(model, digits)
    images, labels = batch
    assert scorer.batch_size == 4 and scorer.direction == +1
    params = get_proxy("params", device="cpu", num_classes=10, mean=digits.mean, std=digits.std, n_images=4)
    for record in read_benchmark(str(bench))[:3]:
        genotype = record["genotype"]
        row = input_row(genotype, {"params": params.measure(genotype, images, labels, 7)}, TRAINED)
        expected = float(predictor.estimator.predict(matrix([row], predictor.input_names))[0])
        components = scorer.measure(genotype, images, labels, 7)
        assert components == {"score": expected} and scorer.is_valid(components) and expected > 0


def test_a_blend_standardises_prediction_and_log_rscore_over_the_calibration_sample(fitted, digits, batch):
    from evaluation.predictor.model import blend_statistics, blended
    bench, model, predictor, _ = fitted
    plain = predictor_proxy(model, digits)
    scorer = predictor_proxy(model, digits, blend="rscore")
    rscore = get_proxy("rscore", device="cpu", num_classes=10, mean=digits.mean, std=digits.std, n_images=4,
                       psi_inits=2)
    scorer.blend = rscore  # a lighter R-Score: what is blended is under test, not the R-Score
    genotypes = [r["genotype"] for r in read_benchmark(str(bench))[:6]]
    components = [scorer.measure(g, *batch, 3) for g in genotypes]
    assert all(scorer.is_valid(c) for c in components)
    # the blend proxy's components ride along; the prediction is the plain predictor's
    assert [c["score"] for c in components] == [plain.measure(g, *batch, 3)["score"] for g in genotypes]
    assert [{k[6:]: v for k, v in c.items() if k.startswith("blend.")} for c in components] == \
        [rscore.measure(g, *batch, 3) for g in genotypes]
    calibration = scorer.calibrate(components)
    r = [rscore.score(rscore.measure(g, *batch, 3), rscore.calibrate([rscore.measure(h, *batch, 3)
                                                                       for h in genotypes])) for g in genotypes]
    p = np.array([c["score"] for c in components])
    # by hand: exp(½((p − mean p)/std p + (ln r − mean ln r)/std ln r))
    z = 0.5 * ((p - p.mean()) / p.std() + (np.log(r) - np.log(r).mean()) / np.log(r).std())
    scores = [scorer.score(c, calibration) for c in components]
    assert scores == pytest.approx(np.exp(z))
    assert blended(p, r, blend_statistics(p, r)) == pytest.approx(np.exp(z))
    # strictly increasing in each part, positive, no ceiling
    high = dict(components[0], score=components[0]["score"] + 100.0)
    assert scorer.score(high, calibration) > scores[0] > 0


def test_fit_predictor_reports_the_blend_it_would_score_with(tmp_path):
    from evaluation import crossval
    from evaluation.predictor.model import blended, blend_statistics
    bench = synthetic_benchmark(tmp_path / "bench.json")
    predictor, cv = fit_predictor({**QUICK, "benchmark": str(bench), "out": str(tmp_path / "m.skops"),
                                   "blend": "params"}, log=quiet)
    # params is a blend proxy here, not an input twice: the inputs are those of QUICK
    assert predictor.metadata["inputs"][0]["name"] == "params" and len(predictor.metadata["inputs"]) == 1
    assert cv["blend"]["name"] == "params" and predictor.metadata["cv_blend"]["name"] == "params"
    # the blend's ρ by the protocol's own pieces, fold by fold
    records = read_benchmark(str(bench))
    sizes = np.array([DartsSpace().count_params(r["genotype"]) for r in records])
    y = np.array([r["robust_acc"] for r in records])
    X = matrix([input_row(r["genotype"], {"params": {"score": s}}, TRAINED) for r, s in zip(records, sizes)],
               predictor.input_names)
    expected = []
    for train, held_out in crossval.splits_of(len(y), 3, 1, 0):
        everything = fitting.fit_estimator(X[train], y[train], 0).predict(X)
        statistics = blend_statistics(everything, sizes)
        expected.append(crossval.spearman(blended(everything[held_out], sizes[held_out], statistics), y[held_out]))
    assert cv["blend"]["fold_spearman"] == pytest.approx(expected)


def test_the_file_says_what_the_model_was_fitted_on(fitted):
    bench, model, _, cv = fitted
    meta = load_predictor(model).metadata
    assert meta["format"] == "trnas-predictor" and meta["format_version"] == FORMAT_VERSION
    assert meta["space"] == "darts" and meta["target"] == "max_test_top1_adv"
    assert meta["input_names"][-2:] == ["log_trained_params", "params.score"]
    assert [(i["name"], i["revision"], i["config"]["n_images"]) for i in meta["inputs"]] == [("params", 1, 4)]
    assert (meta["n_images"], meta["dataset"], meta["seed"]) == (4, "digits", 0)
    assert meta["trained_network"] == TRAINED and meta["trnas_version"] == "test"
    assert meta["benchmark"] == {"files": ["bench.json"], "n_architectures": 20, "n_fitted": 20}
    assert meta["cv"]["spearman_mean"] == cv["spearman_mean"] and meta["cv"]["n_folds"] == 3


def test_a_flagged_input_scores_nan_with_an_error(fitted, digits, batch, monkeypatch):
    _, model, _, _ = fitted
    scorer = predictor_proxy(model, digits)
    monkeypatch.setattr(scorer.inputs["params"], "measure", lambda *args: {"score": math.nan, "error": 1.0})
    components = scorer.measure(read_benchmark(str(fitted[0]))[0]["genotype"], *batch, 0)
    assert math.isnan(components["score"]) and components["error"] == 1.0 and not scorer.is_valid(components)


# ----- the cross-validation -----
class Recorder:
    """Stands in for the estimator: remembers the rows it was fitted on and those it predicted."""

    def __init__(self, X):
        self.fitted, self.predicted = {tuple(x) for x in X}, set()

    def predict(self, X):
        self.predicted |= {tuple(x) for x in X}
        return np.arange(len(X), dtype=float)


def test_no_held_out_architecture_is_ever_fitted_on(tmp_path, monkeypatch):
    estimators = []
    from evaluation import crossval
    for module in (fitting, crossval):  # the folds' fits (the protocol's) and the final one
        monkeypatch.setattr(module, "fit_estimator", lambda X, y, seed: estimators.append(Recorder(X)) or estimators[-1])
    bench = synthetic_benchmark(tmp_path / "bench.json")
    # the default inputs (no proxies) need no data set: the default npz has no data_path here
    assert FIT_DEFAULTS["proxies"] == "none" and FIT_DEFAULTS["dataset"] == "npz"
    fit_predictor({"benchmark": str(bench), "out": str(tmp_path / "m.skops"), "folds": 4, "repeats": 3}, log=quiet)
    *folds, final = estimators
    assert len(folds) == 12 and len(final.fitted) == 20 and not final.predicted
    for estimator in folds:
        assert not estimator.fitted & estimator.predicted
        assert len(estimator.fitted) + len(estimator.predicted) == 20
    for repeat in range(3):  # each repeat's held-out folds cover every architecture once
        held_out = [estimator.predicted for estimator in folds[4 * repeat:4 * repeat + 4]]
        assert set().union(*held_out) == final.fitted and sum(map(len, held_out)) == 20


# ----- files refused -----
def test_a_missing_model_is_refused(tmp_path):
    with pytest.raises(PredictorError, match="predictor model not found"):
        load_predictor(tmp_path / "nope.skops")


def test_garbage_bytes_are_refused(tmp_path):
    path = tmp_path / "garbage.skops"
    path.write_bytes(os.urandom(256))
    with pytest.raises(PredictorError, match="is not a readable skops file"):
        load_predictor(path)


@pytest.mark.parametrize("payload, name", [(os.system, os.system.__module__ + ".system"),
                                           (Fraction(1, 3), "fractions.Fraction")])
def test_a_file_holding_a_type_off_the_allow_list_is_refused_unloaded(fitted, tmp_path, payload, name):
    path = tmp_path / "untrusted.skops"
    sio.dump({"metadata": json.dumps(fitted[2].metadata), "estimator": payload}, path)
    with pytest.raises(PredictorError, match=f"holds types a predictor never needs, so it is not loaded: {name}"):
        load_predictor(path)


def test_a_skops_file_that_is_no_predictor_is_refused(tmp_path):
    sio.dump([1, 2, 3], tmp_path / "list.skops")
    with pytest.raises(PredictorError, match="is a skops file but not a trnas predictor"):
        load_predictor(tmp_path / "list.skops")


def test_a_file_holding_another_scikit_learn_estimator_is_refused(fitted, tmp_path):
    """skops trusts scikit-learn's types by default: a predictor file must hold the fitted pipeline."""
    from sklearn.linear_model import LinearRegression
    predictor = fitted[2]
    other = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
    save_predictor(Predictor(other, predictor.metadata), tmp_path / "linear.skops")
    with pytest.raises(PredictorError, match="its estimator is a LinearRegression, not the imputing"):
        load_predictor(tmp_path / "linear.skops")
    assert load_predictor(fitted[1]).metadata == predictor.metadata  # the fitted pipeline loads


def test_a_file_of_another_format_version_is_refused(fitted, tmp_path):
    predictor = fitted[2]
    stale = Predictor(predictor.estimator, {**predictor.metadata, "format_version": FORMAT_VERSION - 1})
    save_predictor(stale, tmp_path / "stale.skops")
    with pytest.raises(PredictorError, match=f"format version {FORMAT_VERSION - 1}, this trnas reads version "
                                             f"{FORMAT_VERSION}: refit with trnas fit-predictor"):
        load_predictor(tmp_path / "stale.skops")


def test_a_model_whose_input_proxy_changed_revision_is_refused(fitted, digits, monkeypatch):
    monkeypatch.setattr(type(get_proxy("params", device="cpu")), "revision", 2)
    with pytest.raises(PredictorError, match="'params' was revision 1 when fitted and is revision 2 now, so its "
                                             "values moved: refit with trnas fit-predictor"):
        predictor_proxy(fitted[1], digits)


def test_a_model_is_refused_on_a_data_set_unlike_the_one_it_was_fitted_on(fitted, digits):
    with pytest.raises(PredictorError, match=r"fitted with other settings \(num_classes: 10 -> 7\): score with the "
                                             r"data set it was fitted on \(digits\)"):
        get_proxy("predictor", model=str(fitted[1]), device="cpu", num_classes=7, mean=digits.mean, std=digits.std)


def test_a_genotype_of_another_space_is_refused(fitted, digits, batch):
    scorer = predictor_proxy(fitted[1], digits)
    genotype = NB201Genotype.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
                                   "nor_conv_3x3~1|skip_connect~2|")
    with pytest.raises(PredictorError, match="fitted on darts architectures and cannot score a nb201 genotype"):
        scorer.measure(genotype, *batch, 0)


def test_no_model_and_another_batch_are_refused(fitted, digits):
    with pytest.raises(ProxyError, match="needs model=PATH"):
        get_proxy("predictor", device="cpu")
    with pytest.raises(ProxyError, match="its input proxies were measured on 4 images"):
        predictor_proxy(fitted[1], digits, n_images=8)


# ----- the command and the search -----
def test_fit_predictor_prints_the_cross_validation_and_writes_the_model_once(tmp_path, capsys):
    bench, out = synthetic_benchmark(tmp_path / "bench.json"), tmp_path / "models" / "m.skops"
    argv = ["fit-predictor", f"benchmark={bench}", f"out={out}", "proxies=params", "dataset=digits", "n_images=4",
            "folds=3", "repeats=2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cross-validated Spearman rho: " in printed and "over 6 held-out folds (20 architectures)" in printed
    rho = float(printed.split("rho: ")[1].split(" ")[0])
    assert rho > 0.3, printed  # the accuracies follow the convolution counts, which the features hold
    assert load_predictor(out).metadata["cv"]["spearman_mean"] == pytest.approx(rho, abs=5e-4)
    before = out.read_bytes()
    assert main(argv) == 2 and "already exists: overwrite=true replaces it" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(argv + ["overwrite=true", "seed=1"]) == 0 and out.read_bytes() != before


@pytest.mark.parametrize("blend", ["none", "rscore"])
def test_a_search_scores_with_the_predictor(fitted, tmp_path, capsys, blend):
    out = tmp_path / "run"
    argv = ["search", "--config", "quick", "pop_size=4", "n_clusters=2", "n_gen=1", "n_calibration=3",
            "device=cpu", "proxy=predictor", f"proxy_kwargs.model={fitted[1]}", f"proxy_kwargs.blend={blend}",
            f"out_dir={out}"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "archive.jsonl").read_text().splitlines()]
    assert len(records) >= 7 and {r["proxy"] for r in records} == {"predictor"}
    assert all(r["valid"] and r["components"]["score"] > 0 for r in records)
    assert all(("blend.psi" in r["components"]) == (blend == "rscore") for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["knee"]["genotype"] and summary["best_rscore"]["r_score"] > 0


def test_archives_scored_with_one_model_are_not_reused_with_another(fitted, tmp_path):
    model, predictor = fitted[1], fitted[2]
    copy = shutil.copy(model, tmp_path / "copy.skops")
    other = tmp_path / "other.skops"
    save_predictor(Predictor(predictor.estimator, {**predictor.metadata, "seed": 1}), other)
    ids = [make_problem(dataset="digits", proxy="predictor", proxy_kwargs={"model": str(path)}, device="cpu",
                        n_calibration=2).proxy_id for path in (model, copy, other)]
    assert ids[0] == ids[1] != ids[2]


def test_an_entry_of_a_mapping_setting_is_set_from_the_command_line():
    config = load_config(None, ["proxy_kwargs={psi_inits: 2}", "proxy_kwargs.model=m.skops"], SEARCH_DEFAULTS)
    assert config["proxy_kwargs"] == {"psi_inits": 2, "model": "m.skops"}
    assert SEARCH_DEFAULTS["proxy_kwargs"] == {}
    with pytest.raises(UsageError, match="seed is not a mapping"):
        load_config(None, ["seed.x=1"], SEARCH_DEFAULTS)
