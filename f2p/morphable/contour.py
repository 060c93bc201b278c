"""Sliding contour correspondence: candidate vertices across the cheek for each face-outline point.

A 2D detector marks the face's outline where it is seen, on its silhouette: on a turned head the far side's
jaw line is hidden and the outline lies across the cheek, at points that change with the pose. The model's
fixed landmark vertices are right there only in a frontal view. As in eos' contour fitting and 3DDFA's landmark
marching, each outline point away from the face's midline gets a line of candidate vertices: the mean face's
vertices in a horizontal band (``BAND_M`` tall) at the point's height, on its side of the face, from
``INNER_FRACTION`` of its distance from the midline out to the fixed point plus ``OUTER_MARGIN_M``, and no deeper
than ``DEPTH_MARGIN_M`` behind it (so the line cannot wrap round the back of the head). At a pose, the
candidate that lies furthest outwards in the image, along the projected model x axis on the point's side, is on
the occluding contour: that vertex is the point's correspondence (``choose_silhouette``).

Which points slide (generic, any model with landmarks, model space x towards the subject's left, y up):
the iBUG-68 jaw points (``conventions.JAW``) and the dense face-oval points (``DenseCorrespondence.contour``)
whose distance from the midline is at least ``SLIDE_FRACTION`` of the widest of their set; the chin and the top
of the forehead, whose outline does not move sideways with yaw, keep their fixed points.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from f2p import conventions as C
from f2p.morphable.base import LinearMorphableModel, MorphableModel
from f2p.morphable.correspondence import dense_correspondence

BAND_M = 0.004
"""Height of a candidate line's band (metres): about two vertex spacings of a face model's cheek."""
INNER_FRACTION = 0.35
"""Candidates reach in to this fraction of the outline point's distance from the midline (short of the nose)."""
OUTER_MARGIN_M = 0.003
"""Candidates reach this far outwards beyond the fixed point (metres)."""
DEPTH_MARGIN_M = 0.002
"""Candidates lie at most this far behind the fixed point (metres, model z): on the side turned towards the
camera, points further back would project further out and pull the outline onto the ear."""
SLIDE_FRACTION = 0.5
"""Outline points at least this fraction of their set's widest distance from the midline slide."""


@dataclass(frozen=True)
class ContourCandidates:
    """Candidate vertices of the sliding outline points of a model: the sliding jaw points first, then the
    sliding dense face-oval points.

    Attributes:
        landmarks: (N68,) long, the iBUG-68 rows that slide.
        dense: (ND,) long, the rows of the 468 dense points that slide (empty without a dense correspondence).
        vertices: (N, C) long, candidate vertex indices per sliding point (N = N68 + ND), padded with the
            point's first candidate.
        valid: (N, C) bool, the real candidates.
        side: (N,) float, +1 on the subject's left (model +x), -1 on the right.
    """

    landmarks: Tensor
    dense: Tensor
    vertices: Tensor
    valid: Tensor
    side: Tensor

    def to(self, device: torch.device | str) -> ContourCandidates:
        return ContourCandidates(*(t.to(device) for t in (self.landmarks, self.dense, self.vertices, self.valid,
                                                          self.side)))


def build_candidates(mean: Tensor, points: Tensor, midline_x: float) -> tuple[Tensor, Tensor, Tensor]:
    """Candidate lines on the mean face (see the module docstring).

    Args:
        mean: (V, 3) mean vertices, metres. points: (N, 3) the sliding points' fixed positions on it.
        midline_x: model x of the face's midline.

    Returns:
        vertices (N, C) long, valid (N, C) bool, side (N,) float, as in ``ContourCandidates``; a point with no
        vertex in its band gets its nearest vertex as its only candidate.
    """
    offset = points[:, 0] - midline_x  # (N,)
    side = torch.where(offset >= 0, 1.0, -1.0)
    reach = side[:, None] * (mean[None, :, 0] - midline_x)  # (N, V) distance from the midline on the point's side
    inside = ((mean[None, :, 1] - points[:, None, 1]).abs() <= BAND_M / 2) \
        & (reach >= INNER_FRACTION * offset.abs()[:, None]) & (reach <= offset.abs()[:, None] + OUTER_MARGIN_M) \
        & (mean[None, :, 2] >= points[:, None, 2] - DEPTH_MARGIN_M)  # (N, V)
    nearest = torch.cdist(points, mean).argmin(1)  # (N,)
    inside[torch.arange(len(points)), nearest] = True
    count = int(inside.sum(1).max())
    # real candidates first, in vertex order
    order = torch.sort(inside.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :count]
    valid = torch.gather(inside, 1, order)
    vertices = torch.where(valid, order, order[:, :1])
    return vertices, valid, side


_cache: weakref.WeakKeyDictionary[MorphableModel, ContourCandidates] = weakref.WeakKeyDictionary()


