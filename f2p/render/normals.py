"""Area-weighted vertex normals, computed on the fly from the posed mesh."""

from __future__ import annotations

import torch
import torch.nn.functional as F_nn
from torch import Tensor

NORMAL_EPS = 1e-12
"""Norm below which a normal is left unnormalised (a vertex of zero-area faces only)."""


def check_faces(faces: Tensor, num_vertices: int) -> None:
    """Raise ValueError unless ``faces`` is an (F, 3) integer tensor indexing [0, num_vertices)."""
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_vertices):
        raise ValueError(f"face indices must lie in [0, {num_vertices}), got [{int(faces.min())}, {int(faces.max())}]")


def face_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """(B, V, 3) vertices, (F, 3) faces -> (B, F, 3) unnormalised normals ``(v1 - v0) x (v2 - v0)``.

    The length is twice the triangle area. Faces with a non-finite vertex get a zero normal and a
    zero gradient (their vertices are replaced by zeros before any arithmetic).
    """
    tri = verts[:, faces]  # (B, F, 3 corners, 3 xyz)
    finite = torch.isfinite(tri).all(-1).all(-1)  # (B, F)
    tri = torch.where(finite[..., None, None], tri, torch.zeros_like(tri))
    v0, v1, v2 = tri.unbind(2)
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """(B, V, 3) vertices, (F, 3) faces -> (B, V, 3) unit vertex normals, area-weighted.

    Each vertex sums the normals of its faces weighted by their area, then normalises. The normal
    points to the side from which the face's corners (v0, v1, v2) turn counter-clockwise (the
    outside of a mesh wound like ICT, SFM and the procedural model). Vertices in no face, or only in
    zero-area or non-finite faces, get a zero normal.
    """
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must have shape (B, V, 3), got {tuple(verts.shape)}")
    B, V, _ = verts.shape
    check_faces(faces, V)
    per_face = face_normals(verts, faces)  # (B, F, 3)
    summed = verts.new_zeros(B, V, 3)
    for corner in range(3):
        summed = summed.index_add(1, faces[:, corner], per_face)
    return F_nn.normalize(summed, dim=-1, eps=NORMAL_EPS)
