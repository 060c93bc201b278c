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


def corner_rows(faces: Tensor, batch_size: int, num_vertices: int) -> Tensor:
    """(3, B * F) rows of the flattened (B * V, ...) vertex table for each corner of every face of the batch.

    Row ``k`` lists corner ``k`` of all faces, batch-major. Gathering and scattering along dim 0 of a
    flat table, one contiguous (B * F, ...) block per corner, is several times faster than indexing
    (B, V, ...) along dim 1.
    """
    offset = torch.arange(batch_size, device=faces.device) * num_vertices
    return (faces.T[:, None, :] + offset[None, :, None]).reshape(3, -1)


def face_normals(verts: Tensor, faces: Tensor, valid: Tensor | None = None) -> Tensor:
    """(B, V, 3) vertices, (F, 3) faces -> (B, F, 3) unnormalised normals ``(v1 - v0) x (v2 - v0)``.

    The length is twice the triangle area. With ``valid`` (B, V) bool, faces with an invalid corner
    get a zero normal; the vertices must be finite where they are valid.
    """
    B, V, _ = verts.shape
    F = faces.shape[0]
    rows = corner_rows(faces, B, V)  # (3, B * F)
    v0, v1, v2 = verts.reshape(B * V, 3).index_select(0, rows.reshape(-1)).view(3, B * F, 3).unbind(0)
    normals = torch.cross(v1 - v0, v2 - v0, dim=-1)  # (B * F, 3)
    if valid is not None:
        face_valid = valid.reshape(-1)[rows].all(0)  # (B * F,)
        normals = torch.where(face_valid[:, None], normals, 0.0)
    return normals.view(B, F, 3)


def vertex_normals(verts: Tensor, faces: Tensor, valid: Tensor | None = None) -> Tensor:
    """(B, V, 3) vertices, (F, 3) faces -> (B, V, 3) unit vertex normals, area-weighted.

    Each vertex sums the normals of its faces weighted by their area, then normalises. The normal
    points to the side from which the face's corners (v0, v1, v2) turn counter-clockwise (the
    outside of a mesh wound like ICT, SFM and the procedural model). Vertices in no face, or only in
    zero-area faces, get a zero normal.

    Args:
        verts: (B, V, 3) vertices, finite wherever ``valid`` is True (NaN elsewhere is fine).
        faces: (F, 3) triangles.
        valid: optional (B, V) bool; faces with an invalid corner are ignored (zero normal, zero
            gradient). Without it every vertex must be finite.
    """
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must have shape (B, V, 3), got {tuple(verts.shape)}")
    B, V, _ = verts.shape
    check_faces(faces, V)
    faces = faces.long()
    if valid is not None:
        verts = torch.where(valid[..., None], verts, 0.0)  # no NaN may reach the cross products' gradients
    per_face = face_normals(verts, faces, valid).reshape(-1, 3)  # (B * F, 3)
    summed = verts.new_zeros(B * V, 3)
    for rows in corner_rows(faces, B, V):  # each face adds its normal to its three corners
        summed = summed.index_add(0, rows, per_face)
    return F_nn.normalize(summed.view(B, V, 3), dim=-1, eps=NORMAL_EPS)
