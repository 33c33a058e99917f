"""Running a search from a config: the problem, the algorithm by name, the run folder."""
from __future__ import annotations

import time
from pathlib import Path

from pymoo.core.callback import Callback

from differentiable import ALGORITHMS as DIFFERENTIABLE_ALGORITHMS
from evaluation import make_scorer
from evaluation.evaluators import requested_gpu_share
from evaluation.settings import SettingError, as_bool, as_choice, as_int, as_number, as_text, check_known
from nas_problem import OBJECTIVES, RobustNASProblem, get_space
from nas_problem.files import check_folder, format_seconds, write_json, write_yaml
from nas_problem.spaces import SPACES
from selection import MOS_VARIANTS

from .config import UsageError
from .run_folder import RunFolder, logged
from .runs import describe, mark_front, plot_run, write_table

ALGORITHMS = ("trnas", "nsga2", "moead", "random")

SEARCH_DEFAULTS = {
    "space": "darts", "dataset": "digits", "data_path": None, "root": None, "download": False,
    "proxy": "rscore", "preset": "reference", "proxy_kwargs": {}, "max_params": 6.0, "device": "auto",
    "seed": 0, "objective": "inverse", "algorithm": "trnas", "mos": "spread", "pop_size": 50, "n_clusters": 20,
    "importance": [0.5, 0.5],
    "n_neighbors": 15, "n_gen": 20, "n_calibration": 64, "batch_seed": None, "include_none": False,
    "expose_constraint": False, "out_dir": None, "workers": 0, "ray_address": None, "gpus_per_worker": "auto",
    "threads": None,
}
# settings a resumed run may change: they decide where and how fast it scores, not what
RESUME_FREE_KEYS = ("threads", "workers", "ray_address", "gpus_per_worker", "out_dir")
MAX_SEED = 2 ** 32 - 1  # numpy's seeds (pymoo seeds numpy with the search's)


def run_folder(config: dict) -> Path:
    if config.get("out_dir"):
        return Path(config["out_dir"])
    return Path("runs") / str(config["space"]) / str(config["dataset"]) / str(config["algorithm"]) / f"seed{config['seed']}"


# the search config's keys that describe the problem (the others describe the algorithm and the run)
PROBLEM_KEYS = ("space", "dataset", "data_path", "root", "download", "proxy", "preset", "proxy_kwargs", "max_params",
                "device", "seed", "objective", "n_calibration", "batch_seed", "include_none", "expose_constraint", "workers",
                "ray_address", "gpus_per_worker", "threads")


