"""Comparing search algorithms fairly: several algorithms over several seeds at one budget of
evaluations, on one problem whose archive they share (an architecture is scored once, whichever
algorithm asks), resumable like a search. It composes whole searches the way ``search.py``
does, which is the facade's job; ``compare_report.py`` turns the runs into the run folder's
table and plots."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from pymoo.core.callback import Callback

from evaluation.settings import SettingError, as_int, as_names, check_known
from nas_problem import OBJECTIVES
from nas_problem.files import check_folder, format_seconds, write_json, write_yaml
from selection import MOS_VARIANTS

from .compare_report import write_report
from .config import UsageError
from .run_folder import RunFolder, logged
from .search import ALGORITHMS, PROBLEM_KEYS, SEARCH_DEFAULTS, check_config as check_search_config
from .search import make_algorithm, make_problem, reuse_and_calibrate

DEFAULT_CONTENDERS = ["trnas/spread/inverse", "trnas/spread/neglog", "trnas/paper/inverse", "trnas/paper/neglog",
                      "nsga2", "moead", "random"]

COMPARE_DEFAULTS = {
    **{key: SEARCH_DEFAULTS[key] for key in PROBLEM_KEYS if key not in ("objective", "expose_constraint")},
    "algorithms": DEFAULT_CONTENDERS, "baseline": None, "seeds": 5, "evaluations": 300, "pop_size": 20,
    "n_clusters": 8, "importance": [0.5, 0.5], "n_neighbors": 15, "out_dir": None,
}
# settings a resumed comparison may change: where and how fast it scores, and which of its runs
# the report covers (each run stands alone, so adding seeds or algorithms reuses the finished ones)
RESUME_FREE_KEYS = ("threads", "workers", "ray_address", "gpus_per_worker", "out_dir", "algorithms", "seeds",
                    "baseline")
COMPARE_FILES = ("config.yaml", "archive.jsonl", "log.txt", "runs", "summary.json", "table.csv", "table.md",
                 "hypervolume.csv", "hypervolume.png", "fronts.png")


@dataclass(frozen=True)
class Contender:
    """One algorithm of a comparison: ``trnas/<mos>/<objective>``, ``nsga2/<objective>``,
    ``moead/<objective>`` or ``random`` (whose draws no objective steers)."""

    algorithm: str
    objective: str | None
    mos: str | None

    @classmethod
    def parse(cls, text: str) -> "Contender":
        name, *options = str(text).strip().split("/")
        if name not in ALGORITHMS:
            raise SettingError(f"algorithms: unknown algorithm {name!r} in {text!r} (available: {', '.join(ALGORITHMS)})")
        mos = [option for option in options if option in MOS_VARIANTS]
        objective = [option for option in options if option in OBJECTIVES]
        unknown = [option for option in options if option not in mos + objective]
        if unknown or len(mos) > 1 or len(objective) > 1 or (mos and name != "trnas") or (name == "random" and objective):
            raise SettingError(f"algorithms: cannot read {text!r}; write trnas/<{'|'.join(MOS_VARIANTS)}>/"
                               f"<{'|'.join(OBJECTIVES)}>, nsga2/<objective>, moead/<objective> or random")
        if name == "random":
            return cls(name, None, None)
        return cls(name, objective[0] if objective else SEARCH_DEFAULTS["objective"],
                   (mos[0] if mos else SEARCH_DEFAULTS["mos"]) if name == "trnas" else None)

    @property
    def label(self) -> str:
        return "/".join(part for part in (self.algorithm, self.mos, self.objective) if part)

    def run_file(self, seed: int) -> str:
        return f"{self.label.replace('/', '-')}-seed{seed}.json"


def check_config(config: dict) -> dict:
    """A comparison config over :data:`COMPARE_DEFAULTS`, every key checked before anything is
    built, scored or written (the problem's and the algorithms' keys as a search checks them)."""
    check_known(config, COMPARE_DEFAULTS, "the compare config")
    c = {**COMPARE_DEFAULTS, **config}
    shared = {key: c[key] for key in COMPARE_DEFAULTS if key in SEARCH_DEFAULTS}
    c.update({key: value for key, value in check_search_config(shared).items() if key in shared})
    if c["max_params"] is None:
        raise SettingError("max_params: a comparison needs a budget, the reference point's Params")
    contenders = [Contender.parse(text) for text in as_names(c["algorithms"], "algorithms")]
    labels = [contender.label for contender in contenders]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise SettingError(f"algorithms: {', '.join(repeated)} named twice")
    c["algorithms"] = labels
    if c["baseline"] is None:
        trnas = [label for label in labels if label.startswith("trnas")]
        c["baseline"] = trnas[0] if trnas else labels[0]
    else:
        c["baseline"] = Contender.parse(c["baseline"]).label
        if c["baseline"] not in labels:
            raise SettingError(f"baseline: {c['baseline']} is not among the algorithms ({', '.join(labels)})")
    c["seeds"] = seed_list(c["seeds"])
    c["evaluations"] = as_int(c["evaluations"], "evaluations", minimum=c["pop_size"])
    return c


def seed_list(value) -> list[int]:
    """``5`` means seeds 0 to 4; a list names them."""
    if isinstance(value, (list, tuple)):
        seeds = [as_int(seed, "seeds", minimum=0) for seed in value]
        if not seeds or len(set(seeds)) != len(seeds):
            raise SettingError(f"seeds: expected a number of seeds or a list of distinct seeds, got {value!r}")
        return seeds
    return list(range(as_int(value, "seeds", minimum=1)))


def compare_folder(config: dict) -> Path:
    if config.get("out_dir"):
        return Path(config["out_dir"])
    return Path("runs") / "compare" / str(config["space"]) / str(config["dataset"])


def run_comparison(config: dict, resume: bool = False, restart: bool = False, report=print) -> Path:
    """Run every algorithm of ``config["algorithms"]`` with every seed of ``config["seeds"]`` for
    ``config["evaluations"]`` evaluations, seed by seed, and write the run folder (returned).
    Each finished run is kept in ``runs/``; ``resume`` reruns only the unfinished ones (what
    they scored is in the archive), ``restart`` moves an earlier comparison aside."""
    config = check_config(config)
    folder = compare_folder(config)
    check_folder(folder)
    if resume and restart:
        raise UsageError("--resume continues the comparison in the folder and --restart starts a new one: choose one")
    run = RunFolder(folder, COMPARE_FILES, what="comparison")
    run.refuse_if_in_use()
    run.check_start(config, COMPARE_DEFAULTS, RESUME_FREE_KEYS, resume, restart)
    problem = make_problem(**{key: config[key] for key in PROBLEM_KEYS if key in config})
    try:
        with run:
            aside = run.set_aside() if restart else None
            notes = [f"--restart: the earlier comparison's files are now in {aside}"] if aside else []
            notes += run.open_archive(problem.archive, repair_first=False)
            write_yaml(folder / "config.yaml", config)
            with logged(folder, report, "--resume continues from the finished runs and the archive") as say:
                _compare(problem, config, folder, say, notes)
            return folder
    finally:
        problem.close()


def _compare(problem, config: dict, folder: Path, say, notes: list[str]):
    contenders = [Contender.parse(label) for label in config["algorithms"]]
    plan = [(seed, contender) for seed in config["seeds"] for contender in contenders]
    say(f"trnas compare: {', '.join(config['algorithms'])} x seeds {config['seeds']} x {config['evaluations']} "
        f"evaluations on {config['space']}/{config['dataset']}, proxy {problem.proxy.name} ({config['preset']}), "
        f"budget {config['max_params']} M, device {problem.device} ({problem.scorer.describe()}) -> {folder}")
    for note in notes:
        say(note)
    clock = Clock(config["evaluations"] * len(plan), started=reuse_and_calibrate(problem, say))
    runs = []
    for position, (seed, contender) in enumerate(plan, start=1):
        path = folder / "runs" / contender.run_file(seed)
        finished = finished_run(path, contender, seed, config["evaluations"])
        if finished is None:
            finished = _run(problem, contender, seed, config, Progress(say, clock, position, len(plan)))
            write_json(path, finished)
            say(f"[{position}/{len(plan)}] {contender.label} seed {seed} done in "
                f"{format_seconds(finished['wall_seconds'])}: {finished['scored']} architectures scored, the "
                f"rest reused")
        else:
            clock.skip(config["evaluations"])
        runs.append(finished)
        if position % len(contenders) == 0:  # a seed done: every algorithm in the report has as many runs
            write_report(folder, problem, config, runs)
    say(f"done: {len(plan)} runs; table in {folder / 'table.md'}, plots hypervolume.png and fronts.png")
    for line in (folder / "table.md").read_text().splitlines():
        say(line)


def finished_run(path: Path, contender: Contender, seed: int, evaluations: int) -> dict | None:
    """The run kept in ``path``, or None when it is not there (files are written whole, once a
    run ends)."""
    if not path.exists():
        return None
    finished = json.loads(path.read_text())
    if (finished.get("algorithm"), finished.get("seed"), finished.get("evaluations")) != (contender.label, seed,
                                                                                          evaluations):
        raise UsageError(f"{path} holds another run ({finished.get('algorithm')}, seed {finished.get('seed')}, "
                         f"{finished.get('evaluations')} evaluations); --restart starts a new comparison")
    return finished


def _run(problem, contender: Contender, seed: int, config: dict, progress: "Progress") -> dict:
    """One algorithm with one seed for the comparison's budget, on its own view of the shared problem."""
    from pymoo.optimize import minimize

    own = problem.another_run(objective=contender.objective)
    algorithm = make_algorithm(contender.algorithm, own, config["pop_size"], config["n_clusters"],
                               config["importance"], config["n_neighbors"], contender.mos or SEARCH_DEFAULTS["mos"])
    start = time.perf_counter()
    progress.begin(own, contender.label, seed, config["evaluations"])
    minimize(own, algorithm, ("n_eval", config["evaluations"]), seed=seed, callback=progress, verbose=False)
    return {"algorithm": contender.label, "seed": seed, "evaluations": config["evaluations"],
            "scored": own.n_scored, "wall_seconds": round(time.perf_counter() - start, 2),
            # an algorithm may finish its last generation past the budget: the comparison stops at it
            "evaluated": own.evaluated[:config["evaluations"]]}


