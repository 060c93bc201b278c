"""A fixed surface point on a face model for each of MediaPipe's 468 face-mesh points.

MediaPipe's canonical face (``face_mesh``'s topology, 468 vertices in mesh order) is registered to the model's
mean face once per model:

1. similarity (Umeyama, weighted by ``model.landmark_confidence``) from the canonical face's iBUG-68 view
   (``face_mesh.ibug68_view``) to the model's 68 landmarks;
2. a 3-D thin-plate-spline warp (kernel ``r``) that takes the 68 aligned canonical points onto the model's
   landmarks, smoothed in proportion to ``TPS_SMOOTHING_M / confidence`` (landmarks of confidence 0 are left out);
3. each warped canonical vertex is projected onto the closest point of the model's mean surface restricted to
   its face region (triangles whose three vertices are in ``model.face_region``).

The result, a ``DenseCorrespondence`` (triangle and barycentric coordinates per mesh point), moves with the
model's vertices, so ``correspondence.points(mesh.verts, model.faces)`` gives the 468 dense landmarks of any
face the model produces. Points on MediaPipe's face oval are flagged (``contour``): on a turned head the
detected oval is the silhouette, which slides over the surface, so a fixed surface point is only right for them
in a frontal view.

``dense_correspondence(model)`` computes it once per model object and caches it on disk under
``registry.cache_dir() / "correspondence"``, keyed by a hash of everything the result depends on.
"""

from __future__ import annotations

import hashlib
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from f2p import face_mesh
from f2p.atomic import atomic_writer
from f2p.conventions import M_PER_CM
from f2p.morphable.base import ModelFileError, MorphableModel
from f2p.morphable.npz import read_npz, require
from f2p.morphable.obj_io import read_obj
from f2p.morphable.registry import ModelNotFoundError, cache_dir, model_roots

CANONICAL_FACE = Path("mediapipe") / "canonical_face_model.obj"
"""MediaPipe's canonical face (mediapipe/modules/face_geometry/data/), found inside a model root."""
CACHE_FOLDER = "correspondence"
CACHE_VERSION = b"f2p-dense-correspondence-2"
"""Part of the cache key: change it whenever the registration changes, so old cache files are not used."""

TPS_SMOOTHING_M = 1e-4
"""Thin-plate-spline smoothing (metres, the unit of the kernel ``r``) of a landmark of confidence 1: small enough
that the warp meets the landmarks to well under a millimetre, large enough to keep the system well conditioned
when two landmarks nearly coincide (a closed mouth's inner lips)."""
POINT_CHUNK = 128
"""Query points per block of the closest-triangle search, which holds (chunk, F) distances at a time."""
_MIN_CONTROL_POINTS = 4
"""The affine part of the warp needs at least four landmarks (of confidence > 0) not in one plane."""


@dataclass(frozen=True)
class DenseCorrespondence:
    """A surface point of a face model for each MediaPipe face-mesh point (468).

    Attributes:
        triangles: (468,) long, index into the model's ``faces`` of the triangle holding each point.
        bary: (468, 3) float32 barycentric coordinates in that triangle (>= 0, rows sum to 1).
        contour: (468,) bool, True for points on MediaPipe's face oval (``face_mesh.FACE_OVAL``), which slide
            over the surface on turned heads and need their own handling there.
        residual_m: (468,) float32 distance (metres) from the warped canonical point to its surface point; large
            values mark mesh points the model's face region does not cover (e.g. beyond its forehead).
    """

    triangles: Tensor
    bary: Tensor
    contour: Tensor
    residual_m: Tensor

    def points(self, verts: Tensor, faces: Tensor) -> Tensor:
        """Dense landmarks of a batch of meshes of the model.

        Args:
            verts: (B, V, 3) vertices; faces: (F, 3) the model's triangles.

        Returns:
            (B, 468, 3) the corresponding surface points.
        """
        corners = verts[:, faces[self.triangles.to(faces.device)]]  # (B, 468, 3 corners, 3)
        return (corners * self.bary.to(verts)[None, :, :, None]).sum(dim=2)


