"""Differentiable barycentrics and depth of known faces at pixel centres, on covered pixels only.

Per-pixel work runs on the M covered pixels of a batch (``CoveredPixels``), listed in raster order,
and is scattered into dense (B, H, W, ...) buffers at the end: for faces that fill a third to a half
of the frame this halves or thirds every per-pixel cost, forward and backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class CoveredPixels:
    """The covered pixels of a (B, H, W) face buffer, in raster order.

    Attributes:
        index: (M,) flat index into B * H * W.
        batch: (M,) batch item.
        face: (M,) face index (per mesh).
        x, y: (M,) pixel centre in f2p pixels (integers, as the index dtype).
        shape: (B, H, W).
    """

    index: Tensor
    batch: Tensor
    face: Tensor
    x: Tensor
    y: Tensor
    shape: tuple[int, int, int]

    @classmethod
    def from_pix_to_face(cls, pix_to_face: Tensor) -> CoveredPixels:
        """List the pixels of a (B, H, W) ``pix_to_face`` buffer that are not -1."""
        B, H, W = pix_to_face.shape
        flat = pix_to_face.reshape(-1)
        index = (flat >= 0).nonzero().squeeze(1)
        batch, rest = index // (H * W), index % (H * W)
        return cls(index=index, batch=batch, face=flat[index], x=rest % W, y=rest // W, shape=(B, H, W))

    def scatter(self, values: Tensor, fill: float | Tensor = 0.0) -> Tensor:
        """(M, C) per-pixel values -> (B, H, W, C) dense buffer with ``fill`` (a scalar or a (C,) tensor)
        on uncovered pixels; differentiable with respect to ``values`` (and a tensor ``fill``)."""
        B, H, W = self.shape
        C = values.shape[1]
        dense = torch.as_tensor(fill, dtype=values.dtype, device=values.device).expand(B * H * W, C)
        return dense.index_copy(0, self.index, values).view(B, H, W, C)

    def gather(self, dense: Tensor) -> Tensor:
        """(B, H, W, C) dense buffer -> (M, C) values at the covered pixels."""
        return dense.reshape(-1, dense.shape[-1]).index_select(0, self.index)


def corner_values(values: Tensor, faces: Tensor, batch: Tensor, face: Tensor) -> Tensor:
    """Per-vertex values at the corners of one face per entry, corner-major.

    Args:
        values: (B, V, C) per-vertex values (positions, normals, colours, ...).
        faces: (F, 3) faces indexing V.
        batch: (M,) batch item of each entry.
        face: (M,) face of each entry, in [0, F).

    Returns:
        (3 corners, M, C): each corner a contiguous block; differentiable with respect to ``values``
        (one index_select on the flattened table).
    """
    B, V, C = values.shape
    rows = faces.index_select(0, face).T + batch * V  # (3, M) rows of the flat values
    return values.reshape(B * V, C).index_select(0, rows.reshape(-1)).view(3, -1, C)


def barycentrics_of(screen_verts: Tensor, faces: Tensor, pixels: CoveredPixels,
                    perspective_correct: bool) -> tuple[Tensor, Tensor]:
    """Barycentrics and depth of each covered pixel's face at the pixel centre, differentiably.

    Screen-space weights ``b`` come from edge functions; with ``perspective_correct`` they become
    ``b_i / Z_i / sum_j (b_j / Z_j)`` and the depth is ``1 / sum_j (b_j / Z_j)``, otherwise the depth
    is ``sum_j b_j Z_j``.

    Returns:
        bary: (M, 3) and zbuf: (M,).
    """
    tri = corner_values(screen_verts, faces, pixels.batch, pixels.face)  # (3 corners, M, 3 xyz)
    (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = tri.permute(2, 0, 1).contiguous()  # (M,) each, contiguous
    e1x, e1y, e2x, e2y = x1 - x0, y1 - y0, x2 - x0, y2 - y0
    dx, dy = pixels.x.to(tri.dtype) - x0, pixels.y.to(tri.dtype) - y0
    inverse_area2 = 1.0 / (e1x * e2y - e2x * e1y)
    b1 = (dx * e2y - dy * e2x) * inverse_area2
    b2 = (e1x * dy - e1y * dx) * inverse_area2
    b0 = 1.0 - b1 - b2
    if not perspective_correct:
        return torch.stack([b0, b1, b2], -1), b0 * z0 + b1 * z1 + b2 * z2
    w0, w1, w2 = b0 / z0, b1 / z1, b2 / z2
    depth = 1.0 / (w0 + w1 + w2)
    return torch.stack([w0 * depth, w1 * depth, w2 * depth], -1), depth


def barycentrics_at_pixels(screen_verts: Tensor, faces: Tensor, pix_to_face: Tensor,
                           perspective_correct: bool) -> tuple[Tensor, Tensor]:
    """Dense version of ``barycentrics_of``.

    Args:
        screen_verts: (B, V, 3) ``(u, v, Z)``.
        faces: (F, 3).
        pix_to_face: (B, H, W) long, -1 where empty.
        perspective_correct: interpolate for a pinhole camera.

    Returns:
        bary: (B, H, W, 3), 0 where empty.
        zbuf: (B, H, W), 0 where empty.
    """
    pixels = CoveredPixels.from_pix_to_face(pix_to_face)
    bary, zbuf = barycentrics_of(screen_verts, faces, pixels, perspective_correct)
    return pixels.scatter(bary), pixels.scatter(zbuf[:, None])[..., 0]
