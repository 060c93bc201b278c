"""Smoothness prior for free per-vertex colours (used when a model has no albedo space)."""

from __future__ import annotations

import torch
from torch import Tensor


def mesh_edges(faces: Tensor) -> Tensor:
    """(F, 3) triangles -> (E, 2) unique undirected edges, sorted by (smaller, larger) vertex index.

    Each edge is one integer key ``i * V + j`` (i < j) for ``torch.unique``: 50 times faster than the row-wise
    ``unique(dim=0)`` (ICT: 6 ms instead of 0.3 s, once per ``Fitter``), the same edges in the same order."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 0).sort(dim=1).values.long()
    count = int(faces.max()) + 1 if faces.numel() else 1
    keys = torch.unique(edges[:, 0] * count + edges[:, 1])
    return torch.stack([keys // count, keys % count], 1).to(faces.dtype)


def vertex_color_smoothness(colors: Tensor, edges: Tensor) -> Tensor:
    """Mean squared colour difference across mesh edges: ``loss_b = mean_e ||c_bi - c_bj||^2``.

    Args:
        colors: (B, V, 3) per-vertex colours.
        edges: (E, 2) vertex index pairs.

    Returns:
        (B,) loss per mesh.
    """
    diff = colors[:, edges[:, 0]] - colors[:, edges[:, 1]]  # (B, E, 3)
    return (diff**2).sum(-1).mean(1)