_memory_cache: weakref.WeakKeyDictionary[MorphableModel, DenseCorrespondence] = weakref.WeakKeyDictionary()


def dense_correspondence(model: MorphableModel) -> DenseCorrespondence:
    """The model's ``DenseCorrespondence`` (CPU tensors), computed once per model object and cached on disk.

    The disk cache (``cache_dir() / CACHE_FOLDER / <key>.npz``) is keyed by a hash of the model's mean vertices,
    faces, landmarks, landmark confidences, face region and the canonical face. A cache file that cannot be read
    or fails validation is recomputed and rewritten; an unwritable cache only warns.
    """
    cached = _memory_cache.get(model)
    if cached is not None:
        return cached
    canonical = load_canonical_face()
    mean, landmarks = _mean_face(model)
    faces = model.faces.detach().cpu()
    region = model.face_region.detach().cpu()
    confidence = model.landmark_confidence.detach().cpu().to(torch.float64)
    key = _cache_key(mean, faces, landmarks, confidence, region, canonical)
    path = cache_dir() / CACHE_FOLDER / f"{key}.npz"
    result = _read_cache(path, num_faces=len(faces))
    if result is None:
        result = register_canonical_face(canonical, mean, faces, region, landmarks, confidence)
        _write_cache(path, result)
    _memory_cache[model] = result
    return result


def load_canonical_face() -> Tensor:
    """(468, 3) float64 vertices of MediaPipe's canonical face in metres (model frame: y up, face towards +z),
    from the first model root (``registry.model_roots()``) that holds ``CANONICAL_FACE``."""
    for root in model_roots():
        path = root / CANONICAL_FACE
        if path.is_file():
            verts = read_obj(path).verts
            if verts.shape != (face_mesh.NUM_MESH_POINTS, 3):
                raise ModelFileError(path, f"expected {face_mesh.NUM_MESH_POINTS} vertices, got {len(verts)}")
            return torch.from_numpy(verts * M_PER_CM)
    where = ", ".join(str(root / CANONICAL_FACE) for root in model_roots())
    raise ModelNotFoundError(CANONICAL_FACE, f"MediaPipe's canonical face not found (looked in {where}). Copy "
                                             "canonical_face_model.obj from mediapipe/modules/face_geometry/data/ "
                                             "(Apache-2.0) into a mediapipe/ folder of F2P_MODEL_PATH.")


def register_canonical_face(canonical: Tensor, mean: Tensor, faces: Tensor, region: Tensor, landmarks: Tensor,
                            confidence: Tensor) -> DenseCorrespondence:
    """Register the canonical face to a mean face (see the module docstring); no caching.

    Args:
        canonical: (468, 3) canonical face vertices, metres.
        mean: (V, 3) the model's mean vertices; faces: (F, 3) long; region: (V,) bool face region.
        landmarks: (68, 3) the model's landmarks on ``mean``; confidence: (68,) their weights in [0, 1].

    Returns:
        The ``DenseCorrespondence`` on ``faces``.
    """
    canonical, mean, landmarks, confidence = (t.to(torch.float64) for t in (canonical, mean, landmarks, confidence))
    anchors = face_mesh.ibug68_view(canonical)  # (68, 3)
    s, R, t = similarity_align(anchors, landmarks, confidence)
    aligned = s * canonical @ R.T + t  # (468, 3)
    used = confidence > 0
    warped = thin_plate_warp(aligned, s * anchors[used] @ R.T + t, landmarks[used], TPS_SMOOTHING_M / confidence[used])
    region_faces = torch.nonzero(region[faces].all(dim=1))[:, 0]
    if len(region_faces) == 0:
        raise ValueError("the model's face region holds no whole triangle")
    triangle, bary, distance = closest_surface_points(warped, mean, faces[region_faces])
    return DenseCorrespondence(triangles=region_faces[triangle], bary=bary.to(torch.float32),
                               contour=_contour_mask(), residual_m=distance.to(torch.float32))