def contour_candidates(model: MorphableModel) -> ContourCandidates:
    """The model's ``ContourCandidates`` on its device, built once per model object from its mean face.

    Dense face-oval points are included where the model has a dense correspondence (MediaPipe's canonical face
    found), else only the jaw points slide."""
    cached = _cache.get(model)
    if cached is not None and cached.vertices.device == model.device:
        return cached
    with torch.no_grad():
        mean = _mean_vertices(model)  # (V, 3)
        landmarks = model.landmarks_from_verts(mean[None])[0]  # (68, 3)
        midline_x = float(landmarks[list(C.NOSE_BRIDGE), 0].mean())
        jaw = torch.tensor(C.JAW)
        sliding = [_sliding(landmarks[jaw], midline_x, jaw)]
        try:
            correspondence = dense_correspondence(model)
        except FileNotFoundError:
            correspondence = None
        if correspondence is not None:
            oval = correspondence.contour.nonzero()[:, 0]
            dense_points = correspondence.points(mean[None].cpu(), model.faces.cpu())[0].to(mean)
            sliding.append(_sliding(dense_points[oval.to(mean.device)], midline_x, oval))
        rows = [rows for rows, _ in sliding]
        points = torch.cat([p for _, p in sliding])
        vertices, valid, side = build_candidates(mean.cpu(), points.cpu(), midline_x)
    result = ContourCandidates(rows[0], rows[1] if len(rows) > 1 else torch.zeros(0, dtype=torch.long),
                               vertices, valid, side).to(model.device)
    _cache[model] = result
    return result


def _sliding(points: Tensor, midline_x: float, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The rows (long) and (n, 3) positions of those of ``points`` far enough from the midline to slide."""
    offset = (points[:, 0] - midline_x).abs()
    keep = offset >= SLIDE_FRACTION * offset.max()
    return rows[keep.cpu()], points[keep]


def _mean_vertices(model: MorphableModel) -> Tensor:
    """(V, 3) the model's mean face."""
    if isinstance(model, LinearMorphableModel):
        return model.mean
    return model(**model.zero_params(1)).verts[0]


def candidate_points(model: MorphableModel, candidates: ContourCandidates, verts: Tensor | None = None,
                     **params: Tensor) -> Tensor:
    """(B, N, C, 3) model-space positions of every candidate of the meshes of ``params`` ({group: (B, K)}), or of
    the given (B, V, 3) ``verts``. A linear model's candidates come from its bases restricted to them (no mesh
    is built)."""
    N, Cc = candidates.vertices.shape
    index = candidates.vertices.reshape(-1)
    if verts is None and isinstance(model, LinearMorphableModel):
        B = model.check_params(params)
        points = model.mean[index].expand(B, -1, -1)
        for group in model.shape_group_names:
            if group in params:
                basis = model.basis(group)[:, index]  # (K, N C, 3)
                K = basis.shape[0]
                points = points + (params[group] @ basis.reshape(K, -1)).reshape(B, -1, 3)
    else:
        verts = model(**params).verts if verts is None else verts
        points = verts[:, index]
    return points.reshape(points.shape[0], N, Cc, 3)


def choose_silhouette(projected: Tensor, rotation: Tensor, candidates: ContourCandidates) -> Tensor:
    """The candidate on the occluding contour of each sliding point: the one furthest outwards in the image.

    Args:
        projected: (B, N, C, 2) candidates in pixels.
        rotation: (B, 3, 3) world (model space) -> camera rotation; the image direction of model x is its first
            column's x and y (OpenCV camera: x right, y down).
        candidates: the model's candidates.

    Returns:
        (B, N) long, index into C of the chosen candidate (no gradient).
    """
    with torch.no_grad():
        axis = rotation[:, :2, 0]  # (B, 2) image direction of model +x
        outward = candidates.side[None, :, None] * axis[:, None, :]  # (B, N, 2)
        reach = (projected * outward[:, :, None, :]).sum(-1)  # (B, N, C)
        reach = reach.masked_fill(~candidates.valid[None], -torch.inf)
        return reach.argmax(-1)


def chosen_vertices(candidates: ContourCandidates, choice: Tensor) -> Tensor:
    """(B, N) candidate indices (``choose_silhouette``) -> (B, N) long vertex indices."""
    return torch.gather(candidates.vertices.expand(choice.shape[0], -1, -1), 2, choice[..., None])[..., 0]


def vertex_points(model: MorphableModel, vertices: Tensor, **params: Tensor) -> Tensor:
    """(B, N) long vertex indices per mesh (``chosen_vertices``) -> (B, N, 3) their model-space positions in the
    meshes of ``params``; a linear model's come from its bases restricted to them."""
    B, N = vertices.shape
    if isinstance(model, LinearMorphableModel):
        points = model.mean[vertices]  # (B, N, 3)
        for group in model.shape_group_names:
            if group in params:
                basis = model.basis(group)[:, vertices]  # (K, B, N, 3)
                points = points + torch.einsum("bk,kbnj->bnj", params[group], basis)
        return points
    verts = model(**params).verts  # (B, V, 3)
    return torch.gather(verts, 1, vertices[..., None].expand(B, N, 3))
