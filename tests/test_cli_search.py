import csv
import json

import pytest

from nas_problem import Genotype
from trnas.cli import main

TINY = ["pop_size=4", "n_clusters=2", "n_gen=3", "n_calibration=4", "device=cpu", "proxy_kwargs={psi_inits: 4}"]


def search(tmp_path, *extra, resume=False, name="run"):
    argv = ["search", "--config", "quick", *TINY, f"out_dir={tmp_path / name}", *extra]
    return main(argv + (["--resume"] if resume else []))


def test_search_writes_the_whole_run_folder(tmp_path, capsys):
    assert search(tmp_path) == 0
    run = tmp_path / "run"
    for name in ("config.yaml", "archive.jsonl", "front.json", "front.csv", "population.json", "population.csv",
                 "evaluations.csv", "summary.json", "front.png", "log.txt"):
        assert (run / name).exists(), name
    with open(run / "front.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert rows and all(Genotype.parse(r["genotype"]) == Genotype.parse(r["genotype_json"]) for r in rows)
    population = json.loads((run / "population.json").read_text())
    assert len(population) == 4
    summary = json.loads((run / "summary.json").read_text())
    assert Genotype.parse(summary["knee"]["genotype"]) and Genotype.parse(summary["best_rscore"]["genotype"])
    assert summary["best_rscore"]["r_score"] == max(r["r_score"] for r in json.loads((run / "front.json").read_text()))
    out = capsys.readouterr().out
    assert "gen   3/3" in out and "ETA" in out and "best R-Score" in out
    # the header says where the scoring runs
    assert "device cpu (in-process, " in out.splitlines()[0]


def test_a_search_on_two_threads_scores_two_architectures_at_once_with_one_threads_numbers(tmp_path, capsys):
    assert search(tmp_path, "threads=2", name="two") == 0
    assert "(in-process, 2 architectures at once, 1 torch thread each)" in capsys.readouterr().out.splitlines()[0]
    assert search(tmp_path, "threads=1", name="one") == 0

    def scored(name):
        records = [json.loads(line) for line in (tmp_path / name / "archive.jsonl").read_text().splitlines()]
        return {r["key"]: r["components"] for r in records}, {r["threads"] for r in records}

    (two, two_threads), (one, one_threads) = scored("two"), scored("one")
    assert two == one and two_threads == {1} == one_threads
    assert (tmp_path / "two" / "front.json").read_text() == (tmp_path / "one" / "front.json").read_text()


def test_resume_after_a_kill_rescores_nothing_archived(tmp_path, capsys):
    assert search(tmp_path, name="whole") == 0
    whole = tmp_path / "whole"
    lines = (whole / "archive.jsonl").read_text().splitlines()
    # a run killed midway: part of the archive on disk, the last line torn, no results yet
    killed = tmp_path / "killed"
    killed.mkdir()
    kept = len(lines) // 2
    (killed / "archive.jsonl").write_text("\n".join(lines[:kept]) + "\n" + lines[kept][:20])
    capsys.readouterr()
    assert search(tmp_path, name="killed", resume=True) == 0
    log = (killed / "log.txt").read_text()
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["scored"] == len(lines) - kept
    assert f"archive holds {kept} scored architectures" in log
    assert json.loads((killed / "front.json").read_text()) == json.loads((whole / "front.json").read_text())


def test_resume_says_how_much_of_a_mixed_archive_it_reuses(tmp_path):
    assert search(tmp_path, name="whole") == 0 and search(tmp_path, "seed=1", name="other") == 0
    ours = (tmp_path / "whole" / "archive.jsonl").read_text().splitlines()
    theirs = (tmp_path / "other" / "archive.jsonl").read_text().splitlines()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    kept = len(ours) // 2
    (mixed / "archive.jsonl").write_text("\n".join(theirs + ours[:kept]) + "\n")
    assert search(tmp_path, name="mixed", resume=True) == 0
    log = (mixed / "log.txt").read_text()
    assert (f"archive holds {len(theirs) + kept} scored architectures, {kept} of them scored the way this run "
            f"scores") in log
    assert json.loads((mixed / "summary.json").read_text())["scored"] == len(ours) - kept


def test_a_worker_dying_ends_the_search_with_one_line_and_a_resumable_archive(tmp_path, capsys, monkeypatch):
    from evaluation.evaluators import InProcessEvaluator, WorkerError
    score = InProcessEvaluator.__call__

    def dies_after_two(self, jobs):
        results = score(self, jobs)
        yield next(results)
        yield next(results)
        raise WorkerError("a Ray worker died while scoring (test)")

    monkeypatch.setattr(InProcessEvaluator, "__call__", dies_after_two)
    assert search(tmp_path, name="died") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a Ray worker died while scoring" in err[0] and "--resume" in err[0]
    assert len((tmp_path / "died" / "archive.jsonl").read_text().splitlines()) == 2
    assert "error: a Ray worker died while scoring" in (tmp_path / "died" / "log.txt").read_text()
    assert err[0].split("error: ", 1)[1] in (tmp_path / "died" / "log.txt").read_text()  # the same line in both
    monkeypatch.setattr(InProcessEvaluator, "__call__", score)
    assert search(tmp_path, name="died", resume=True) == 0
    assert "archive holds 2 scored architectures; they are reused" in (tmp_path / "died" / "log.txt").read_text()


def test_resume_without_an_archive_is_refused(tmp_path, capsys):
    assert search(tmp_path, name="never", resume=True) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("colour=blue", "unknown config key 'colour'"),
    ("max_params=0.01", "below the smallest architecture"),
    ("algorithm=sgd", "algorithm: expected one of trnas, nsga2, moead"),
    ("pop_size=0", "pop_size: must be at least 1"),
    ("workers=2 gpus_per_worker=2", "gpus_per_worker must be auto or a number in [0, 1]"),
    ("workers=2 device=cuda:1", "Ray gives each worker its GPU"),
])
def test_bad_input_is_one_line_and_status_2_with_nothing_written(tmp_path, capsys, override, message):
    assert search(tmp_path, *override.split(), name="bad") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_a_missing_data_set_is_one_line_and_status_2(tmp_path, capsys):
    assert search(tmp_path, "dataset=npz", f"data_path={tmp_path / 'absent.npz'}", name="bad") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "absent.npz" in err
    assert not (tmp_path / "bad").exists()


def test_an_unknown_config_file_is_refused(tmp_path, capsys):
    assert main(["search", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_plot_redraws_from_a_run_folder(tmp_path):
    assert search(tmp_path) == 0
    target = tmp_path / "again.png"
    assert main(["plot", str(tmp_path / "run"), "--out", str(target)]) == 0
    assert target.stat().st_size > 10_000
