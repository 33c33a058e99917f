"""What a comparison shows: hypervolume against evaluations in one fixed objective space with one
reference point for every algorithm and seed, the seeds' final fronts overlaid, and a table with
a rank-sum test of each algorithm against the baseline."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nas_problem import nondominated
from nas_problem.files import write_atomic, write_csv, write_json
from nas_problem.problem import OBJECTIVES

OBJECTIVE_SPACE = "(-ln R-Score, Params in millions), both minimised"
TARGET_SHARE = 0.9  # "evaluations to reach 90 % of the best hypervolume"
TABLE_COLUMNS = ("algorithm", "runs", "hv_mean", "hv_std", "best_r_score_mean", "best_r_score_std",
                 "evaluations_to_target_mean", "runs_reaching_target", "p_value_vs_baseline")


def reference_point(config: dict) -> np.ndarray:
    """R-Score 1 (the bottom of the calibration scale) and the Params budget: an architecture
    counts towards the hypervolume when it beats both."""
    return np.array([0.0, float(config["max_params"])])


def objectives(problem, key: str):
    """(−ln R-Score, Params) of an evaluated architecture, or None when it has no valid score."""
    record = problem.archive.get(problem.proxy_id, key)
    score = problem.usable_score(record)
    return None if math.isnan(score) else (float(OBJECTIVES["neglog"](score)), float(record["params"]))


def hypervolume_curve(points: list, reference: np.ndarray) -> np.ndarray:
    """The hypervolume (pymoo's HV) of everything evaluated so far, after each evaluation;
    ``points`` holds each evaluation's objectives (None for a flagged architecture)."""
    from pymoo.indicators.hv import HV

    indicator = HV(ref_point=reference)
    front = np.empty((0, len(reference)))
    value, curve = 0.0, np.zeros(len(points))
    for i, point in enumerate(points):
        if point is not None and np.all(np.asarray(point) < reference) and not np.any(np.all(front <= point, axis=1)):
            front = np.vstack([front[~np.all(np.asarray(point) <= front, axis=1)], point])
            value = float(indicator(front))
        curve[i] = value
    return curve


def run_measures(problem, run: dict, reference: np.ndarray) -> dict:
    """A run's hypervolume curve, its front (archive records) and its best R-Score."""
    points = [objectives(problem, key) for key in run["evaluated"]]
    valid = [(key, point) for key, point in zip(run["evaluated"], points) if point is not None]
    unique = dict(valid)  # each architecture once, with its objectives
    front = nondominated([problem.archive.get(problem.proxy_id, key) for key in unique], list(unique.values()))
    best = max((math.exp(-point[0]) for _, point in valid), default=float("nan"))
    return {"curve": hypervolume_curve(points, reference), "front": front, "best": best}


def summarise(config: dict, measured: dict[str, list]) -> tuple[list[dict], float]:
    """One table row per algorithm, and the hypervolume target (90 % of the best final one)."""
    from scipy.stats import mannwhitneyu

    finals = {label: np.array([m["curve"][-1] for m in runs]) for label, runs in measured.items()}
    target = TARGET_SHARE * max((values.max() for values in finals.values() if len(values)), default=0.0)
    baseline = finals.get(config["baseline"], np.array([]))
    rows = []
    for label, runs in measured.items():
        reached = [int(np.argmax(m["curve"] >= target)) + 1 for m in runs if target > 0 and m["curve"][-1] >= target]
        best = np.array([m["best"] for m in runs])
        compared = label != config["baseline"] and len(finals[label]) and len(baseline)
        rows.append({
            "algorithm": label, "runs": len(runs), "hv_mean": finals[label].mean(), "hv_std": finals[label].std(),
            "best_r_score_mean": best.mean(), "best_r_score_std": best.std(),
            "evaluations_to_target_mean": float(np.mean(reached)) if reached else float("nan"),
            "runs_reaching_target": len(reached),
            # two-sided Wilcoxon rank-sum (Mann-Whitney U), exact for small samples without ties
            "p_value_vs_baseline": (float(mannwhitneyu(finals[label], baseline, alternative="two-sided").pvalue)
                                    if compared else float("nan"))})
    return rows, target


def markdown_table(rows: list[dict], config: dict, target: float) -> str:
    lines = [f"| algorithm | runs | final HV (mean ± std) | best R-Score (mean ± std) | evaluations to "
             f"{TARGET_SHARE:.0%} of the best HV ({target:.3f}) | p vs {config['baseline']} |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        reached = "never" if not row["runs_reaching_target"] else f"{row['evaluations_to_target_mean']:.0f}" + (
            "" if row["runs_reaching_target"] == row["runs"] else f" ({row['runs_reaching_target']}/{row['runs']} runs)")
        p_value = "—" if math.isnan(row["p_value_vs_baseline"]) else f"{row['p_value_vs_baseline']:.3g}"
        lines.append(f"| {row['algorithm']} | {row['runs']} | {row['hv_mean']:.4f} ± {row['hv_std']:.4f} | "
                     f"{row['best_r_score_mean']:.1f} ± {row['best_r_score_std']:.1f} | {reached} | {p_value} |")
    return "\n".join(lines) + "\n"


def write_report(folder: Path, problem, config: dict, runs: list[dict]):
    """The table (CSV and Markdown), hypervolume.csv, summary.json and both plots from the runs
    finished so far."""
    reference = reference_point(config)
    measured = {label: [] for label in config["algorithms"]}
    for run in runs:
        measured.setdefault(run["algorithm"], []).append({**run, **run_measures(problem, run, reference)})
    measured = {label: found for label, found in measured.items() if found}
    rows, target = summarise(config, measured)
    write_csv(folder / "table.csv", rows, list(TABLE_COLUMNS))
    write_atomic(folder / "table.md", markdown_table(rows, config, target))
    write_csv(folder / "hypervolume.csv",
              ({"algorithm": label, "seed": m["seed"], "evaluations": n + 1, "hypervolume": value}
               for label, found in measured.items() for m in found for n, value in enumerate(m["curve"])),
              ["algorithm", "seed", "evaluations", "hypervolume"])
    write_json(folder / "summary.json", {
        "objective_space": OBJECTIVE_SPACE, "reference_point": reference.tolist(),
        "hypervolume": "pymoo HV of the non-dominated set of every architecture a run evaluated so far; the "
                       "calibration sample is no run's evaluation",
        "target_hypervolume": target, "baseline": config["baseline"], "seeds": config["seeds"],
        "evaluations": config["evaluations"], "calibration": problem.calibration,
        "wall_seconds": round(sum(m["wall_seconds"] for found in measured.values() for m in found), 2),
        "table": rows})
    plot_hypervolume(folder / "hypervolume.png", measured, config, reference)
    plot_fronts(folder / "fronts.png", problem, measured, config)


def _save(figure, path: Path):
    import matplotlib.pyplot as plt
    figure.tight_layout()
    write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(8, 5))


