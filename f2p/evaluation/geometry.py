"""Rigid (Procrustes) alignment and per-vertex errors of meshes in model space."""

from __future__ import annotations

import torch
from torch import Tensor


def rigid_align(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares rotation and translation (no scale) taking ``source`` onto ``target`` (Kabsch).

    Args:
        source, target: (..., N, 3) corresponding points.

    Returns:
        R: (..., 3, 3) proper rotation (det +1) and t: (..., 3) with ``target ~= source @ R.T + t``.
    """
    mu_s, mu_t = source.mean(dim=-2), target.mean(dim=-2)  # (..., 3)
    covariance = (target - mu_t[..., None, :]).transpose(-1, -2) @ (source - mu_s[..., None, :])  # (..., 3, 3)
    U, _, Vh = torch.linalg.svd(covariance)
    # Flip the last singular direction when U @ Vh would be a reflection.
    sign = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1))
    R = U @ D @ Vh
    return R, mu_t - (R @ mu_s[..., None])[..., 0]


def vertex_errors(prediction: Tensor, target: Tensor, region: Tensor, align: bool = False) -> Tensor:
    """Distances of corresponding vertices inside ``region``, in the units of the input.

    Args:
        prediction, target: (B, V, 3) meshes with shared topology.
        region: (V,) bool, the vertices that count (e.g. ``model.face_region``).
        align: first move ``prediction`` rigidly onto ``target`` over the region (``rigid_align``).

    Returns:
        (B, V_region) per-vertex distances.
    """
    prediction, target = prediction[:, region], target[:, region]
    if align:
        R, t = rigid_align(prediction, target)
        prediction = prediction @ R.transpose(-1, -2) + t[:, None]
    return (prediction - target).norm(dim=-1)
