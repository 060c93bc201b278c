"""Analytic antialiasing of silhouettes: the soft mode of ``MeshRenderer``, for every backend.

A hard z-buffer gives coverage no gradient with respect to vertex positions. Following nvdiffrast's
antialiasing step (Laine et al., "Modular Primitives for High-Performance Differentiable
Rendering", 2020), we blend colours across silhouette edges by the position where the edge crosses
the segment between two neighbouring pixel centres, and that position is a differentiable
function of the edge's screen-space vertices:

1. For each pair of horizontal or vertical neighbours ``a``, ``b`` that show different faces, the
   front one (``a``: covered and nearer, or covered next to background) owns the occluding surface.
   Pairs whose faces share a vertex and face the same way lie on a continuous surface and are skipped.
2. Walk from ``a``'s face along the segment a -> b through the mesh, triangle by triangle across the
   edge each one is left by, until an edge is a silhouette: a mesh boundary, or an edge whose two
   faces have opposite screen orientation (a fold between front- and back-facing triangles).
   The walk gives up, leaving the pair untouched, when it reaches ``b`` or after
   ``MAX_WALK_STEPS`` triangles.
3. With the crossing at fraction ``s`` of the way from ``a`` to ``b`` (pixel boxes span
   [-1/2, 1/2] and [1/2, 3/2] along the segment), the surface covers ``s - 1/2`` of ``b`` when
   ``s > 1/2`` and leaves ``1/2 - s`` of ``a`` uncovered when ``s < 1/2``; that pixel's colour moves
   towards the other pixel's colour by that fraction. Edges steeper than 45 degrees are handled by
   horizontal pairs, flatter ones by vertical pairs, so each edge blends once.

The result equals the hard image away from silhouettes; along them, image and mask have gradients
with respect to the silhouette vertices (and still with respect to colours).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from f2p.render.rasterize.fragments import Fragments

MAX_WALK_STEPS = 8
"""Triangles crossed between two pixel centres before a pair is given up (for sub-pixel triangles)."""

HALF_PIXEL = 0.5

_EDGE_CORNERS = torch.tensor([[1, 2], [2, 0], [0, 1]])
"""Corners joined by edge k (the edge opposite corner k)."""


def face_neighbours(faces: Tensor, num_vertices: int) -> Tensor:
    """(F, 3) faces of a mesh with ``num_vertices`` vertices -> (F, 3) long: the face across the edge
    opposite each corner, -1 on a boundary.

    Edge k of a face joins corners k + 1 and k + 2 (mod 3). On a non-manifold edge each face is
    paired with one of the others.
    """
    F = faces.shape[0]
    start = faces[:, [1, 2, 0]]
    end = faces[:, [2, 0, 1]]
    key = (torch.minimum(start, end) * num_vertices + torch.maximum(start, end)).reshape(-1)  # (3F,)
    key_sorted, order = torch.sort(key, stable=True)
    shared = key_sorted[1:] == key_sorted[:-1]
    first, second = order[:-1][shared], order[1:][shared]
    neighbours = torch.full((3 * F,), -1, dtype=torch.long, device=faces.device)
    neighbours[first] = second // 3
    neighbours[second] = first // 3
    return neighbours.view(F, 3)


def _edge_values(tri: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Barycentrics of a triangle at two points.

    Args:
        tri: (M, 3, 2+) corners (x, y first).
        a, b: (M, 2) points.

    Returns:
        (M, 3) barycentrics at ``a`` and at ``b`` (orientation-independent: inside means all >= 0).
    """
    x, y = tri[..., 0], tri[..., 1]

    def bary(p: Tensor) -> Tensor:
        e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
        e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
        dx, dy = p[:, 0] - x[:, 0], p[:, 1] - y[:, 0]
        area2 = e1x * e2y - e2x * e1y
        b1 = (dx * e2y - dy * e2x) / area2
        b2 = (e1x * dy - e1y * dx) / area2
        return torch.stack([1.0 - b1 - b2, b1, b2], -1)

    return bary(a), bary(b)


