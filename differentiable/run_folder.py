"""A differentiable search's run folder, beside ``config.yaml``, ``log.txt`` and ``checkpoint.pt``:
``progress.csv`` (one row per epoch), ``alpha.json`` and the heat-map ``alpha.png`` (rewritten every
epoch), and at the end ``summary.json`` and ``genotype.txt`` (the text ``trnas train genotype=`` takes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F

from nas_problem import count_flops, count_params
from nas_problem.files import write_atomic, write_csv, write_json
from nas_problem.supernet import Supernet, edge_inputs

LOOP_COLUMNS = ("epoch", "phase", "lr")
TAIL_COLUMNS = ("genotype", "epoch_s", "elapsed_s")


def write_progress(folder: Path, history: list[dict], metrics: tuple) -> None:
    write_csv(folder / "progress.csv", history, [*LOOP_COLUMNS, *metrics, *TAIL_COLUMNS])


def edge_labels() -> list[str]:
    """``3<-1``: the edge into state 3 (intermediate node 1) from state 1 (states 0, 1: cell inputs)."""
    return [f"{node + 2}<-{state}" for node, state in edge_inputs()]


def alpha_record(supernet: Supernet) -> dict:
    record = {"ops": list(supernet.ops), "edges": edge_labels()}
    for cell, alpha in (("normal", supernet.alpha_normal), ("reduce", supernet.alpha_reduce)):
        alpha = alpha.detach().cpu().double()
        record[cell] = {"alpha": alpha.tolist(), "weights": F.softmax(alpha, dim=-1).tolist()}
    return record


def write_alpha(folder: Path, supernet: Supernet, title: str) -> None:
    record = alpha_record(supernet)
    write_json(folder / "alpha.json", record)
    plot_alpha(record, folder / "alpha.png", title, supernet.genotype())


def plot_alpha(record: dict, path: Path, title: str, genotype) -> None:
    """softmax(α) of both cells as heat maps, the operations the genotype keeps ringed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for axis, cell, pairs in ((axes[0], "normal", genotype.normal), (axes[1], "reduce", genotype.reduce)):
        weights = np.array(record[cell]["weights"])
        image = axis.imshow(weights, cmap="viridis", vmin=0, aspect="auto")
        axis.set_xticks(range(len(record["ops"])), record["ops"], rotation=45, ha="right", fontsize=8)
        axis.set_yticks(range(len(record["edges"])), record["edges"], fontsize=8)
        axis.set_title(f"{cell} cell: softmax(alpha)")
        rows = edge_inputs()
        for position, (op, state) in enumerate(pairs):
            edge = rows.index((position // 2, state))
            axis.scatter([record["ops"].index(op)], [edge], s=120, facecolors="none", edgecolors="r")
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.suptitle(f"{title} (ringed: the derived genotype)")
    figure.tight_layout()
    write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=100))
    plt.close(figure)


def write_summary(folder: Path, supernet: Supernet, config: dict, history: list[dict], num_classes: int,
                  resources: dict) -> dict:
    """The derived genotype with its evaluation network's Params and FLOPs (C = 36, 20 cells)."""
    genotype = supernet.genotype()
    last = history[-1]
    summary = {
        "algorithm": config["algorithm"], "variant": config["variant"], "seed": config["seed"],
        "dataset": config["dataset"], "epochs": last["epoch"], "genotype": str(genotype),
        "genotype_json": genotype.to_json(),
        "params_m": count_params(genotype, num_classes=num_classes),
        "flops_m": count_flops(genotype, num_classes=num_classes),
        "last_epoch": {k: v for k, v in last.items() if k != "genotype"},
        "wall_seconds": round(last["elapsed_s"], 2), "memory": resources,
    }
    write_json(folder / "summary.json", summary)
    write_atomic(folder / "genotype.txt", str(genotype) + "\n")
    return summary