def plot_hypervolume(path: Path, measured: dict, config: dict, reference: np.ndarray):
    figure, axes = _figure()
    for label, found in measured.items():
        curves = np.array([m["curve"] for m in found])
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        steps = np.arange(1, curves.shape[1] + 1)
        line, = axes.plot(steps, mean, lw=1.5, label=f"{label} ({len(found)} seeds)")
        axes.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15, lw=0)
    axes.set_xlabel("evaluations")
    axes.set_ylabel("hypervolume (mean ± std over seeds)")
    axes.set_title(f"hypervolume in {OBJECTIVE_SPACE},\nreference point ({reference[0]:g}, {reference[1]:g}); "
                   f"{config['space']}/{config['dataset']}, {config['preset']}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    _save(figure, path)


def plot_fronts(path: Path, problem, measured: dict, config: dict):
    figure, axes = _figure()
    for label, found in measured.items():
        color = None
        for m in found:
            params = [record["params"] for record in m["front"]]
            scores = [problem.r_score(record) for record in m["front"]]
            line, = axes.step(params, scores, where="post", marker="o", ms=3, lw=0.8, alpha=0.7, color=color,
                              label=None if color else f"{label} ({len(found)} seeds)")
            color = line.get_color()
    axes.set_yscale("log")
    axes.set_xlabel("Params of the evaluation network (M)")
    axes.set_ylabel("R-Score (log scale)")
    axes.set_title(f"each seed's front of everything evaluated, {config['evaluations']} evaluations "
                   f"({config['space']}/{config['dataset']}, {config['preset']})", fontsize=9)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8, loc="lower right")
    _save(figure, path)