def make_problem(archive=None, **settings) -> RobustNASProblem:
    """A RobustNASProblem in one call, e.g. ``make_problem(space="darts", dataset="digits",
    proxy="rscore", preset="reference", max_params=6.0, device="auto", seed=0)``: any of
    ``PROBLEM_KEYS``, named and defaulting as in a search config (``SEARCH_DEFAULTS``), and the
    ``archive`` (a path or an ``Archive``). ``threads`` sets torch's threads in this process and
    of each Ray worker (default: torch's own here, one per worker). Close the problem when done
    (it stops Ray workers)."""
    import torch

    unknown = sorted(set(settings) - set(PROBLEM_KEYS))
    if unknown:
        raise TypeError(f"make_problem() got unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                        f"(known: {', '.join(PROBLEM_KEYS)})")
    c = {key: settings.get(key, SEARCH_DEFAULTS[key]) for key in PROBLEM_KEYS}
    if c["threads"]:
        torch.set_num_threads(c["threads"])
    space = get_space(c["space"], include_none=c["include_none"])
    scorer = make_scorer(dataset=c["dataset"], proxy=c["proxy"], preset=c["preset"], proxy_kwargs=c["proxy_kwargs"],
                         device=c["device"], batch_seed=c["batch_seed"], data_path=c["data_path"], root=c["root"],
                         download=c["download"], workers=c["workers"], ray_address=c["ray_address"],
                         gpus_per_worker=c["gpus_per_worker"], threads_per_worker=c["threads"] or 1)
    try:
        return RobustNASProblem(scorer, space, max_params=c["max_params"], seed=c["seed"],
                                n_calibration=c["n_calibration"], archive=archive,
                                expose_constraint=c["expose_constraint"], objective=c["objective"])
    except BaseException:
        scorer.close()  # an impossible budget must not leave Ray workers behind
        raise


def make_algorithm(name: str, problem, pop_size: int, n_clusters: int = 20, importance=(0.5, 0.5),
                   n_neighbors: int = 15, mos: str = "spread"):
    """TRNAS (its MOS as published, ``mos="paper"``, or the variant keeping the front's width,
    ``"spread"``), a stock pymoo algorithm breeding with the same budget-keeping operators, or
    random search: ``pop_size`` architectures drawn within the budget per generation."""
    from operators import default_operators
    if name == "trnas":
        from selection import TRNASAlgorithm
        return TRNASAlgorithm(pop_size=pop_size, n_clusters=n_clusters, importance=tuple(importance), mos=mos)
    if name == "nsga2":
        from pymoo.algorithms.moo.nsga2 import NSGA2
        return NSGA2(pop_size=pop_size, **default_operators(problem))
    if name == "moead":
        from pymoo.algorithms.moo.moead import MOEAD
        from pymoo.util.ref_dirs import get_reference_directions
        ref_dirs = get_reference_directions("uniform", 2, n_points=pop_size)
        return MOEAD(ref_dirs, n_neighbors=min(n_neighbors, pop_size), **default_operators(problem))
    if name == "random":
        from pymoo.algorithms.soo.nonconvex.random_search import RandomSearch
        from pymoo.util.display.multi import MultiObjectiveOutput
        return RandomSearch(n_points_per_iteration=pop_size, sampling=default_operators(problem)["sampling"],
                            output=MultiObjectiveOutput())
    raise UsageError(f"unknown algorithm {name!r} (available: {', '.join(ALGORITHMS)})")


class Progress(Callback):
    """One line per generation: evaluations, the best R-Score scored so far (it never falls),
    elapsed time (since the search began, calibration included) and ETA. The ETA goes by the generations that scored something: those
    a resumed run replays from its archive cost nothing, so they tell nothing of those to come."""

    def __init__(self, problem, n_gen: int, report, started: float):
        super().__init__()
        self.problem, self.n_gen, self.report, self.started = problem, n_gen, report, started
        self.mark, self.scored = time.perf_counter(), problem.n_scored
        self.working_seconds, self.working_generations = 0.0, 0

    def notify(self, algorithm):
        now = time.perf_counter()
        if self.problem.n_scored > self.scored:
            self.working_seconds += now - self.mark
            self.working_generations += 1
        self.mark, self.scored = now, self.problem.n_scored
        best = self.problem.best_score
        done = algorithm.n_gen
        remaining = max(self.n_gen - done, 0)
        if self.working_generations:
            eta = format_seconds(self.working_seconds / self.working_generations * remaining)
        else:
            eta = "?" if remaining else format_seconds(0)
        self.report(f"gen {done:>3}/{self.n_gen} | evaluations {algorithm.evaluator.n_eval:>5} "
                    f"(scored {self.problem.n_scored}, reused {self.problem.n_reused}) | "
                    f"best R-Score {best:8.2f} | elapsed {format_seconds(now - self.started)} | ETA {eta}")


def check_config(config: dict) -> dict:
    """A search config over :data:`SEARCH_DEFAULTS`, every key checked before anything is built,
    scored or written."""
    check_known(config, SEARCH_DEFAULTS, "the search config")
    c = {**SEARCH_DEFAULTS, **config}
    # the differentiable searches are named too: `trnas search` runs them before this check
    c["algorithm"] = as_choice(c["algorithm"], "algorithm", ALGORITHMS + DIFFERENTIABLE_ALGORITHMS)
    c["objective"] = as_choice(c["objective"], "objective", tuple(OBJECTIVES))
    c["mos"] = as_choice(c["mos"], "mos", tuple(MOS_VARIANTS))
    c["space"] = as_choice(c["space"], "space", tuple(SPACES))
    for key in ("dataset", "proxy", "device"):
        c[key] = as_text(c[key], key)
    for key in ("data_path", "root", "preset", "out_dir", "ray_address"):
        c[key] = as_text(c[key], key, allow_none=True)
    for key in ("download", "include_none", "expose_constraint"):
        c[key] = as_bool(c[key], key)
    if not isinstance(c["proxy_kwargs"], dict):
        raise SettingError(f"proxy_kwargs: expected a mapping such as {{psi_inits: 4}}, got {c['proxy_kwargs']!r}")
    c["seed"] = as_int(c["seed"], "seed", minimum=0, maximum=MAX_SEED)
    c["batch_seed"] = as_int(c["batch_seed"], "batch_seed", minimum=0, maximum=MAX_SEED, allow_none=True)
    for key in ("pop_size", "n_gen", "n_neighbors"):
        c[key] = as_int(c[key], key, minimum=1)
    c["n_clusters"] = as_int(c["n_clusters"], "n_clusters", minimum=0)
    if c["n_clusters"] >= c["pop_size"]:
        raise SettingError(f"n_clusters: must be below pop_size ({c['pop_size']}), got {c['n_clusters']}")
    # the normalisation maps the calibration sample's smallest and largest values apart: two at least
    c["n_calibration"] = as_int(c["n_calibration"], "n_calibration", minimum=2)
    c["max_params"] = as_number(c["max_params"], "max_params", allow_none=True)
    if c["max_params"] is not None and c["max_params"] <= 0:
        raise SettingError(f"max_params: expected a positive number of millions, got {c['max_params']:g}")
    c["importance"] = importance_weights(c["importance"])
    c["workers"] = as_int(c["workers"], "workers", minimum=0)
    c["threads"] = as_int(c["threads"], "threads", minimum=1, allow_none=True)
    # the values a worker share may take, checked before anything starts or is written
    requested_gpu_share(c["gpus_per_worker"])
    return c


def importance_weights(value) -> list[float]:
    """MOS's two weights [R-Score, Params]: non-negative, not both zero."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SettingError(f"importance: expected two weights [R-Score, Params] such as [0.5, 0.5], got {value!r}")
    weights = [as_number(w, "importance", minimum=0) for w in value]
    if not any(weights):
        raise SettingError("importance: the two weights must not both be 0")
    return weights


def run_search(config: dict, resume: bool = False, report=print, restart: bool = False,
               repair_archive: bool = False) -> Path:
    """Run the search a config describes and write its run folder; returns the folder.

    ``resume`` continues the run in the folder (its settings but the free ones unchanged),
    ``restart`` starts a new one there (the earlier run's files moved aside); without either
    a folder holding a run is refused. ``repair_archive`` keeps the readable records of a
    corrupt archive and moves its other lines aside."""
    config = check_config(config)
    if config["algorithm"] in DIFFERENTIABLE_ALGORITHMS:
        raise UsageError(f"algorithm={config['algorithm']} is a differentiable search: "
                         f"differentiable.run_differentiable_search runs it (as trnas search does)")
    folder = run_folder(config)
    check_folder(folder)
    if resume and restart:
        raise UsageError("--resume continues the run in the folder and --restart starts a new one: choose one")
    if repair_archive and not resume:
        raise UsageError("--repair-archive repairs the archive of a run to resume: add --resume")
    run = RunFolder(folder)
    run.refuse_if_in_use()
    run.check_start(config, SEARCH_DEFAULTS, RESUME_FREE_KEYS, resume, restart)
    # bad input fails here, before anything is written
    problem = make_problem(**{key: config[key] for key in PROBLEM_KEYS})
    try:
        with run:
            aside = run.set_aside() if restart else None
            notes = [f"--restart: the earlier run's files are now in {aside}"] if aside else []
            notes += run.open_archive(problem.archive, repair_archive)
            return _search(problem, config, folder, report, notes)
    finally:
        problem.close()


def _search(problem, config, folder, report, notes) -> Path:
    """Run the search, its progress lines going to ``report`` and to the run folder's log.txt."""
    algorithm = make_algorithm(config["algorithm"], problem, config["pop_size"], config["n_clusters"],
                               config["importance"], config["n_neighbors"], config["mos"])
    write_yaml(folder / "config.yaml", config)
    resume_hint = f"every architecture scored so far is in {folder / 'archive.jsonl'}, and --resume continues from there"
    with logged(folder, report, resume_hint) as say:
        return _search_and_write_results(problem, algorithm, config, folder, say, notes)


def reuse_and_calibrate(problem, say) -> float:
    """Say how much of the archive the problem reuses, then calibrate it, saying so; returns
    when the calibration began (a run's elapsed time counts it)."""
    if len(problem.archive):
        usable = len(problem.archive.records_of(problem.proxy_id))
        if usable == len(problem.archive):
            say(f"archive holds {usable} scored architectures; they are reused, not rescored")
        else:
            # another proxy, configuration, data batch, seed or code revision scored the others
            say(f"archive holds {len(problem.archive)} scored architectures, {usable} of them scored the way "
                f"this run scores; those are reused, the others are kept but not used")
    start = time.perf_counter()
    say(f"calibrating R-Score normalisation on {problem.n_calibration} random architectures ...")
    problem.calibrate()
    say(f"calibration done in {format_seconds(time.perf_counter() - start)}: {problem.calibration}")
    return start


def _search_and_write_results(problem, algorithm, config, folder, say, notes) -> Path:
    from pymoo.optimize import minimize

    say(f"trnas search: {config['algorithm']} on {config['space']}/{config['dataset']}, proxy "
        f"{problem.proxy.name} ({config['preset']}), budget {config['max_params']} M, device {problem.device} "
        f"({problem.scorer.describe()}), seed {config['seed']} -> {folder}")
    for note in notes:
        say(note)
    start = reuse_and_calibrate(problem, say)
    result = minimize(problem, algorithm, ("n_gen", config["n_gen"]), seed=config["seed"],
                      callback=Progress(problem, config["n_gen"], say, start), verbose=False)
    wall = time.perf_counter() - start
    scored, reused = problem.n_scored, problem.n_reused  # before the result tables look scores up again

    population = describe(problem, problem.score_genotypes([problem.decode(x) for x in result.pop.get("X")]))
    # the result is what the search found, not what its final population kept
    front = describe(problem, problem.elitist_front())
    chosen = mark_front(front)
    evaluated = describe(problem, [problem.archive.get(problem.proxy_id, key) for key in dict.fromkeys(problem.evaluated)])
    write_table(folder / "population", population)
    write_table(folder / "front", front)
    write_table(folder / "evaluations", evaluated)
    write_json(folder / "summary.json", {
        "algorithm": config["algorithm"], "seed": config["seed"], "n_gen": config["n_gen"],
        "evaluations": int(result.algorithm.evaluator.n_eval), "scored": scored, "reused": reused,
        "wall_seconds": round(wall, 2), "device": str(problem.device), "calibration": problem.calibration,
        "front": f"non-dominated among the {len(evaluated)} architectures the search evaluated (the calibration "
                 f"sample is not among them)", **chosen})
    plot_run(folder)
    say(f"done in {format_seconds(wall)}: {scored} architectures scored, {reused} reused from the archive; "
        f"front of {len(front)}")
    if chosen:
        for label, row in (("best R-Score", chosen["best_rscore"]), ("knee", chosen["knee"])):
            say(f"{label}: R-Score {row['r_score']:.2f}, {row['params_m']:.2f} M params, {row['flops_m']:.0f} M FLOPs\n"
                f"  {row['genotype']}")
    say(f"results in {folder}/ (front.csv, population.csv, evaluations.csv, summary.json, front.png, log.txt)")
    return folder
