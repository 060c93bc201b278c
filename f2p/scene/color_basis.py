"""A smooth colour space for face models without an albedo space: the lowest-frequency eigenfunctions of the
cotangent Laplacian ("manifold harmonics") of the mean mesh's face, extended smoothly over the rest of the head.

A skin-tone change, a ruddy cheek or a darker jaw are low-frequency colour fields; shading from the SH light varies
with the surface normal, at the frequency of the geometry. Fitting the colour in this small basis while the shape
is fitted from shading lets the tone and its slow variations be explained by colour rather than by a distorted
shape, without giving the colour the freedom (as free per-vertex colours have) to absorb the shading itself.
The functions live on the part of the face that photos show to the photometric loss (``face_domain``: the
model's face region inside the jaw-and-brows outline of ``perception.masks``), where 64 of them resolve colour
changes over a few centimetres. Over the rest of the head (forehead, ears, neck) each is continued by its harmonic
extension (the smoothest continuation, a Laplace equation with the face as boundary): unobserved skin takes the
colours of the face's edge rather than an extrapolation, and exported meshes show no seam.
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg
import torch
from torch import Tensor

from f2p.conventions import FACE_OUTLINE
from f2p.morphable.base import MorphableModel

NUM_SMOOTH_COLORS = 64
"""Eigenfunctions in the basis (the constant one included), per colour channel."""
_SHIFT = -1e-3
"""Shift-invert target of the eigen-solver, just below the smallest eigenvalue (0, the constant function)."""

_cache: weakref.WeakKeyDictionary[MorphableModel, Tensor] = weakref.WeakKeyDictionary()


def cotangent_laplacian(verts: np.ndarray, faces: np.ndarray) -> tuple[sparse.csc_matrix, sparse.csc_matrix]:
    """Cotangent stiffness and lumped (barycentric) mass matrices of a triangle mesh.

    Args:
        verts: (V, 3) float positions; faces: (F, 3) int triangles.

    Returns:
        L: (V, V) positive semi-definite stiffness, ``L_ij = -(cot a_ij + cot b_ij) / 2``; M: (V, V) diagonal
        vertex areas (a third of the adjacent triangles' areas, floored so that unused vertices keep a mass).
    """
    V = len(verts)
    corners = verts[faces]  # (F, 3, 3)
    rows, cols, weights = [], [], []
    for k in range(3):  # the angle at corner k is opposite the edge (k+1, k+2)
        i, j = faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        u = corners[:, (k + 1) % 3] - corners[:, k]
        v = corners[:, (k + 2) % 3] - corners[:, k]
        sine = np.linalg.norm(np.cross(u, v), axis=1)
        cot = (u * v).sum(1) / np.maximum(sine, 1e-12)
        rows += [i, j]
        cols += [j, i]
        weights += [0.5 * cot, 0.5 * cot]
    W = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(V, V))
    W = W.tocsc()
    L = sparse.diags(np.asarray(W.sum(axis=1)).ravel()) - W
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    mass = np.zeros(V)
    np.add.at(mass, faces.ravel(), np.repeat(area / 3.0, 3))
    mass = np.maximum(mass, 1e-6 * max(mass.mean(), 1e-12))
    return L.tocsc(), sparse.diags(mass).tocsc()


def num_smooth_colors(num_vertices: int) -> int:
    """Functions in the basis of a mesh with ``num_vertices`` vertices (the eigen-solver needs count < V - 1)."""
    return max(1, min(NUM_SMOOTH_COLORS, num_vertices - 2))


def manifold_harmonics(verts: np.ndarray, faces: np.ndarray, count: int) -> np.ndarray:
    """(V, count) the ``count`` lowest-frequency Laplacian eigenfunctions, each scaled to unit RMS over vertices.

    Args:
        verts: (V, 3) positions; faces: (F, 3) triangles; count: number of functions (< V - 1).
    """
    L, M = cotangent_laplacian(verts.astype(np.float64), faces.astype(np.int64))
    start = np.full(len(verts), 1.0)  # deterministic start vector: the same basis on every run and rank
    _, vectors = sparse_linalg.eigsh(L, k=count, M=M, sigma=_SHIFT, which="LM", v0=start)
    vectors = vectors / np.sqrt((vectors**2).mean(axis=0, keepdims=True))
    signs = np.sign(vectors.sum(axis=0) + 1e-12)  # eigenvectors are defined up to sign: fix it
    return (vectors * signs).astype(np.float32)


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool, even-odd rule: which of the (N, 2) ``points`` lie inside the closed (P, 2) ``polygon``."""
    x, y = points[:, :1], points[:, 1:]
    x0, y0 = polygon[None, :, 0], polygon[None, :, 1]
    x1, y1 = np.roll(x0, -1, axis=1), np.roll(y0, -1, axis=1)
    straddles = (y0 > y) != (y1 > y)  # (N, P) edges crossing the horizontal line through the point
    crossing_x = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1.0, y1 - y0)
    return (straddles & (x < crossing_x)).sum(axis=1) % 2 == 1


