"""Landmark reprojection loss."""

from __future__ import annotations

from torch import Tensor


def landmark_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
    """Weighted mean squared landmark distance, normalised by a per-image face size.

    ``loss_b = sum_l w_bl * ||pred_bl - target_bl||^2 / s_b^2 / sum_l w_bl``

    Args:
        pred: (B, L, 2) predicted pixel positions.
        target: (B, L, 2) observed pixel positions.
        weights: (B, L) or (L,) non-negative weights (e.g. detector confidence x per-point weight), or None.
        scale: (B,) face size in pixels (e.g. sqrt of the landmark box area), or None for 1.

    Returns:
        (B,) loss per image; scale-free when ``scale`` is the face size.
    """
    B, L, _ = pred.shape
    if target.shape != pred.shape:
        raise ValueError(f"pred and target must both be (B, L, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")
    w = pred.new_ones(B, L) if weights is None else weights.expand(B, L).to(pred)
    sq = ((pred - target) ** 2).sum(-1)  # (B, L)
    loss = (w * sq).sum(1) / w.sum(1).clamp_min(1e-8)
    if scale is not None:
        loss = loss / scale.clamp_min(1e-8) ** 2
    return loss


def face_size(landmarks: Tensor) -> Tensor:
    """(B, L, 2) landmarks -> (B,) sqrt of their bounding-box area in pixels."""
    extent = landmarks.amax(1) - landmarks.amin(1)  # (B, 2)
    return (extent[:, 0] * extent[:, 1]).clamp_min(1e-8).sqrt()


def robust_landmark_loss(pred: Tensor, target: Tensor, weights: Tensor, scale: Tensor, sigma: float) -> Tensor:
    """Weighted mean Geman-McClure landmark distance, normalised by a per-image face size.

    ``d_bl = ||pred_bl - target_bl|| / s_b``, ``loss_b = sum_l w_bl * sigma^2 d^2 / (d^2 + sigma^2) / sum_l w_bl``:
    like ``landmark_loss`` for errors well below ``sigma`` (in face sizes), bounded above for outliers (a detector's
    wrong point pulls no harder than ``sigma`` of error).

    Args:
        pred, target: (B, L, 2) pixel positions.
        weights: (B, L) non-negative weights.
        scale: (B,) face size in pixels.
        sigma: error (in face sizes) beyond which a point's pull levels off.

    Returns:
        (B,) loss per image.
    """
    if target.shape != pred.shape:
        raise ValueError(f"pred and target must both be (B, L, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")
    d2 = ((pred - target) ** 2).sum(-1) / scale.clamp_min(1e-8)[:, None] ** 2  # (B, L)
    rho = sigma**2 * d2 / (d2 + sigma**2)
    return (weights * rho).sum(1) / weights.sum(1).clamp_min(1e-8)