def similarity_align(source: Tensor, target: Tensor, weights: Tensor | None = None,
                     scale: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares scale, rotation and translation taking ``source`` onto ``target`` (Kabsch-Umeyama).

    Minimises ``sum_i w_i |s R source_i + t - target_i|^2`` (Umeyama 1991). The one alignment of point sets in
    f2p: this module registers the canonical face with it, ``evaluation.geometry`` aligns meshes before scoring.

    Args:
        source, target: (..., N, 3) corresponding points.
        weights: (..., N) >= 0, not all zero, or None to weigh every point alike.
        scale: fit the scale; False keeps it at 1 (a rigid alignment).

    Returns:
        s: (...,) scale, R: (..., 3, 3) proper rotation (det +1) and t: (..., 3) with
        ``target ~= s * source @ R.T + t``.
    """
    if weights is None:
        mu_s, mu_t = source.mean(dim=-2), target.mean(dim=-2)  # (..., 3)
        w = torch.ones_like(source[..., :1])  # (..., N, 1); unnormalised is fine, the scale below is a ratio
    else:
        total = weights.sum(dim=-1, keepdim=True)
        if not (total > 0).all():
            raise ValueError("a similarity needs weights that are not all zero")
        w = (weights / total)[..., None]  # (..., N, 1), summing to 1
        mu_s, mu_t = (w * source).sum(dim=-2), (w * target).sum(dim=-2)
    centred = source - mu_s[..., None, :]
    covariance = ((target - mu_t[..., None, :]) * w).transpose(-1, -2) @ centred  # (..., 3, 3)
    U, singular, Vh = torch.linalg.svd(covariance)
    # Flip the weakest singular direction when U @ Vh would be a reflection.
    sign = torch.sign(torch.linalg.det(U @ Vh))
    signs = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1)  # (..., 3)
    R = U @ torch.diag_embed(signs) @ Vh
    if scale:
        spread = (w * centred**2).sum((-1, -2))
        s = (singular * signs).sum(-1) / spread.clamp_min(torch.finfo(source.dtype).tiny)
    else:
        s = torch.ones_like(sign)
    return s, R, mu_t - s[..., None] * (R @ mu_s[..., None])[..., 0]


def thin_plate_warp(points: Tensor, source: Tensor, target: Tensor, smoothing: Tensor) -> Tensor:
    """Warp points with the 3-D thin-plate spline taking control points ``source`` towards ``target``.

    ``f(x) = A [1, x] - sum_j W_j |x - source_j|`` with ``(K + diag(smoothing)) W + P A = target`` and
    ``P^T W = 0`` (``K_ij = -|source_i - source_j|``, ``P = [1, source]``). ``-r`` is the biharmonic Green's
    function in 3-D, conditionally positive definite, so ``f`` minimises ``sum_j |f(source_j) - target_j|^2 /
    smoothing_j`` plus a fixed multiple of the bending energy: the smoothest warp that meets each control point up
    to its smoothing (exactly at 0), an affine map where the control points allow one.

    Args:
        points: (M, 3) points to warp; source, target: (N, 3) control points, N >= 4 not coplanar;
        smoothing: (N,) >= 0 per control point, in the units of the points (0 = interpolate exactly).

    Returns:
        (M, 3) warped points.
    """
    N = len(source)
    if N < _MIN_CONTROL_POINTS:
        raise ValueError(f"a thin-plate warp needs at least {_MIN_CONTROL_POINTS} control points, got {N}")
    affine = torch.cat([torch.ones_like(source[:, :1]), source], dim=1)  # (N, 4)
    system = torch.zeros(N + 4, N + 4, dtype=source.dtype, device=source.device)
    system[:N, :N] = -torch.cdist(source, source) + torch.diag(smoothing)
    system[:N, N:] = affine
    system[N:, :N] = affine.T
    rhs = torch.cat([target, torch.zeros(4, 3, dtype=target.dtype, device=target.device)])  # (N + 4, 3)
    coefficients = torch.linalg.solve(system, rhs)  # (N + 4, 3): kernel weights W, then affine A
    kernel = -torch.cdist(points, source)  # (M, N)
    return kernel @ coefficients[:N] + torch.cat([torch.ones_like(points[:, :1]), points], dim=1) @ coefficients[N:]


def closest_surface_points(points: Tensor, verts: Tensor, faces: Tensor,
                           chunk: int = POINT_CHUNK) -> tuple[Tensor, Tensor, Tensor]:
    """The closest point of a triangle mesh to each query point.

    Triangles are pruned by bounding spheres (centre at the centroid, radius to the farthest corner): a triangle
    is examined only when its sphere comes nearer to the point than the nearest centroid, which lies on the
    surface. Ties go to the lowest triangle index, so the result is deterministic.

    Args:
        points: (P, 3) query points; verts: (V, 3); faces: (F, 3) long; chunk: query points per block.

    Returns:
        triangle: (P,) long index into ``faces``; bary: (P, 3) barycentric coordinates of the closest point;
        distance: (P,) distance to it.
    """
    corners = verts[faces]  # (F, 3, 3)
    centroids = corners.mean(dim=1)  # (F, 3)
    radii = (corners - centroids[:, None]).norm(dim=-1).amax(dim=1)  # (F,)
    results = [_closest_in_block(block, corners, centroids, radii) for block in points.split(chunk)]
    triangle, bary, distance = (torch.cat(parts) for parts in zip(*results))
    return triangle, bary, distance


def _closest_in_block(points: Tensor, corners: Tensor, centroids: Tensor,
                      radii: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``closest_surface_points`` for one block of (P, 3) points against (F, 3, 3) triangle corners."""
    P = len(points)
    to_centroid = torch.cdist(points, centroids, compute_mode="donot_use_mm_for_euclid_dist")  # (P, F)
    bound = to_centroid.amin(dim=1, keepdim=True)  # (P, 1): distance to a point on the surface
    point_index, face_index = torch.nonzero(to_centroid - radii <= bound, as_tuple=True)  # candidate pairs
    bary, distance = point_triangle_distance(points[point_index], corners[face_index])
    # Per point the nearest candidate, ties to the lowest triangle index (nonzero lists triangles ascending).
    order = torch.argsort(distance, stable=True)
    order = order[torch.argsort(point_index[order], stable=True)]
    counts = torch.bincount(point_index, minlength=P)
    first = order[counts.cumsum(dim=0) - counts]
    return face_index[first], bary[first], distance[first]


def point_triangle_distance(points: Tensor, triangles: Tensor) -> tuple[Tensor, Tensor]:
    """Closest point of each triangle to its query point, pairwise.

    The projection onto the triangle's plane when it falls inside the triangle, else the nearest of the closest
    points on the three edges. Degenerate (zero-area) triangles reduce to their edges.

    Args:
        points: (M, 3); triangles: (M, 3 corners, 3).

    Returns:
        bary: (M, 3) barycentric coordinates of the closest point (>= 0, sum 1); distance: (M,).
    """
    a, b, c = triangles.unbind(dim=1)
    ab, ac, ap = b - a, c - a, points - a
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
    denominator = d00 * d11 - d01 * d01  # squared twice-area
    tiny = torch.finfo(points.dtype).tiny
    flat = denominator <= torch.finfo(points.dtype).eps * (d00 * d11).clamp_min(tiny)
    safe = torch.where(flat, torch.ones_like(denominator), denominator)
    v = (d11 * d20 - d01 * d21) / safe
    w = (d00 * d21 - d01 * d20) / safe
    face_bary = torch.stack([1 - v - w, v, w], dim=-1)  # (M, 3)
    inside = ~flat & (face_bary >= 0).all(dim=-1)

    # Closest points on the edges (a, b), (b, c), (c, a) as barycentrics.
    edge_bary, edge_distance = [], []
    for start, end in ((0, 1), (1, 2), (2, 0)):
        p0, p1 = triangles[:, start], triangles[:, end]
        direction = p1 - p0
        along = ((points - p0) * direction).sum(-1) / (direction * direction).sum(-1).clamp_min(tiny)
        along = along.clamp(0.0, 1.0)
        weights = torch.zeros_like(face_bary)
        weights[:, start] = 1 - along
        weights[:, end] = along
        edge_bary.append(weights)
        edge_distance.append((p0 + along[:, None] * direction - points).norm(dim=-1))
    nearest_edge = torch.stack(edge_distance, dim=1).argmin(dim=1)  # (M,)
    boundary_bary = torch.stack(edge_bary, dim=1)[torch.arange(len(points)), nearest_edge]  # (M, 3)
    bary = torch.where(inside[:, None], face_bary, boundary_bary)
    distance = ((bary[:, :, None] * triangles).sum(dim=1) - points).norm(dim=-1)
    return bary, distance


def _contour_mask() -> Tensor:
    """(468,) bool, True on ``face_mesh.FACE_OVAL``."""
    mask = torch.zeros(face_mesh.NUM_MESH_POINTS, dtype=torch.bool)
    mask[list(face_mesh.FACE_OVAL)] = True
    return mask


def _mean_face(model: MorphableModel) -> tuple[Tensor, Tensor]:
    """(V, 3) mean vertices and (68, 3) landmarks of the model at zero parameters, float64 on the CPU."""
    with torch.no_grad():
        mesh = model(**model.zero_params(1))
    return mesh.verts[0].cpu().to(torch.float64), mesh.landmarks[0].cpu().to(torch.float64)


def _cache_key(*tensors: Tensor) -> str:
    """Hex SHA-256 of ``CACHE_VERSION`` and each tensor's dtype, shape and bytes."""
    digest = hashlib.sha256(CACHE_VERSION)
    for tensor in tensors:
        array = np.ascontiguousarray(tensor.numpy())
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _read_cache(path: Path, num_faces: int) -> DenseCorrespondence | None:
    """The correspondence in a cache file, or None when it is missing, unreadable or fails validation."""
    if not path.is_file():
        return None
    try:
        arrays = read_npz(path)
        N = face_mesh.NUM_MESH_POINTS
        triangles = require(arrays, path, "triangles", (N,), kinds="i")
        bary = require(arrays, path, "bary", (N, 3), kinds="f")
        residual = require(arrays, path, "residual_m", (N,), kinds="f")
        contour = require(arrays, path, "contour", (N,), kinds="b")
    except ModelFileError:
        return None
    valid = (triangles.min() >= 0 and triangles.max() < num_faces and np.isfinite(bary).all()
             and (bary >= 0).all() and np.allclose(bary.sum(axis=1), 1.0, atol=1e-5)
             and np.isfinite(residual).all() and (residual >= 0).all()
             and np.array_equal(contour, _contour_mask().numpy()))
    if not valid:
        return None
    return DenseCorrespondence(triangles=torch.from_numpy(triangles.astype(np.int64)),
                               bary=torch.from_numpy(bary.astype(np.float32)), contour=torch.from_numpy(contour),
                               residual_m=torch.from_numpy(residual.astype(np.float32)))


def _write_cache(path: Path, result: DenseCorrespondence) -> None:
    """Write the cache file atomically; a cache that cannot be written costs a recomputation, so only warn."""
    try:
        with atomic_writer(path) as handle:
            np.savez(handle, triangles=result.triangles.numpy(), bary=result.bary.numpy(),
                     contour=result.contour.numpy(), residual_m=result.residual_m.numpy())
    except OSError as error:
        warnings.warn(f"could not write the dense-correspondence cache {path}: {error}", stacklevel=3)
