"""A search's run folder: the front and population as JSON and CSV, the summary, the plot."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from nas_problem.files import write_csv, write_json

COLUMNS = ("genotype", "genotype_json", "r_score", "params_m", "flops_m", "psi", "phi", "valid", "knee",
           "best_r_score", "key")


def knee_index(F: np.ndarray) -> int:
    """The front member farthest from the line through the two extremes of the normalised
    front: the point where trading one objective for the other stops paying off."""
    finite = np.all(np.isfinite(F), axis=1)
    candidates = np.flatnonzero(finite)
    if len(candidates) == 0:
        return 0
    points = F[candidates]
    span = np.ptp(points, axis=0)
    normalised = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
    if len(points) <= 2:
        return int(candidates[np.argmin(normalised.sum(axis=1))])
    start, end = normalised[np.argmin(normalised[:, 0])], normalised[np.argmax(normalised[:, 0])]
    direction = end - start
    length = np.linalg.norm(direction)
    if length == 0:
        return int(candidates[0])
    distance = np.abs(direction[0] * (normalised[:, 1] - start[1]) - direction[1] * (normalised[:, 0] - start[0]))
    return int(candidates[np.argmax(distance / length)])


def describe(problem, records: list[dict]) -> list[dict]:
    """One result row per archive record, scored under the problem's calibration."""
    from nas_problem import Genotype
    rows = []
    for record in records:
        genotype = Genotype.parse(record["genotype"])
        components = record["components"]
        rows.append({"genotype": str(genotype), "genotype_json": json.dumps(genotype.to_json()),
                     "r_score": problem.r_score(record), "params_m": record["params"],
                     "flops_m": record["flops"], "psi": components.get("psi"), "phi": components.get("phi"),
                     "valid": record["valid"], "knee": False, "best_r_score": False, "key": record["key"]})
    return rows


def mark_front(rows: list[dict]) -> dict:
    """Flag the knee and the best-R-Score member of a front; return both rows."""
    if not rows:
        return {}
    F = np.array([[-(r["r_score"] if np.isfinite(r["r_score"]) else -np.inf), r["params_m"]] for r in rows])
    knee = rows[knee_index(F)]
    best = rows[int(np.argmin(F[:, 0]))]
    knee["knee"] = True
    best["best_r_score"] = True
    return {"knee": knee, "best_rscore": best}


def write_table(path: Path, rows: list[dict]):
    write_json(path.with_suffix(".json"), rows)
    write_csv(path.with_suffix(".csv"), rows, COLUMNS)


def run_title(run_dir: Path) -> str:
    """``trnas on darts/digits (seed 0)`` from the run's config.yaml, or the folder's name."""
    try:
        c = yaml.safe_load((run_dir / "config.yaml").read_text())
        return f"{c['algorithm']} on {c['space']}/{c['dataset']} (seed {c['seed']})"
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return run_dir.name


def plot_run(run_dir: Path, title: str = "", path: Path | None = None) -> Path:
    """Pareto-front plot of a run folder: every architecture the search evaluated (not the
    calibration sample), the final population, the front (non-dominated among everything the
    search evaluated), and the knee and best-R-Score architectures labelled; the title names the
    run's algorithm, space, data and seed unless ``title`` is given."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    population = json.loads((run_dir / "population.json").read_text())
    front = json.loads((run_dir / "front.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluated_path = run_dir / "evaluations.json"
    evaluated = json.loads(evaluated_path.read_text()) if evaluated_path.exists() else []
    figure, axes = plt.subplots(figsize=(7, 5))
    if evaluated:
        axes.scatter([r["params_m"] for r in evaluated], [r["r_score"] for r in evaluated], s=8, c="0.8",
                     label=f"scored by the search ({len(evaluated)})")
    axes.scatter([r["params_m"] for r in population], [r["r_score"] for r in population], s=18, c="tab:blue",
                 label="final population")
    ordered = sorted(front, key=lambda r: r["params_m"])
    axes.plot([r["params_m"] for r in ordered], [r["r_score"] for r in ordered], "-o", c="tab:red", ms=5,
              label="Pareto front of everything evaluated")
    for row, text, offset in ((summary.get("knee"), "knee", (10, -18)), (summary.get("best_rscore"), "best R-Score", (-90, 8))):
        if row:
            axes.annotate(f"{text}\n{row['r_score']:.1f}, {row['params_m']:.2f} M", (row["params_m"], row["r_score"]),
                          xytext=offset, textcoords="offset points", fontsize=8,
                          arrowprops=dict(arrowstyle="->", lw=0.8))
            axes.scatter([row["params_m"]], [row["r_score"]], s=90, facecolors="none", edgecolors="k")
    axes.margins(y=0.12)  # room above the front's top for the best R-Score's label
    axes.set_xlabel("Params of the evaluation network (M)")
    axes.set_ylabel("R-Score (higher is more robust)")
    axes.set_title(title or run_title(run_dir))
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path or run_dir / "front.png")
    temporary = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)
    return path