def _exit(tri: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Where the segment a -> b leaves each triangle: (M,) fraction s (inf if never) and (M,) edge index."""
    at_a, at_b = _edge_values(tri, a, b)
    leaving = at_b < at_a
    s = torch.where(leaving, at_a / torch.where(leaving, at_a - at_b, 1.0), math.inf)
    s_exit, edge = s.min(-1)
    return s_exit, edge


def _screen_orientation(screen_verts: Tensor, faces: Tensor) -> Tensor:
    """(B * F,) sign of each face's screen-space area (batch-major), 0 for faces with a non-finite corner."""
    B, V, _ = screen_verts.shape
    rows = (faces.T[:, None, :] + (torch.arange(B, device=faces.device) * V)[None, :, None]).reshape(-1)
    (x0, x1, x2), (y0, y1, y2) = screen_verts.reshape(B * V, 3).index_select(0, rows).T[:2].reshape(2, 3, -1)
    area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    return torch.where(torch.isfinite(area2), torch.sign(area2), 0.0)


def _pairs(fragments: Fragments, faces: Tensor, orientation: Tensor, horizontal: bool) -> tuple[Tensor, ...]:
    """Neighbouring pixels that may straddle a silhouette, front pixel first.

    Pairs whose faces differ, except those whose faces share a vertex and face the same way (a
    continuous surface, the vast majority of pairs on a finely tessellated mesh).

    Returns:
        front, back: (M,) flat pixel indices; face: (M,) the front pixel's face; batch: (M,).
    """
    B, H, W = fragments.pix_to_face.shape
    F = faces.shape[0]
    pix_to_face = fragments.pix_to_face.reshape(-1)
    zbuf = fragments.zbuf.detach().reshape(-1)
    pixel_index = torch.arange(B * H * W, device=pix_to_face.device).view(B, H, W)
    first = (pixel_index[:, :, :-1] if horizontal else pixel_index[:, :-1, :]).reshape(-1)
    second = (pixel_index[:, :, 1:] if horizontal else pixel_index[:, 1:, :]).reshape(-1)
    f1, f2 = pix_to_face[first], pix_to_face[second]
    differ = (f1 != f2).nonzero().squeeze(1)
    first, second, f1, f2 = first[differ], second[differ], f1[differ], f2[differ]
    first_in_front = (f2 < 0) | ((f1 >= 0) & (zbuf[first] <= zbuf[second]))
    front, back = torch.where(first_in_front, first, second), torch.where(first_in_front, second, first)
    face, other = torch.where(first_in_front, f1, f2), torch.where(first_in_front, f2, f1)
    batch = front // (H * W)
    corners, other_corners = faces[face], faces[other.clamp(min=0)]  # (M, 3)
    shared = (corners[:, :, None] == other_corners[:, None, :]).flatten(1).any(1)
    same_side = orientation[batch * F + face] == orientation[batch * F + other.clamp(min=0)]
    walk = (~((other >= 0) & shared & same_side)).nonzero().squeeze(1)
    return front[walk], back[walk], face[walk], batch[walk]


def _pixel_centre(pixel: Tensor, H: int, W: int, dtype: torch.dtype) -> Tensor:
    """(M,) flat pixel indices into B * H * W -> (M, 2) centres (x, y) in f2p pixels."""
    rest = pixel % (H * W)
    return torch.stack([rest % W, rest // W], -1).to(dtype)


def _silhouette_crossings(screen_verts: Tensor, faces: Tensor, neighbours: Tensor, orientation: Tensor,
                          batch: Tensor, face: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Walk from ``face`` along a -> b to the first silhouette edge (no gradient).

    Args:
        screen_verts: (B, V, 3) screen-space vertices.
        faces: (F, 3); neighbours: (F, 3) from ``face_neighbours``; orientation: (B * F,) from
            ``_screen_orientation``.
        batch, face: (M,) batch index and starting face of each pair.
        a, b: (M, 2) pixel centres (front pixel first).

    Returns:
        found: (M,) bool; silhouette_face: (M,) face owning the silhouette edge; edge: (M,) its edge index.
    """
    B, V, _ = screen_verts.shape
    F = faces.shape[0]
    flat = screen_verts.reshape(B * V, 3)
    walking = torch.ones_like(face, dtype=torch.bool)
    found = torch.zeros_like(walking)
    current, edge = face.clone(), torch.zeros_like(face)
    for _ in range(MAX_WALK_STEPS):  # every pair steps together (no compaction: cheaper than nonzero)
        tri = flat.index_select(0, (faces[current] + (batch * V)[:, None]).reshape(-1)).view(-1, 3, 3)
        s_exit, exit_edge = _exit(tri, a, b)
        next_face = neighbours.reshape(-1)[current * 3 + exit_edge]
        fold = orientation[batch * F + next_face.clamp(min=0)] != orientation[batch * F + current]
        silhouette = (next_face < 0) | fold
        inside_segment = s_exit < 1.0  # False when b lies in this triangle (nothing to blend)
        hit = walking & silhouette & inside_segment
        found |= hit
        edge = torch.where(hit, exit_edge, edge)
        walking &= ~silhouette & inside_segment
        current = torch.where(walking, next_face, current)
        if not bool(walking.any()):
            break
    return found, current, edge


def antialias(color: Tensor, fragments: Fragments, screen_verts: Tensor, faces: Tensor,
              neighbours: Tensor | None = None) -> Tensor:
    """Blend colours across silhouette edges (see the module docstring).

    Args:
        color: (B, H, W, C) hard-rendered colours (any channels, e.g. RGB plus mask).
        fragments: the ``Fragments`` the colours were shaded from.
        screen_verts: (B, V, 3) screen-space vertices the fragments were rasterized from.
        faces: (F, 3) faces.
        neighbours: (F, 3) ``face_neighbours(faces, V)``, computed when not given (pass it to reuse it).

    Returns:
        (B, H, W, C) antialiased colours, differentiable with respect to ``color`` and ``screen_verts``.
    """
    B, H, W, C = color.shape
    V = screen_verts.shape[1]
    if faces.shape[0] == 0:
        return color
    if neighbours is None:
        neighbours = face_neighbours(faces, V)
    with torch.no_grad():
        orientation = _screen_orientation(screen_verts.detach(), faces)
    flat_color = color.reshape(-1, C)
    delta = torch.zeros_like(flat_color)
    for horizontal in (True, False):
        front, back, face, batch = _pairs(fragments, faces, orientation, horizontal)
        a, b = _pixel_centre(front, H, W, screen_verts.dtype), _pixel_centre(back, H, W, screen_verts.dtype)
        with torch.no_grad():
            found, sil_face, sil_edge = _silhouette_crossings(screen_verts.detach(), faces, neighbours, orientation,
                                                              batch, face, a, b)
        tri = screen_verts.reshape(B * V, 3)[faces[sil_face] + (batch * V)[:, None]]  # (M, 3, 3), differentiable
        # The silhouette edge's direction decides which pass blends it: steep edges cross rows.
        ends = tri.gather(1, _EDGE_CORNERS.to(tri.device)[sil_edge][..., None].expand(-1, -1, 3))  # (M, 2, 3)
        along = (ends[:, 1, :2] - ends[:, 0, :2]).detach()
        steep = along[:, 1].abs() >= along[:, 0].abs()
        mine = (found & (steep if horizontal else ~steep)).nonzero().squeeze(1)
        tri, front, back, a, b, sil_edge = tri[mine], front[mine], back[mine], a[mine], b[mine], sil_edge[mine]
        at_a, at_b = _edge_values(tri, a, b)
        at_a, at_b = at_a.gather(1, sil_edge[:, None]), at_b.gather(1, sil_edge[:, None])  # (M, 1)
        s = (at_a / (at_a - at_b)).clamp(0.0, 1.0)  # crossing, as a fraction of a -> b
        towards = flat_color[front] - flat_color[back]  # (M, C)
        covers_back = s > HALF_PIXEL
        delta = delta.index_add(0, back, torch.where(covers_back, s - HALF_PIXEL, 0.0) * towards)
        delta = delta.index_add(0, front, -torch.where(covers_back, 0.0, HALF_PIXEL - s) * towards)
    return (flat_color + delta).view(B, H, W, C)
