"""trnas compare: one problem and archive for every algorithm, hypervolume in one space, resumable."""
import csv
import json
import math

import numpy as np
import pytest
from pymoo.indicators.hv import HV

from helpers import error_line
from nas_problem import Archive
from trnas.cli import main
from trnas.compare import Contender
from trnas.compare_report import hypervolume_curve

CHEAP = ["proxy=cheap_rscore", "preset=null", "device=cpu", "n_calibration=6", "pop_size=4", "n_clusters=2",
         "evaluations=12", "max_params=4.0"]
ALGORITHMS = "algorithms=[trnas/spread/inverse, trnas/paper/neglog, nsga2, moead/neglog, random]"


def compare(out, *extra, resume=False):
    return main(["compare", *CHEAP, ALGORITHMS, f"out_dir={out}", *extra] + (["--resume"] if resume else []))


def read_csv(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_contenders_are_read_with_their_defaults():
    assert Contender.parse("trnas").label == "trnas/spread/inverse"
    assert Contender.parse("trnas/neglog/paper").label == "trnas/paper/neglog"
    assert Contender.parse("moead").label == "moead/inverse"
    assert Contender.parse("random").label == "random"
    assert Contender.parse("nsga2/neglog").run_file(3) == "nsga2-neglog-seed3.json"


def test_hypervolume_curve_is_pymoo_hv_of_every_prefix():
    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.uniform([-7, 1], [1, 7], size=(40, 2))]
    points[5] = None  # a flagged architecture
    reference = np.array([0.0, 6.0])
    curve = hypervolume_curve(points, reference)
    indicator = HV(ref_point=reference)
    for n in (1, 6, 17, 40):
        inside = np.array([p for p in points[:n] if p is not None and p[0] < 0 and p[1] < 6] or np.empty((0, 2)))
        assert curve[n - 1] == pytest.approx(indicator(inside) if len(inside) else 0.0)
    assert np.all(np.diff(curve) >= 0)


def test_compare_shares_one_archive_and_measures_every_algorithm_in_one_space(tmp_path, capsys):
    out = tmp_path / "compare"
    assert compare(out, "seeds=2") == 0
    assert "[10/10] random seed 1 | evaluations   12/12" in capsys.readouterr().out
    for name in ("config.yaml", "archive.jsonl", "log.txt", "summary.json", "table.csv", "table.md",
                 "hypervolume.csv", "hypervolume.png", "fronts.png"):
        assert (out / name).exists(), name
    archive = Archive(out / "archive.jsonl")
    keys = [record["key"] for record in archive.records]
    assert len(keys) == len(set(keys))  # scored once, whichever algorithm asked
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference_point"] == [0.0, 4.0] and summary["objective_space"].startswith("(-ln R-Score, Params")
    table = read_csv(out / "table.csv")
    assert [row["algorithm"] for row in table] == ["trnas/spread/inverse", "trnas/paper/neglog", "nsga2/inverse",
                                                   "moead/neglog", "random"]
    assert table[0]["p_value_vs_baseline"] == "" or math.isnan(float(table[0]["p_value_vs_baseline"]))
    assert all(0 <= float(row["p_value_vs_baseline"]) <= 1 for row in table[1:])
    # every run's final hypervolume recomputed from its evaluations in the one stated space
    calibration = summary["calibration"]
    from evaluation.rscore.score import rscore_value
    by_key = {record["key"]: record for record in archive.records}
    curves = read_csv(out / "hypervolume.csv")
    indicator = HV(ref_point=np.array(summary["reference_point"]))
    for run_file in sorted((out / "runs").iterdir()):
        run = json.loads(run_file.read_text())
        assert len(run["evaluated"]) == 12
        points = []
        for key in run["evaluated"]:
            score = rscore_value(by_key[key]["components"], calibration)
            if by_key[key]["valid"] and -math.log(score) < 0 and by_key[key]["params"] < 4.0:
                points.append((-math.log(score), by_key[key]["params"]))
        final = [float(row["hypervolume"]) for row in curves
                 if row["algorithm"] == run["algorithm"] and int(row["seed"]) == run["seed"] and row["evaluations"] == "12"]
        assert final == [pytest.approx(indicator(np.array(points)) if points else 0.0)]
    assert "| trnas/spread/inverse | 2 |" in (out / "table.md").read_text()


def test_a_killed_comparison_resumes_to_the_same_result_and_may_add_seeds(tmp_path, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert compare(whole, "seeds=2") == 0
    # killed during the second seed: its runs not written, part of what they scored archived
    lines = (whole / "archive.jsonl").read_text().splitlines()
    killed.mkdir()
    (killed / "runs").mkdir()
    for run_file in (whole / "runs").glob("*seed0.json"):
        (killed / "runs" / run_file.name).write_text(run_file.read_text())
    (killed / "archive.jsonl").write_text("\n".join(lines[:len(lines) - 5]) + "\n" + lines[-5][:30])
    (killed / "config.yaml").write_text((whole / "config.yaml").read_text().replace(str(whole), str(killed)))
    capsys.readouterr()
    assert compare(killed, "seeds=2", resume=True) == 0
    assert "[1/10]" not in capsys.readouterr().out  # the finished runs were kept, not rerun
    assert (killed / "table.csv").read_text() == (whole / "table.csv").read_text()
    assert (killed / "hypervolume.csv").read_text() == (whole / "hypervolume.csv").read_text()
    # one more seed: only its runs run
    assert compare(killed, "seeds=3", resume=True) == 0
    assert len(list((killed / "runs").iterdir())) == 15
    assert read_csv(killed / "table.csv")[0]["runs"] == "3"


@pytest.mark.parametrize("override, message", [
    ("algorithms=[trnas, sgd]", "unknown algorithm 'sgd'"),
    ("algorithms=[nsga2/paper]", "cannot read 'nsga2/paper'"),
    ("algorithms=[nsga2, nsga2/inverse]", "nsga2/inverse named twice"),
    ("baseline=moead", "baseline: moead/inverse is not among the algorithms"),
    ("max_params=null", "a comparison needs a budget"),
    ("evaluations=3", "evaluations: must be at least 4"),
    ("seeds=[1, 1]", "distinct seeds"),
    ("n_clusters=4", "n_clusters: must be below pop_size"),
])
def test_bad_input_is_one_line_and_status_2_with_nothing_written(tmp_path, capsys, override, message):
    assert compare(tmp_path / "bad", override) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "bad").exists()


def test_a_comparison_is_not_mixed_with_another(tmp_path, capsys):
    out = tmp_path / "compare"
    assert compare(out, "seeds=1") == 0
    assert compare(out, "seeds=1") == 2
    assert "already holds a comparison" in error_line(capsys)
    assert compare(out, "seeds=1", "evaluations=8", resume=True) == 2
    assert "evaluations (12 -> 8)" in error_line(capsys)
