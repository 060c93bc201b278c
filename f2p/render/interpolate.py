"""Interpolate per-vertex attributes over rasterized pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.render.rasterize.barycentric import gather_corners
from f2p.render.rasterize.fragments import Fragments


def interpolate_vertex_attributes(values: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Barycentric interpolation of per-vertex values at every pixel.

    Args:
        values: (B, V, C) per-vertex values (or per UV vertex, with ``faces`` = UV faces).
        faces: (F, 3) faces indexing V, in the order the fragments were rasterized with.
        fragments: ``Fragments`` with pix_to_face (B, H, W) and bary (B, H, W, 3).

    Returns:
        (B, H, W, C) interpolated values, 0 where no face covers the pixel.
    """
    if values.ndim != 3 or values.shape[0] != fragments.pix_to_face.shape[0]:
        raise ValueError(f"values must have shape (B, V, C) with B = {fragments.pix_to_face.shape[0]}, "
                         f"got {tuple(values.shape)}")
    if faces.shape[0] == 0:  # an empty mesh covers nothing
        return values.new_zeros(*fragments.pix_to_face.shape, values.shape[-1])
    corners = gather_corners(values, faces, fragments.pix_to_face.clamp(min=0))  # (B, H, W, 3, C)
    interpolated = (fragments.bary[..., None] * corners).sum(-2)  # bary is 0 on empty pixels
    return torch.where(fragments.mask[..., None], interpolated, torch.zeros_like(interpolated))
