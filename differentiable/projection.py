"""The projection of α onto the feasible set {F(α) ≤ H}: eq. 9 of RNAS-FD,
min ½‖α − α_p‖² subject to F(α_p) ≤ H, solved by a Lagrangian method.

The Lagrangian ½‖α − α_p‖² + ν·(F(α_p) − H) is stationary at α_p = α − ν∇F(α_p), ν ≥ 0. Each
iteration linearises F at the current iterate α_k and solves that problem's Lagrangian exactly:
its multiplier is ν_k = max(0, F(α_k) + ∇F(α_k)·(α − α_k) − H) / ‖∇F(α_k)‖² and its solution
α_{k+1} = α − ν_k∇F(α_k). A fixed point satisfies eq. 9's KKT conditions; on a feasible α the
multiplier is zero and α comes back unchanged. The step is invariant to the scale of F (H = 1e-5
needs no tuning), and F may be a fresh stochastic estimate at every iterate (one batch each).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Projection:
    alpha: torch.Tensor       # the projected point α_p
    multiplier: float         # the last iteration's Lagrange multiplier ν
    values: list[float]       # F at each iterate α_0 = α, ..., α_{K-1}


def project(alpha: torch.Tensor, value_and_gradient: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
            bound: float, iterations: int) -> Projection:
    """α_p after ``iterations`` linearised Lagrangian steps; ``value_and_gradient(a)`` returns
    (F(a), ∇F(a)) for a point shaped like ``alpha``."""
    anchor = alpha.detach()
    point = anchor.clone()
    values, multiplier = [], 0.0
    for _ in range(iterations):
        value, gradient = value_and_gradient(point)
        values.append(float(value))
        gradient = gradient.detach().to(anchor.dtype)
        squared_norm = float(gradient.pow(2).sum())
        violation = float(value) + float((gradient * (anchor - point)).sum()) - bound
        # a vanishing gradient leaves nothing to move along: stay at α
        multiplier = max(0.0, violation) / squared_norm if squared_norm > 0 else 0.0
        point = anchor - multiplier * gradient
    return Projection(point, multiplier, values)
