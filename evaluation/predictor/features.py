"""Cheap graph features of a genotype: what a learned predictor reads besides proxy values.
No network is built and no data is used; each space lists its features in a fixed order, so a
fitted model can check that it is read with the columns it was fitted on."""
from __future__ import annotations

from nas_problem.genotype import DARTS_OPS, N_NODES, NONE_OP
from nas_problem.nb201 import NB201_EDGES, NB201_NODES, NB201_OPS

PARAMETRIC_DARTS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def _darts_cell(cell, kind: str) -> dict:
    """Operation counts, edges reading the cell inputs, and the longest chain of operations
    from an input to the output (in operations) of one DARTS cell."""
    features = {f"{kind}_{op}": float(sum(o == op for o, _ in cell)) for op in DARTS_OPS + (NONE_OP,)}
    features[f"{kind}_parametric"] = float(sum(o in PARAMETRIC_DARTS_OPS for o, _ in cell))
    features[f"{kind}_input_edges"] = float(sum(source < 2 for _, source in cell))
    # depth of each state: inputs 0, a node one more than its deepest input ("none" edges carry nothing)
    depth = [0, 0]
    for node in range(N_NODES):
        edges = [(op, source) for op, source in cell[2 * node:2 * node + 2] if op != NONE_OP]
        depth.append(1 + max((depth[source] for _, source in edges), default=-1))
    features[f"{kind}_longest_path"] = float(max(depth[2:]))
    features[f"{kind}_total_depth"] = float(sum(depth[2:]))
    return features


def darts_features(genotype) -> dict:
    return {**_darts_cell(genotype.normal, "normal"), **_darts_cell(genotype.reduce, "reduce")}


def nb201_features(genotype) -> dict:
    """Operation counts, and the longest and shortest path from input to output counted in
    operations that carry the signal (0 when the output is disconnected)."""
    features = {f"{op}": float(sum(o == op for o in genotype.ops)) for op in NB201_OPS}
    longest, shortest = [0], [0]
    for node in range(1, NB201_NODES):
        incoming = [source for (n, source), op in zip(NB201_EDGES, genotype.ops)
                    if n == node and op != "none" and longest[source] >= 0]
        longest.append(1 + max((longest[s] for s in incoming), default=-2))
        shortest.append(1 + min((shortest[s] for s in incoming), default=-2))
    features["longest_path"] = float(max(longest[-1], 0))
    features["shortest_path"] = float(max(shortest[-1], 0))
    return features


FEATURES = {"darts": darts_features, "nb201": nb201_features}


def genotype_features(genotype) -> dict:
    """``{feature name: value}`` of ``genotype`` in its space's fixed order."""
    return FEATURES[genotype.space_name](genotype)
