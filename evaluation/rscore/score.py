"""The R-Score from its components (paper §3.3, docs/design.md §5): R = Ψ̂^½ · Φ̂, with log Ψ and
log Φ mapped onto [1, 100] across a calibration set's range and on past it (:func:`rescale`)."""
from __future__ import annotations

import math

from ..registry import ProxyError


def components_valid(components) -> bool:
    """Ψ and Φ present, finite and positive: anything else flags the architecture."""
    try:
        values = (float(components["psi"]), float(components["phi"]))
    except (KeyError, TypeError, ValueError):
        return False
    return all(math.isfinite(v) and v > 0 for v in values)


def calibrate_components(components_list) -> dict | None:
    """lo/hi of log Ψ and log Φ over the entries whose Ψ and Φ are finite and positive;
    ``None`` when there is none (scores then fall back to raw Ψ^½ · Φ)."""
    valid = [c for c in components_list if components_valid(c)]
    if not valid:
        return None
    log_psi = [math.log(float(c["psi"])) for c in valid]
    log_phi = [math.log(float(c["phi"])) for c in valid]
    return {"log_psi": [min(log_psi), max(log_psi)], "log_phi": [min(log_phi), max(log_phi)]}


def rescale(log_value: float, bounds) -> float:
    """Place ``log_value`` on the calibration scale: with t = (log v − lo) / (hi − lo), the
    calibration range maps onto [1, 100] by 1 + 99·t, and values above it continue on that
    line, so an architecture beyond the sample keeps its order instead of tying at a ceiling.
    Below the range 1 / (1 − 99·t) keeps the value positive and strictly increasing, meeting
    the line at lo with the same slope. A degenerate calibration (lo == hi, one distinct
    value) measures t in natural-log units from that value."""
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ProxyError(f"bad calibration bounds {list(bounds)}: need finite lo <= hi")
    t = (log_value - lo) / (hi - lo if hi > lo else 1.0)
    return 1.0 + 99.0 * t if t >= 0 else 1.0 / (1.0 - 99.0 * t)


def rscore_value(components, calibration=None) -> float:
    """R = Ψ̂^½ · Φ̂; with ``calibration=None``, R = Ψ^½ · Φ. NaN for a flagged architecture."""
    if not components_valid(components):
        return float("nan")
    psi_value, phi_value = float(components["psi"]), float(components["phi"])
    if calibration is None:
        return math.sqrt(psi_value) * phi_value
    try:
        bounds_psi, bounds_phi = calibration["log_psi"], calibration["log_phi"]
    except (KeyError, TypeError):
        raise ProxyError(f"an R-Score calibration needs 'log_psi' and 'log_phi' bounds, got {calibration!r}") from None
    return math.sqrt(rescale(math.log(psi_value), bounds_psi)) * rescale(math.log(phi_value), bounds_phi)


def normalise_over_set(components_list) -> list:
    """R-Scores of a fixed set (e.g. a benchmark), normalised over the set itself."""
    components_list = list(components_list)
    calibration = calibrate_components(components_list)
    return [rscore_value(c, calibration) for c in components_list]

