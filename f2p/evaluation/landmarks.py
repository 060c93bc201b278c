"""Landmark accuracy as the field reports it: NME over 68 and 51 points with two normalisers, cumulative error
distribution (CED) curves and the area under them.

Normalisers (of the annotation, never of the prediction):
    box   ``sqrt(w * h)`` of the 68 annotated points' bounding box (AFLW2000-3D, Menpo; 3DDFA, SynergyNet);
          the 51-point score uses the same 68-point box so that the two are comparable.
    eyes  distance of the outer eye corners 36 and 45 (300-W "inter-ocular").
Five-point annotations (eye centres, nose tip, mouth corners) are scored on the five points derived from the 68
predicted ones, normalised by the annotated eye-centre distance.

Errors are fractions (0.035 = 3.5 %). A photo that failed counts as an infinite error in CED and AUC, so a tool
cannot improve its curve by refusing hard photos; means and medians are over the photos that produced landmarks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.conventions import INNER_51, LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from f2p.perception.crop import five_points
from f2p.perception.landmark_metrics import box_size, nme

NORMALISERS = ("box", "eyes")
AUC_LIMITS = {"box": 0.07, "eyes": 0.08}
"""Error at which the CED is cut for its AUC: 7 % for the box normaliser (AFLW2000-3D/Menpo practice), 8 % for the
eye-corner normaliser (300-W challenge)."""
LANDMARK_METRICS = ("nme68_box", "nme51_box", "nme68_eyes", "nme51_eyes")


def eye_corner_distance(points: Tensor) -> Tensor:
    """(..., 68, 2) annotated points -> (...) distance of the outer eye corners (36, 45)."""
    return (points[..., LEFT_EYE_OUTER, :] - points[..., RIGHT_EYE_OUTER, :]).norm(dim=-1)


def landmark_nme(prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
    """All 68-point scores of ``LANDMARK_METRICS``.

    Args:
        prediction, target: (..., 68, 2) predicted and annotated points, pixels.

    Returns:
        {"nme68_box", "nme51_box", "nme68_eyes", "nme51_eyes": (...) fractions}.
    """
    inner = list(INNER_51)
    sizes = {"box": box_size(target), "eyes": eye_corner_distance(target)}
    scores = {}
    for name, size in sizes.items():
        scores[f"nme68_{name}"] = nme(prediction, target, size)
        scores[f"nme51_{name}"] = nme(prediction[..., inner, :], target[..., inner, :], size)
    return scores


def five_point_nme(prediction: Tensor, target: Tensor) -> Tensor:
    """(B, 68, 2) predicted and (B, 5, 2) annotated points -> (B,) NME over the 5 points, normalised by the
    annotated eye-centre distance."""
    return nme(five_points(prediction), target, (target[:, 0] - target[:, 1]).norm(dim=-1))


def cumulative_error(errors: Tensor, thresholds: Tensor) -> Tensor:
    """CED: (N,) errors (inf for failures) and (T,) thresholds -> (T,) fraction of photos with error <= threshold."""
    if errors.numel() == 0:
        return torch.zeros_like(thresholds)
    return (errors[None, :] <= thresholds[:, None]).float().mean(dim=1)


def area_under_curve(errors: Tensor, limit: float) -> float:
    """Area under the CED from 0 to ``limit``, divided by ``limit`` (1 = every error is zero).

    Exactly ``mean(max(0, 1 - e / limit))`` over the (N,) errors, failures (inf) contributing 0.
    """
    if errors.numel() == 0:
        return float("nan")
    return float((1.0 - errors / limit).clamp_min(0.0).mean())


def failure_rate(errors: Tensor, limit: float) -> float:
    """Fraction of the (N,) errors above ``limit`` (failures included)."""
    return float((errors > limit).float().mean()) if errors.numel() else float("nan")
