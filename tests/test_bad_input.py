"""Every bad input of docs/bad-input.md: the real command in a temporary folder gets one line on
stderr and exit status 2, and nothing is written or changed; then the faults a run folder must
survive (two searches at once, a resume with other settings, a corrupt archive, a stale lock,
an interrupt) and the files and messages around them."""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from trnas.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--config", "quick", "pop_size=4", "n_clusters=2", "n_gen=1", "n_calibration=2", "device=cpu",
        "proxy_kwargs={psi_inits: 2}"]


# ----- the inputs the table's commands name -----
def unwritable_folder(tmp_path: Path) -> str:
    """A folder no file can be made in: read-only for a user, a sysfs folder for root."""
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o555)
        return str(locked / "run")
    try:
        os.mkdir("/sys/trnas-probe")
    except OSError:
        return "/sys/trnas-run"
    os.rmdir("/sys/trnas-probe")
    pytest.skip("no folder here refuses root")


def tiny_benchmark(path: Path, robust=(40.0, 39.0, 38.0, 37.0)) -> Path:
    pairs = [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["dil_conv_3x3", 2],
             ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["skip_connect", 2], ["dil_conv_5x5", 4]]
    records = []
    for i, value in enumerate(robust):
        normal = [list(p) for p in pairs]
        normal[0][0] = ["sep_conv_3x3", "max_pool_3x3", "dil_conv_5x5", "avg_pool_3x3"][i % 4]
        records.append({"seed": i, "net": {"genotype": {"normal": normal, "normal_concat": [2, 3, 4, 5],
                                                        "reduce": pairs, "reduce_concat": [2, 3, 4, 5]}},
                        "max_test_top1_original": 70.0 + i, "max_test_top1_adv": value})
    path.write_text(json.dumps(records))
    return path


def tiny_config(**changes) -> dict:
    from trnas.config import load_config
    from trnas.search import SEARCH_DEFAULTS, check_config
    return check_config({**load_config("quick", TINY[2:], SEARCH_DEFAULTS), **changes})


def fake_records(n: int) -> list[str]:
    return [json.dumps({"key": f"k{i}", "proxy_id": "p", "components": {}}) for i in range(n)]