def face_domain(verts: np.ndarray, landmarks: np.ndarray, face_region: np.ndarray) -> np.ndarray:
    """(V,) bool: vertices of ``face_region`` inside the jaw-and-brows outline (``conventions.FACE_OUTLINE``)
    of the neutral face seen from the front.

    Args:
        verts: (V, 3) mean shape in model space (y up, z to the viewer); landmarks: (68, 3) its landmarks;
            face_region: (V,) bool.
    """
    return face_region & inside_polygon(verts[:, :2], landmarks[list(FACE_OUTLINE), :2])


def face_harmonics(verts: np.ndarray, faces: np.ndarray, domain: np.ndarray, count: int) -> np.ndarray:
    """(V, count) manifold harmonics of the triangles touching ``domain``, harmonically extended elsewhere.

    Args:
        verts: (V, 3) positions; faces: (F, 3) triangles; domain: (V,) bool; count: functions (< V - 1).
    """
    face = faces[domain[faces].any(axis=1)]
    inside = np.unique(face)
    if len(inside) < count + 2:  # a tiny face region: harmonics of the whole mesh
        return manifold_harmonics(verts, faces, count)
    index = np.full(len(verts), -1)
    index[inside] = np.arange(len(inside))
    functions = np.zeros((len(verts), count), dtype=np.float32)
    functions[inside] = manifold_harmonics(verts[inside], index[face], count)
    outside = np.setdiff1d(np.arange(len(verts)), inside)
    if len(outside):
        L = cotangent_laplacian(verts, faces)[0].tocsr()
        L_out = L[outside][:, outside] + sparse.eye(len(outside)) * 1e-9  # vertices without edges stay at 0
        rhs = -(L[outside][:, inside] @ functions[inside].astype(np.float64))
        functions[outside] = sparse_linalg.splu(L_out.tocsc()).solve(rhs)
    return functions


def smooth_color_basis(model: MorphableModel) -> Tensor:
    """(V, K) ``face_harmonics`` on the ``face_domain`` (K = ``num_smooth_colors(V)``) of ``model``'s mean shape,
    on the model's device; computed once per model object (about half a second for ICT's 14k vertices)."""
    basis = _cache.get(model)
    if basis is None or basis.device != model.device:
        with torch.no_grad():
            mesh = model(**model.zero_params(1))
        mean = mesh.verts[0].cpu().double().numpy()
        domain = face_domain(mean, mesh.landmarks[0].cpu().double().numpy(), model.face_region.cpu().numpy())
        functions = face_harmonics(mean, model.faces.cpu().numpy(), domain, num_smooth_colors(len(mean)))
        basis = torch.from_numpy(functions).to(model.device)
        _cache[model] = basis
    return basis


def smooth_colors(model: MorphableModel, coefficients: Tensor) -> Tensor:
    """(B, K, 3) coefficients (K functions x RGB, ``SceneSpec.smooth_color_coefficients``) -> (B, V, 3) colour
    offsets."""
    return torch.einsum("vk,bkc->bvc", smooth_color_basis(model), coefficients)
