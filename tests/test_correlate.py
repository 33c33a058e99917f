"""Benchmark readers (each on small files in its layout) and ``trnas correlate`` end to end."""
import csv
import json
import math

import numpy as np
import pytest

from evaluation.benchmarks import BenchmarkError, detect_layout, read_benchmark
from nas_problem import Genotype
from nas_problem.nb201 import NB201Genotype
from trnas.cli import main
from evaluation.correlate import CORRELATION_COLUMNS, correlations

PAIRS = [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["dil_conv_3x3", 2],
         ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["skip_connect", 2], ["dil_conv_5x5", 4]]
ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"]


def tiny_robustbench(path, n=4):
    records = []
    for i in range(n):
        pairs = [list(p) for p in PAIRS]
        pairs[0][0] = ["sep_conv_3x3", "max_pool_3x3", "dil_conv_5x5", "avg_pool_3x3"][i % 4]
        records.append({"seed": 10 + i, "net": {"genotype": {"normal": pairs, "normal_concat": [2, 3, 4, 5],
                                                             "reduce": PAIRS, "reduce_concate": [2, 3, 4, 5]}},
                        "max_test_top1_original": 70.0 + i, "max_test_top1_adv": 40.0 - i,
                        "test_ep_top1_adv": [1, 2]})
    path.write_text(json.dumps(records))
    return path


def test_tiny_robustbench_reader(tmp_path):
    records = read_benchmark([tiny_robustbench(tmp_path / "a.json")])
    assert [r["id"] for r in records] == ["seed10", "seed11", "seed12", "seed13"]
    assert isinstance(records[0]["genotype"], Genotype)
    assert records[0]["genotype"].normal[1] == ("skip_connect", 1)
    assert (records[1]["clean_acc"], records[1]["robust_acc"]) == (71.0, 39.0)
    # the network the benchmark trained, for the size baseline: C = 16, 8 cells unless the record says
    assert records[0]["trained_network"] == {"channels": 16, "layers": 8}


def test_jung_reader_picks_epsilon_and_key(tmp_path):
    root = tmp_path / "jung"
    (root / "cifar10").mkdir(parents=True)
    eps = [1 / 255, 4 / 255, 8 / 255]
    (root / "meta.json").write_text(json.dumps({"ids": {str(i): {"nb201-string": a} for i, a in enumerate(ARCHS)},
                                                "epsilons": {"pgd@Linf": eps, "fgsm@Linf": eps}}))
    (root / "cifar10" / "clean_accuracy.json").write_text(json.dumps(
        {"cifar10": {"clean": {"accuracy": {"0": 0.9, "1": 0.8, "2": 0.5}}}}))
    (root / "cifar10" / "pgd@Linf_accuracy.json").write_text(json.dumps(
        {"cifar10": {"pgd@Linf": {"accuracy": {"0": [0.7, 0.3, 0.1], "1": [0.6, 0.2, 0.05], "2": [0.4, 0.1, 0.0]}}}}))
    (root / "cifar10" / "fgsm@Linf_accuracy.json").write_text(json.dumps(
        {"0": [0.8, 0.5, 0.3], "1": [0.7, 0.4, 0.2], "2": [0.5, 0.3, 0.2]}))
    assert detect_layout(root) == "jung"
    records = read_benchmark(root)
    assert [str(r["genotype"]) for r in records] == ARCHS
    assert isinstance(records[0]["genotype"], NB201Genotype)
    assert records[0]["clean_acc"] == pytest.approx(90.0) and records[0]["robust_acc"] == pytest.approx(10.0)
    fgsm = read_benchmark(root, robust_metric="fgsm@Linf", epsilon=4 / 255)
    assert [r["robust_acc"] for r in fgsm] == pytest.approx([50.0, 40.0, 30.0])
    with pytest.raises(FileNotFoundError):
        read_benchmark(root, robust_metric="aa_apgd-ce@Linf")


