"""Landmark accuracy: normalised mean error (NME) and matching detections to annotated faces.

NME here is the mean point-to-point distance divided by ``sqrt(w * h)`` of the annotation's bounding box (the
"box" normalisation of the Menpo and AFLW2000-3D benchmarks), so it is comparable across face sizes and poses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from f2p.perception.detection import FaceDetection, box_iou


def points_box(points: Tensor) -> Tensor:
    """(..., L, 2) points -> (..., 4) x0, y0, x1, y1 of their bounding box."""
    return torch.cat([points.min(dim=-2).values, points.max(dim=-2).values], dim=-1)


def box_size(points: Tensor) -> Tensor:
    """(..., L, 2) points -> (...) ``sqrt(w * h)`` of their bounding box."""
    x0, y0, x1, y1 = points_box(points).unbind(-1)
    return ((x1 - x0) * (y1 - y0)).clamp_min(0).sqrt()


def nme(prediction: Tensor, target: Tensor, size: Tensor | None = None) -> Tensor:
    """Normalised mean error (a fraction, not a percentage).

    Args:
        prediction, target: (..., L, 2) predicted and annotated points.
        size: (...) normaliser, default ``box_size(target)``; pass the 68-point box size when scoring a subset.

    Returns:
        (...) mean point distance / size.
    """
    size = box_size(target) if size is None else size
    return (prediction - target).norm(dim=-1).mean(-1) / size.clamp_min(1e-8)


def match_face(faces: Sequence[FaceDetection], points: Tensor, min_iou: float = 0.3) -> FaceDetection | None:
    """The detection whose landmark box overlaps the annotated face's box most, or None below ``min_iou``.

    Args:
        faces: detections of one photo.
        points: (L, 2) annotated points of one face.
        min_iou: smallest accepted overlap of the two landmark boxes.
    """
    target = points_box(points)
    scored = [(float(box_iou(points_box(face.landmarks), target)), face) for face in faces]
    best = max(scored, key=lambda item: item[0], default=(0.0, None))
    return best[1] if best[0] >= min_iou else None
