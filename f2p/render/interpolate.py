"""Interpolate per-vertex attributes over rasterized pixels."""

from __future__ import annotations

from torch import Tensor

from f2p.render.rasterize.barycentric import CoveredPixels, corner_values
from f2p.render.rasterize.fragments import Fragments


def interpolate_at(values: Tensor, faces: Tensor, pixels: CoveredPixels, bary: Tensor) -> Tensor:
    """Barycentric interpolation of per-vertex values at covered pixels.

    Args:
        values: (B, V, C) per-vertex values (or per UV vertex, with ``faces`` = UV faces).
        faces: (F, 3) faces indexing V, in the order the pixels were rasterized with.
        pixels: the M covered pixels.
        bary: (M, 3) their barycentrics.

    Returns:
        (M, C) interpolated values.
    """
    if values.ndim != 3 or values.shape[0] != pixels.shape[0]:
        raise ValueError(f"values must have shape (B, V, C) with B = {pixels.shape[0]}, got {tuple(values.shape)}")
    c0, c1, c2 = corner_values(values, faces, pixels.batch, pixels.face)  # (M, C) each
    b0, b1, b2 = bary.T.contiguous()[:, :, None]  # (M, 1) each
    return c0 * b0 + c1 * b1 + c2 * b2


def interpolate_vertex_attributes(values: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Barycentric interpolation of per-vertex values at every pixel.

    Args:
        values: (B, V, C) per-vertex values (or per UV vertex, with ``faces`` = UV faces).
        faces: (F, 3) faces indexing V, in the order the fragments were rasterized with.
        fragments: ``Fragments`` with pix_to_face (B, H, W) and bary (B, H, W, 3).

    Returns:
        (B, H, W, C) interpolated values, 0 where no face covers the pixel.
    """
    pixels = CoveredPixels.from_pix_to_face(fragments.pix_to_face)
    return pixels.scatter(interpolate_at(values, faces, pixels, pixels.gather(fragments.bary)))