def test_robbench_reader(tmp_path):
    root = tmp_path / "robbench"
    root.mkdir()
    (root / "meta.json").write_text(json.dumps({"ids": {f"a{i}": a for i, a in enumerate(ARCHS)}}))
    (root / "cifar10.json").write_text(json.dumps({
        f"a{i}": {"val_clean_acc": 80.0 - i, "val_pgd_3.0_acc": 50.0 - 2 * i, "val_pgd_8.0_acc": 30.0 - i}
        for i in range(3)}))
    assert detect_layout(root) == "robbench"
    records = read_benchmark(root)
    assert [r["robust_acc"] for r in records] == [50.0, 48.0, 46.0]
    assert [r["clean_acc"] for r in records] == [80.0, 79.0, 78.0]
    # NAS-Bench-201 benchmarks trained the NB201 network: the space's own (C = 16, N = 5)
    from evaluation.correlate import trained_sizes
    from nas_problem.nb201 import NB201Space
    assert records[0]["trained_network"] == {}
    assert trained_sizes(records) == [NB201Space().count_params(r["genotype"], channels=16, cells_per_stage=5)
                                      for r in records]
    assert [r["robust_acc"] for r in read_benchmark(root, robust_metric="val_pgd_8.0_acc")] == [30.0, 29.0, 28.0]
    with pytest.raises(BenchmarkError):
        read_benchmark(root, robust_metric="val_nope_acc")


def test_readers_reject_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_benchmark(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BenchmarkError):
        read_benchmark(tmp_path / "bad.json")
    (tmp_path / "dict.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(BenchmarkError):
        read_benchmark(tmp_path / "dict.json")


def test_correlations_by_hand():
    scores, robust, clean = [1.0, 2.0, 3.0, math.nan], [10.0, 20.0, 30.0, 0.0], [3.0, 2.0, 1.0, 0.0]
    out = correlations(scores, clean, robust)
    assert out["spearman_robust"] == pytest.approx(1.0) and out["kendall_robust"] == pytest.approx(1.0)
    assert out["spearman_clean"] == pytest.approx(-1.0)
    assert math.isnan(correlations([1.0, 1.0, 1.0], clean[:3], robust[:3])["spearman_robust"])


def tiny_npz(path):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), y_train=np.arange(8) % 10,
             x_test=rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), y_test=np.arange(2))
    return path


def test_correlate_command_writes_every_output(tmp_path, capsys):
    bench = tiny_robustbench(tmp_path / "bench.json")
    out = tmp_path / "out"
    code = main(["correlate", f"benchmark={bench}", "proxies=params,synflow", "dataset=npz",
                 f"data_path={tiny_npz(tmp_path / 'd.npz')}", "n_images=4", f"out_dir={out}", "limit=3"])
    assert code == 0
    with open(out / "correlation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == CORRELATION_COLUMNS
    assert [r["proxy"] for r in rows] == ["params (trained network)", "params", "synflow"]
    assert float(rows[1]["effective_rate"]) == 1.0
    with open(out / "scores.csv") as handle:
        scores = list(csv.DictReader(handle))
    assert len(scores) == 6 and {s["id"] for s in scores} == {"seed10", "seed11", "seed12"}
    assert (out / "scatter_params.png").stat().st_size > 0 and (out / "scatter_synflow.png").is_file()
    assert "| params |" in (out / "correlation.md").read_text()
    assert "synflow" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [("proxies=no_such_proxy", "no_such_proxy"),
                                               ("benchmark={missing}", "missing.json"),
                                               ("proxies=rscore:nope", "nope"),
                                               ("benchmark={glob}", "no file matches"),
                                               ("n_images=0", "n_images: must be at least 1")])
