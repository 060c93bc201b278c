"""Statistics over photos or synthetic faces, shared by both reports."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from f2p.evaluation.landmarks import AUC_LIMITS, LANDMARK_METRICS, area_under_curve, cumulative_error

CED_STEPS = 101


def finite(values: Sequence[float | None]) -> list[float]:
    """The values that are numbers (not None, NaN or infinite)."""
    return [v for v in values if v is not None and math.isfinite(v)]


def statistics(values: Sequence[float | None]) -> dict[str, float | int]:
    """{"n", "mean", "median", "max"} of the finite ``values`` (only "n" when there are none).

    The median of an even count is the mean of the two middle values.
    """
    kept = torch.tensor(finite(values), dtype=torch.float64)
    if kept.numel() == 0:
        return {"n": 0}
    ordered = kept.sort().values
    middle = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    return {"n": len(kept), "mean": float(kept.mean()), "median": float(middle), "max": float(kept.max())}


def ced_curve(errors: Sequence[float | None], limit: float) -> dict[str, list[float] | float]:
    """CED data of ``errors`` (None or inf = failed, counted as never below a threshold) from 0 to ``limit``:
    {"thresholds": (CED_STEPS,), "fraction": (CED_STEPS,), "auc": area to ``limit`` / ``limit``}."""
    values = torch.tensor([math.inf if e is None else e for e in errors], dtype=torch.float64)
    thresholds = torch.linspace(0.0, limit, CED_STEPS, dtype=torch.float64)
    return {"thresholds": thresholds.tolist(), "fraction": cumulative_error(values, thresholds).tolist(),
            "auc": area_under_curve(values, limit)}


def landmark_summary(records: list[dict]) -> dict:
    """NME statistics (items that produced landmarks) and CED/AUC (failures counted) of records with "status" and the
    ``LANDMARK_METRICS`` (and optionally "nme68_box_reannotated")."""
    ok = [r for r in records if r["status"] == "ok"]
    summary = {"count": len(records), "failed": len(records) - len(ok),
               **{metric: statistics([r[metric] for r in ok]) for metric in LANDMARK_METRICS}}
    for metric in ("detected_nme68_box", "detected_nme51_box"):  # the fit's input, where the records have it
        values = [r[metric] for r in ok if r.get(metric) is not None]
        if values:
            summary[metric] = statistics(values)
    reannotated = [r["nme68_box_reannotated"] for r in ok if r.get("nme68_box_reannotated") is not None]
    if reannotated:
        summary["nme68_box_reannotated"] = statistics(reannotated)
    summary["ced_box"] = ced_curve([r["nme68_box"] for r in records], AUC_LIMITS["box"])
    summary["ced_eyes"] = ced_curve([r["nme68_eyes"] for r in records], AUC_LIMITS["eyes"])
    return summary