@pytest.fixture
def inputs(tmp_path, monkeypatch) -> dict:
    """Files for the commands to trip on, and the working folder set to tmp_path (default
    output folders land there)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    paths = {"tmp": tmp_path, "out": tmp_path / "out", "file": tmp_path / "a-file",
             "missing": tmp_path / "missing.npz", "unwritable": unwritable_folder(tmp_path)}
    paths["file"].write_text("not a folder\n")
    paths["garbage_npz"] = tmp_path / "garbage.npz"
    paths["garbage_npz"].write_bytes(b"\x00garbage" * 64)
    images = dict(x_test=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8), y_test=np.arange(2))
    paths["nan_npz"] = tmp_path / "nan.npz"
    np.savez(paths["nan_npz"], x_train=np.full((4, 8, 8, 3), np.nan, np.float32), y_train=np.arange(4), **images)
    paths["partial_npz"] = tmp_path / "partial.npz"
    np.savez(paths["partial_npz"], x_train=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    paths["npz"] = tmp_path / "good.npz"
    np.savez(paths["npz"], x_train=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), y_train=np.arange(8),
             **images)
    paths["bad_yaml"] = tmp_path / "bad.yaml"
    paths["bad_yaml"].write_text("pop_size: [4, 6\nseed: 0\n")
    paths["list_yaml"] = tmp_path / "list.yaml"
    paths["list_yaml"].write_text("- pop_size\n- 4\n")
    paths["bench"] = tiny_benchmark(tmp_path / "bench.json")
    paths["bad_bench"] = tmp_path / "bad-bench.json"
    paths["bad_bench"].write_text("{not json")
    return paths


# ----- run folders in the states the table's commands meet -----
def holding_a_run(out: Path, **changes):
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(tiny_config(out_dir=str(out), **changes), sort_keys=False))
    (out / "archive.jsonl").write_text("".join(line + "\n" for line in fake_records(4)))


def holding_a_corrupt_archive(out: Path):
    holding_a_run(out)
    lines = fake_records(4)
    (out / "archive.jsonl").write_text("\n".join(lines[:2] + ["%% not a record %%"] + lines[2:]) + "\n")


def holding_an_unreadable_config(out: Path):
    holding_a_run(out)
    (out / "config.yaml").write_text("pop_size: [4\n")


SETUPS = {"run": holding_a_run, "corrupt_archive": holding_a_corrupt_archive,
          "unreadable_config": holding_an_unreadable_config}

# (what the table calls the input, the command after `trnas`, the run folder's state, a piece of the line)
BAD_INPUT = [
    # search: settings
    ("seed not a number", "search {tiny} seed=abc out_dir={out}", None, "seed: expected an integer, got 'abc'"),
    ("negative seed", "search {tiny} seed=-1 out_dir={out}", None, "seed: must be at least 0, got -1"),
    ("threads below 1", "search {tiny} threads=-1 out_dir={out}", None, "threads: must be at least 1, got -1"),
    ("boolean population size", "search {tiny} pop_size=true out_dir={out}", None,
     "pop_size: expected an integer, got True"),
    ("population of 0", "search {tiny} pop_size=0 out_dir={out}", None, "pop_size: must be at least 1, got 0"),
    ("no generations", "search {tiny} n_gen=0 out_dir={out}", None, "n_gen: must be at least 1, got 0"),
    ("no calibration sample", "search {tiny} n_calibration=0 out_dir={out}", None,
     "n_calibration: must be at least 2, got 0"),
    ("calibration sample of 1", "search {tiny} n_calibration=1 out_dir={out}", None,
     "n_calibration: must be at least 2, got 1"),
    ("one importance weight", "search {tiny} importance=[1] out_dir={out}", None,
     "importance: expected two weights [R-Score, Params]"),
    ("zero importance weights", "search {tiny} importance=[0,0] out_dir={out}", None,
     "importance: the two weights must not both be 0"),
    ("negative importance weight", "search {tiny} importance=[1,-1] out_dir={out}", None,
     "importance: must be at least 0, got -1"),
    ("as many clusters as individuals", "search {tiny} n_clusters=4 out_dir={out}", None,
     "n_clusters: must be below pop_size (4), got 4"),
    ("budget of 0", "search {tiny} max_params=0 out_dir={out}", None,
     "max_params: expected a positive number of millions, got 0"),
    ("budget below every architecture", "search {tiny} max_params=0.01 out_dir={out}", None,
     "below the smallest architecture"),
    ("unknown algorithm", "search {tiny} algorithm=sgd out_dir={out}", None,
     "algorithm: expected one of trnas, nsga2, moead, random, rnas-os, rnas-fd, got 'sgd'"),
    ("unknown space", "search {tiny} space=resnet out_dir={out}", None, "space: expected one of darts, nb201"),
    ("unknown key", "search {tiny} colour=blue out_dir={out}", None, "unknown config key 'colour'"),
    ("misspelt key", "search {tiny} popsize=6 out_dir={out}", None, "did you mean 'pop_size'?"),
    ("unknown proxy", "search {tiny} proxy=nope out_dir={out}", None, "unknown proxy 'nope'"),
    ("unknown preset", "search {tiny} preset=nope out_dir={out}", None, "unknown rscore preset 'nope'"),
    ("proxy_kwargs not a mapping", "search {tiny} proxy_kwargs=3 out_dir={out}", None,
     "proxy_kwargs: expected a mapping"),
    ("negative workers", "search {tiny} workers=-1 out_dir={out}", None, "workers: must be at least 0, got -1"),
    ("GPU share above 1", "search {tiny} workers=2 gpus_per_worker=2 out_dir={out}", None,
     "gpus_per_worker must be auto or a number in [0, 1]"),
    ("a GPU index with Ray workers", "search {tiny} workers=2 device=cuda:1 out_dir={out}", None,
     "Ray gives each worker its GPU"),
    # search: data
    ("unknown data set", "search {tiny} dataset=imagenet out_dir={out}", None, "unknown data set 'imagenet'"),
    ("missing npz file", "search {tiny} dataset=npz data_path={missing} out_dir={out}", None,
     "npz data set not found"),
    ("garbage npz file", "search {tiny} dataset=npz data_path={garbage_npz} out_dir={out}", None,
     "is not a readable npz file"),
    ("npz of NaN images", "search {tiny} dataset=npz data_path={nan_npz} out_dir={out}", None,
     "x_train: images must be finite numbers in [0, 1], found NaN or infinity"),
    ("npz without every array", "search {tiny} dataset=npz data_path={partial_npz} out_dir={out}", None,
     "lacks y_train, x_test, y_test"),
    # search: where it writes
    ("out_dir is a file", "search {tiny} out_dir={file}", None, "is a file, not a folder"),
    ("out_dir under a file", "search {tiny} out_dir={file}/run", None, "is a file, so no folder can be made under it"),
    ("out_dir not writable", "search {tiny} out_dir={unwritable}", None, "cannot write in"),
    # search: the config file and the command line
    ("config file not found", "search --config {tmp}/nope.yaml", None, "config file not found"),
    ("bad YAML", "search --config {bad_yaml}", None, "not valid YAML at line 2, column 5"),
    ("YAML that is not a mapping", "search --config {list_yaml}", None, "expected a mapping of keys to values"),
    ("unknown flag", "search {tiny} --bogus", None, "unrecognized arguments: --bogus"),
    ("a word that is not key=value", "search {tiny} pop_size", None, "expected key=value, got 'pop_size'"),
    ("unknown command", "frobnicate", None, "invalid choice: 'frobnicate'"),
    ("no command", "", None, "the following arguments are required: COMMAND"),
    # search: the run folder
    ("a fresh search in a folder holding a run", "search {tiny} out_dir={out}", "run", "already holds a search"),
    ("--resume of nothing", "search {tiny} out_dir={out} --resume", None, "nothing to resume"),
    ("--resume and --restart", "search {tiny} out_dir={out} --resume --restart", "run", "choose one"),
    ("--repair-archive without --resume", "search {tiny} out_dir={out} --repair-archive", "run", "add --resume"),
    ("--resume with other settings", "search {tiny} out_dir={out} --resume pop_size=6 algorithm=nsga2", "run",
     "--resume with settings that change the search: algorithm (trnas -> nsga2), pop_size (4 -> 6)"),
    ("--resume with a corrupt archive", "search {tiny} out_dir={out} --resume", "corrupt_archive",
     "line 3 is not a readable archive record; --repair-archive (with --resume) keeps the 4 readable records"),
    ("--resume with an unreadable config.yaml", "search {tiny} out_dir={out} --resume", "unreadable_config",
     "is not a readable config"),
    # train
    ("train: a number that is not", "train arch=resnet18 eps=lots out_dir={out}", None, "eps: expected a number"),
    ("train: threads below 1", "train arch=resnet18 threads=0 out_dir={out}", None,
     "threads: must be at least 1, got 0"),
    ("train: out_dir is a file", "train arch=resnet18 out_dir={file}", None, "is a file, not a folder"),
    ("train: nothing to train", "train out_dir={out}", None, "say what to train"),
    # attack
    ("attack: no checkpoints", "attack out_dir={out}", None, "no checkpoints given"),
    ("attack: missing checkpoint", "attack checkpoints={tmp}/nope.pt out_dir={out}", None, "checkpoint not found"),
    ("attack: unknown attack", "attack checkpoints={tmp}/nope.pt attacks=pgd7 out_dir={out}", None,
     "unknown attack 'pgd7'"),
    ("attack: out_dir is a file", "attack checkpoints={tmp}/nope.pt out_dir={file}", None, "is a file, not a folder"),
    ("attack: out_dir under a file", "attack checkpoints={tmp}/nope.pt out_dir={file}/x", None,
     "is a file, so no folder can be made under it"),
    # correlate
    ("correlate: no benchmark", "correlate data_path={npz} out_dir={out}", None, "benchmark: none given"),
    ("correlate: missing benchmark", "correlate benchmark={tmp}/nope.json data_path={npz} n_images=4 out_dir={out}",
     None, "benchmark not found"),
    ("correlate: glob matching nothing", "correlate benchmark={tmp}/none*.json data_path={npz} out_dir={out}", None,
     "benchmark: no file matches"),
    ("correlate: benchmark not JSON", "correlate benchmark={bad_bench} data_path={npz} n_images=4 out_dir={out}",
     None, "not valid JSON"),
    ("correlate: unknown proxy", "correlate benchmark={bench} proxies=nope data_path={npz} n_images=4 out_dir={out}",
     None, "unknown proxy 'nope'"),
    ("correlate: a proxy mapping without a name",
     "correlate benchmark={bench} proxies=[{{name:}}] data_path={npz} out_dir={out}", None,
     "proxies: a proxy given as a mapping needs name:"),
    ("correlate: too few architectures for the held-out folds",
     "correlate benchmark={bench} proxies=params data_path={npz} n_images=4 out_dir={out} --cv", None,
     "--cv: 5-fold cross-validation needs at least 10 architectures"),
    ("correlate: more images than the data set has",
     "correlate benchmark={bench} proxies=params data_path={npz} n_images=9 out_dir={out}", None,
     "proxy batch of 9 images requested, but 'npz' has 8 training images"),
    ("correlate: out_dir is a file", "correlate benchmark={bench} data_path={npz} out_dir={file}", None,
     "is a file, not a folder"),
    ("correlate: out_dir not writable", "correlate benchmark={bench} data_path={npz} out_dir={unwritable}", None,
     "cannot write in"),
    # fit-predictor
    ("fit-predictor: no benchmark", "fit-predictor out={tmp}/m.skops", None, "benchmark: none given"),
    ("fit-predictor: no out", "fit-predictor benchmark={bench}", None, "out: none given"),
    ("fit-predictor: out exists", "fit-predictor benchmark={bench} out={file}", None,
     "already exists: overwrite=true replaces it, or choose another out"),
    ("fit-predictor: out is a folder", "fit-predictor benchmark={bench} out={tmp}", None,
     "is a folder; name the model file"),
    ("fit-predictor: out under a file", "fit-predictor benchmark={bench} out={file}/m.skops", None,
     "is a file, not a folder"),
    ("fit-predictor: out not writable", "fit-predictor benchmark={bench} out={unwritable}/m.skops", None,
     "cannot write in"),
    ("fit-predictor: unknown proxy", "fit-predictor benchmark={bench} out={tmp}/m.skops proxies=nope", None,
     "unknown proxy 'nope'"),
    ("fit-predictor: a predictor as an input", "fit-predictor benchmark={bench} out={tmp}/m.skops proxies=predictor",
     None, "proxies: a predictor cannot be an input of a predictor"),
    ("fit-predictor: one fold", "fit-predictor benchmark={bench} out={tmp}/m.skops folds=1", None,
     "folds: must be at least 2, got 1"),
    ("fit-predictor: too few architectures", "fit-predictor benchmark={bench} out={tmp}/m.skops", None,
     "the benchmark holds 4 architectures: 5-fold cross-validation needs at least 10"),
    # search with the predictor
    ("search: predictor without a model", "search {tiny_predictor} out_dir={out}", None,
     "proxy 'predictor' needs model=PATH"),
    ("search: predictor model missing", "search {tiny_predictor} proxy_kwargs.model={tmp}/nope.skops out_dir={out}",
     None, "predictor model not found"),
    ("search: predictor model not a skops file",
     "search {tiny_predictor} proxy_kwargs.model={garbage_npz} out_dir={out}", None, "is not a readable skops file"),
    ("an entry of a setting that is not a mapping", "search {tiny} seed.x=1 out_dir={out}", None,
     "seed is not a mapping"),
    # plot
    ("plot: not a run folder", "plot {tmp}", None, "is not a finished search run folder"),
]


def run_command(command: str, paths: dict) -> int:
    # the predictor takes none of the R-Score's knobs TINY sets
    tiny_predictor = " ".join([item for item in TINY if not item.startswith("proxy_kwargs=")] + ["proxy=predictor"])
    argv = command.format(tiny=" ".join(TINY), tiny_predictor=tiny_predictor, **paths).split()
    # proxy_kwargs={psi_inits: 2} holds a space: it is one argument
    joined = []
    for item in argv:
        if joined and joined[-1].endswith("{psi_inits:"):
            joined[-1] += " " + item
        else:
            joined.append(item)
    return main(joined)


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its content and mode: what a refused command must leave alone."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("what, command, state, message", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_nothing_written(inputs, capsys, what, command, state, message):
    if state:
        SETUPS[state](inputs["out"])
    before = snapshot(inputs["tmp"])
    assert run_command(command, inputs) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert re.match(r"trnas( [\w-]+)?: error: ", lines[0]) and message in lines[0], lines[0]
    assert snapshot(inputs["tmp"]) == before


def test_the_table_in_the_docs_lists_every_case():
    table = (ROOT / "docs" / "bad-input.md").read_text()
    for what, _, _, message in BAD_INPUT:
        assert what in table and message.replace("|", "\\|") in table, what


# ----- faults: a run folder is never mixed -----
def tiny_search(out: Path, *extra) -> int:
    return main(["search", *TINY, f"out_dir={out}", *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One finished tiny search, copied by the tests that need a run folder."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert tiny_search(out) == 0
    return out


def copy_run(run: Path, to: Path) -> Path:
    import shutil
    shutil.copytree(run, to)
    return to


def test_two_searches_racing_on_one_folder_one_is_refused_and_the_others_results_are_intact(tmp_path):
    out = tmp_path / "race"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    runs = [subprocess.Popen([sys.executable, "-m", "trnas.cli", "search", *TINY, f"seed={seed}",
                              f"out_dir={out}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    assert sorted(status for status, _, _ in results) == [0, 2]
    (winner_status, winner_out, _), = [r for r in results if r[0] == 0]
    (_, _, loser_err), = [r for r in results if r[0] == 2]
    assert len(loser_err.strip().splitlines()) == 1
    assert "in use by another search" in loser_err or "already holds a search" in loser_err
    seed = int(re.search(r"seed (\d+) ->", winner_out).group(1))
    config = yaml.safe_load((out / "config.yaml").read_text())
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "archive.jsonl").read_text().splitlines()]
    assert config["seed"] == summary["seed"] == seed
    assert len({r["proxy_id"] for r in records}) == 1 and len(records) == summary["scored"]
    assert (out / "log.txt").read_text().count("trnas search:") == 1
    assert not (out / ".lock").exists()


def test_a_held_lock_refuses_a_second_search_at_once(tmp_path, capsys):
    from trnas.run_folder import RunFolder
    out = tmp_path / "held"
    with RunFolder(out):
        before = snapshot(tmp_path)
        assert tiny_search(out) == 2
        assert snapshot(tmp_path) == before
    line = capsys.readouterr().err.strip()
    assert f"pid {os.getpid()} on {socket.gethostname()}" in line and len(line.splitlines()) == 1


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_a_stale_lock_from_a_killed_run_is_taken_over_and_results_respect_the_umask(tmp_path, capsys):
    out = tmp_path / "stale"
    out.mkdir()
    pid = dead_pid()
    (out / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "earlier"}))
    previous = os.umask(0o027)
    try:
        assert tiny_search(out) == 0
    finally:
        os.umask(previous)
    assert f"took over a lock left by pid {pid}" in (out / "log.txt").read_text()
    assert not (out / ".lock").exists()
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes) >= {"archive.jsonl", "config.yaml", "log.txt", "front.csv", "summary.json", "front.png"}
    assert set(modes.values()) == {0o640}, modes


def test_without_flock_a_lock_is_judged_by_its_holders_pid(tmp_path, monkeypatch):
    import errno
    import fcntl

    from trnas.config import UsageError
    from trnas.run_folder import RunFolder

    def no_flock(descriptor, operation):
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    out = tmp_path / "nfs"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": "now"}))
    with pytest.raises(UsageError, match=f"pid {os.getppid()}"):
        RunFolder(out).__enter__()
    (out / ".lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "since": "then"}))
    with RunFolder(out) as run:
        assert run.stale["since"] == "then"
    assert not (out / ".lock").exists()


def test_resume_with_a_changed_config_is_refused_listing_the_keys(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path / "run")
    before = snapshot(out)
    assert tiny_search(out, "--resume", "pop_size=6", "seed=3", "threads=2", "workers=0") == 2
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1
    assert "pop_size (4 -> 6)" in line and "seed (0 -> 3)" in line
    assert "threads" not in line and "workers" not in line  # they decide how fast, not what
    assert snapshot(out) == before
    # the free keys alone may change: the resumed run replays everything from its archive
    assert tiny_search(out, "--resume", "threads=2") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored"] == 0 and yaml.safe_load((out / "config.yaml").read_text())["threads"] == 2


def test_restart_moves_the_earlier_run_aside(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path / "run")
    earlier = snapshot(out)
    assert tiny_search(out, "--restart", "pop_size=6", "n_clusters=2") == 0
    aside = out / "previous-1"
    assert snapshot(aside) == earlier
    assert yaml.safe_load((out / "config.yaml").read_text())["pop_size"] == 6
    assert f"--restart: the earlier run's files are now in {aside}" in (out / "log.txt").read_text()


def test_repair_archive_keeps_every_record_and_moves_the_rest_aside(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path / "run")
    lines = (out / "archive.jsonl").read_text().splitlines()
    (out / "archive.jsonl").write_text("\n".join(lines[:3] + ["garbage in the middle"] + lines[3:]) + "\n")
    assert tiny_search(out, "--resume") == 2
    assert "line 4 is not a readable archive record" in capsys.readouterr().err
    assert tiny_search(out, "--resume", "--repair-archive") == 0
    assert (out / "archive.jsonl").read_text().splitlines() == lines
    assert (out / "archive.unreadable-1.jsonl").read_text() == "garbage in the middle\n"
    log = (out / "log.txt").read_text()
    assert f"--repair-archive: kept {len(lines)} records; moved line(s) 4 to {out / 'archive.unreadable-1.jsonl'}" in log
    assert json.loads((out / "summary.json").read_text())["scored"] == 0


def test_an_interrupt_is_logged_and_the_folder_unlocked(tmp_path, capsys, monkeypatch):
    from evaluation.evaluators import InProcessEvaluator
    score = InProcessEvaluator.__call__

    def interrupted_after_one(self, jobs):
        results = score(self, jobs)
        yield next(results)
        raise KeyboardInterrupt

    monkeypatch.setattr(InProcessEvaluator, "__call__", interrupted_after_one)
    out = tmp_path / "run"
    assert tiny_search(out) == 130
    assert capsys.readouterr().err.strip() == "trnas search: interrupted"
    log = (out / "log.txt").read_text()
    assert "interrupted at" in log and "--resume continues from there" in log
    assert not (out / ".lock").exists() and len((out / "archive.jsonl").read_text().splitlines()) == 1


def test_correlate_says_why_rho_is_undefined_when_every_accuracy_is_equal(inputs, capsys):
    bench = tiny_benchmark(inputs["tmp"] / "flat.json", robust=(40.0, 40.0, 40.0, 40.0))
    assert main(["correlate", f"benchmark={bench}", "proxies=params", f"data_path={inputs['npz']}", "n_images=4",
                 f"out_dir={inputs['out']}"]) == 0
    err = capsys.readouterr().err
    assert "warning: all 4 architectures have the same robust accuracy (40 %), so Spearman rho and Kendall tau " \
           "against it are undefined (nan)" in err
    assert "params: rho and tau against robust accuracy are undefined (nan): every architecture scored has the " \
           "same robust accuracy (40 %)." in (inputs["out"] / "correlation.md").read_text()


def test_progress_elapsed_counts_calibration_and_a_resumed_runs_eta_only_the_generations_to_run(monkeypatch):
    from trnas import search

    class Problem:
        n_scored = n_reused = 0
        best_score = 100.0

    class Algorithm:
        class evaluator:
            n_eval = 4

        n_gen = 0

    clock = [0.0]
    monkeypatch.setattr(search.time, "perf_counter", lambda: clock[0])
    lines = []
    problem, algorithm = Problem(), Algorithm()
    # started at 0, calibrated until 100; then a resumed run replays generations 1-2 from its archive
    clock[0] = 100.0
    progress = search.Progress(problem, 5, lines.append, started=0.0)
    for gen, (now, scored) in enumerate([(100.5, 0), (101.0, 0), (111.0, 4), (121.0, 8)], start=1):
        clock[0], problem.n_scored, algorithm.n_gen = now, scored, gen
        progress.notify(algorithm)
    assert [re.search(r"elapsed (\S+) \| ETA (\S+)", line).groups() for line in lines] == [
        ("1m40s", "?"), ("1m41s", "?"), ("1m51s", "20s"), ("2m01s", "10s")]


def test_version(capsys):
    from trnas import __version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"trnas {__version__}\n" and re.match(r"\d+\.\d+", __version__)


def test_key_value_overrides_anywhere_on_the_command_line():
    from trnas.cli import parse
    args = parse(["search", "--config", "quick", "out_dir=x", "--resume", "pop_size=6"])
    assert args.overrides == ["out_dir=x", "pop_size=6"] and args.resume and args.config == "quick"
    args = parse(["attack", "n_examples=10", "--config", "q.yaml", "checkpoints=a,b"])
    assert args.overrides == ["n_examples=10", "checkpoints=a,b"]