def test_correlate_bad_input_exits_2(tmp_path, capsys, override, message):
    bench = tiny_robustbench(tmp_path / "bench.json")
    args = ["correlate", f"benchmark={bench}", f"data_path={tiny_npz(tmp_path / 'd.npz')}",
            f"out_dir={tmp_path / 'o'}", "proxies=params", "n_images=4",
            override.format(missing=tmp_path / "missing.json", glob=tmp_path / "none*.json")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("trnas correlate: error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_correlate_cv_writes_the_held_out_table(tmp_path, capsys, monkeypatch):
    from evaluation.predictor import model
    monkeypatch.setattr(model, "GRID", {"trees__max_depth": [1], "trees__n_estimators": [20]})
    bench = tiny_robustbench(tmp_path / "bench.json", n=12)
    out = tmp_path / "out"
    assert main(["correlate", f"benchmark={bench}", "proxies=params,flops", "dataset=npz", "folds=3", "repeats=2",
                 f"data_path={tiny_npz(tmp_path / 'd.npz')}", "n_images=4", f"out_dir={out}", "--cv"]) == 0
    with open(out / "heldout.csv") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert {"params (trained network)", "params", "flops", "best single proxy (chosen on training folds)",
            "rank ensemble (chosen on training folds)", "predictor: graph features + trained size"} <= set(rows)
    assert "/6)" in rows["best single proxy (chosen on training folds)"]["chosen"]
    printed = capsys.readouterr().out
    assert "Held out:" in printed and "| predictor: graph features + trained size |" in printed


def test_a_proxy_given_with_knobs_is_scored_with_them(tmp_path):
    from evaluation.correlate import proxy_entries
    assert proxy_entries("params,rscore:paper") == [("params", "params", {}), ("rscore:paper", "rscore:paper", {})]
    assert proxy_entries([{"name": "rscore", "psi_inits": 2}, {"name": "rscore", "label": "r"}]) == [
        ("rscore psi_inits=2", "rscore", {"psi_inits": 2}), ("r", "rscore", {})]
    bench = tiny_robustbench(tmp_path / "bench.json")
    out = tmp_path / "out"
    assert main(["correlate", f"benchmark={bench}", "proxies=[params, {name: rscore, n_images: 6, psi_inits: 2}]",
                 "dataset=npz", f"data_path={tiny_npz(tmp_path / 'd.npz')}", "n_images=4", f"out_dir={out}"]) == 0
    with open(out / "scores.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["proxy"] == "rscore n_images=6 psi_inits=2"]
    assert len(rows) == 4 and all(r["valid"] == "True" for r in rows)


def test_a_quoted_glob_names_every_benchmark_file_it_matches(tmp_path):
    from evaluation.correlate import check_config
    for name in ("b.json", "a.json"):
        tiny_robustbench(tmp_path / name)
    assert check_config({"benchmark": str(tmp_path / "*.json")})["benchmark"] == [str(tmp_path / "a.json"),
                                                                                   str(tmp_path / "b.json")]


def test_rscore_scores_two_architectures_at_once_exactly_as_one_at_a_time(tmp_path):
    bench = tiny_robustbench(tmp_path / "bench.json")
    data = str(tiny_npz(tmp_path / "d.npz"))
    scores = {}
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        assert main(["correlate", f"benchmark={bench}", "proxies=rscore", "dataset=npz", f"data_path={data}",
                     "n_images=4", f"out_dir={out}", f"threads={threads}"]) == 0
        with open(out / "scores.csv") as handle:
            scores[threads] = [(r["id"], r["components"], r["score"]) for r in csv.DictReader(handle)]
    # in benchmark order, and each architecture on one torch thread either way
    assert [s[0] for s in scores[2]] == ["seed10", "seed11", "seed12", "seed13"]
    assert scores[2] == scores[1]


def test_an_architecture_a_proxy_cannot_score_is_reported_and_the_others_scored_beside_it():
    import torch

    from evaluation.evaluators import InProcessEvaluator
    from evaluation.correlate import ForgivingProxy, ProxyFailure

    class Fussy:
        device = torch.device("cpu")
        thread_safe = True

        def measure(self, genotype, images, labels, seed):
            if genotype == "bad":
                raise RuntimeError("cannot build this one\nsecond line")
            if genotype == "mute":
                raise ValueError()
            return {"value": float(len(genotype))}

    evaluator = InProcessEvaluator(ForgivingProxy(Fussy()), None, None, in_flight=2)
    assert evaluator.concurrency() == 2
    results = dict(evaluator([("a", 0), ("bad", 0), ("ccc", 0), ("mute", 0), ("dd", 0)]))
    assert [results[i][0] for i in (0, 2, 4)] == [{"value": 1.0}, {"value": 3.0}, {"value": 2.0}]
    assert isinstance(results[1][0], ProxyFailure) and results[1][0] == "RuntimeError: cannot build this one"
    assert isinstance(results[3][0], ProxyFailure) and results[3][0] == "ValueError: "  # an error without a message
