"""Differentiable barycentrics and depth of known faces at pixel centres."""

from __future__ import annotations

import torch
from torch import Tensor

_REFERENCE_TRIANGLE = ((0.0, 0.0, 1.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0))
"""A well-conditioned stand-in triangle for empty pixels, so no NaN reaches any gradient."""


def pixel_grid(H: int, W: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(H, W) x and y coordinates of pixel centres in f2p pixels (integers)."""
    ys = torch.arange(H, device=device, dtype=dtype)
    xs = torch.arange(W, device=device, dtype=dtype)
    return xs.expand(H, W), ys[:, None].expand(H, W)


def gather_corners(values: Tensor, faces: Tensor, face_index: Tensor) -> Tensor:
    """Per-vertex values at the corners of one face per entry.

    Args:
        values: (B, V, C) per-vertex values (positions, normals, colours, ...).
        faces: (F, 3) faces indexing V.
        face_index: (B, ...) long face per entry, each in [0, F).

    Returns:
        (B, ..., 3 corners, C), differentiable with respect to ``values`` (one index_select).
    """
    B, V, C = values.shape
    corner = faces[face_index]  # (B, ..., 3)
    offset = (torch.arange(B, device=faces.device) * V).view(B, *([1] * (corner.ndim - 1)))
    flat = values.reshape(B * V, C).index_select(0, (corner + offset).reshape(-1))
    return flat.view(*corner.shape, C)


def barycentrics_at_pixels(screen_verts: Tensor, faces: Tensor, pix_to_face: Tensor,
                           perspective_correct: bool) -> tuple[Tensor, Tensor]:
    """Barycentrics and depth of each pixel's face at the pixel centre, differentiably.

    Screen-space weights ``b`` come from edge functions; with ``perspective_correct`` they become
    ``b_i / Z_i / sum_j (b_j / Z_j)`` and the depth is ``1 / sum_j (b_j / Z_j)``, otherwise the depth
    is ``sum_j b_j Z_j``.

    Args:
        screen_verts: (B, V, 3) ``(u, v, Z)``.
        faces: (F, 3).
        pix_to_face: (B, H, W) long, -1 where empty.
        perspective_correct: interpolate for a pinhole camera.

    Returns:
        bary: (B, H, W, 3), 0 where empty.
        zbuf: (B, H, W), 0 where empty.
    """
    B, H, W = pix_to_face.shape
    covered = pix_to_face >= 0
    tri = gather_corners(screen_verts, faces, pix_to_face.clamp(min=0))  # (B, H, W, 3, 3)
    reference = torch.tensor(_REFERENCE_TRIANGLE, device=tri.device, dtype=tri.dtype)
    tri = torch.where(covered[..., None, None], tri, reference)
    x, y, z = tri.unbind(-1)  # (B, H, W, 3) each
    px, py = pixel_grid(H, W, tri.device, tri.dtype)
    e1x, e1y = x[..., 1] - x[..., 0], y[..., 1] - y[..., 0]
    e2x, e2y = x[..., 2] - x[..., 0], y[..., 2] - y[..., 0]
    dx, dy = px - x[..., 0], py - y[..., 0]
    area2 = e1x * e2y - e2x * e1y
    b1 = (dx * e2y - dy * e2x) / area2
    b2 = (e1x * dy - e1y * dx) / area2
    b = torch.stack([1.0 - b1 - b2, b1, b2], -1)
    if perspective_correct:
        weights = b / z
        inverse_depth = weights.sum(-1)
        bary = weights / inverse_depth[..., None]
        zbuf = 1.0 / inverse_depth
    else:
        bary = b
        zbuf = (b * z).sum(-1)
    bary = torch.where(covered[..., None], bary, torch.zeros_like(bary))
    zbuf = torch.where(covered, zbuf, torch.zeros_like(zbuf))
    return bary, zbuf