class Clock:
    """Elapsed time of the comparison since ``started`` (calibration included) and its ETA, by
    the time per evaluation of the runs this session ran (runs kept from before cost nothing and
    count as done)."""

    def __init__(self, total: int, started: float):
        self.total, self.done, self.started = total, 0, started
        self.worked_evaluations, self.worked_seconds = 0, 0.0

    def skip(self, evaluations: int):
        self.done += evaluations

    def add(self, evaluations: int, seconds: float):
        self.done += evaluations
        self.worked_evaluations += evaluations
        self.worked_seconds += seconds

    def summary(self) -> str:
        remaining = max(self.total - self.done, 0)
        if self.worked_evaluations:
            eta = format_seconds(self.worked_seconds / self.worked_evaluations * remaining)
        else:
            eta = "?" if remaining else format_seconds(0)
        return f"elapsed {format_seconds(time.perf_counter() - self.started)} | ETA {eta}"


class Progress(Callback):
    """A line each time a run's evaluations grow: how many, the architectures newly scored, the
    best R-Score the run has found, and the comparison's elapsed time and ETA."""

    def __init__(self, say, clock: Clock, position: int, total: int):
        super().__init__()
        self.say, self.clock, self.position, self.total = say, clock, position, total

    def begin(self, problem, label: str, seed: int, budget: int):
        self.problem, self.label, self.seed, self.budget = problem, label, seed, budget
        self.mark, self.reported = time.perf_counter(), 0

    def notify(self, algorithm):
        done = min(len(self.problem.evaluated), self.budget)
        if done == self.reported:
            return
        now = time.perf_counter()
        self.clock.add(done - self.reported, now - self.mark)
        self.reported, self.mark = done, now
        best = self.problem.best_score
        self.say(f"[{self.position}/{self.total}] {self.label} seed {self.seed} | evaluations {done:>4}/{self.budget} "
                 f"(scored {self.problem.n_scored}) | best R-Score {best:8.2f} | {self.clock.summary()}")
