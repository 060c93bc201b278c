"""Dense (MediaPipe 468-point) correspondence on face models: geometry kernels, registration quality, caching."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p import conventions as C
from f2p import face_mesh as M
from f2p.morphable import correspondence as dense
from f2p.morphable.base import LinearMorphableModel, MorphableModel
from f2p.morphable.procedural import procedural_data
from f2p.morphable.registry import ModelNotFoundError, load_model

MODELS = ("procedural", "ict", "sfm")
INNER_MEDIAN_TOL_M = 0.5 * C.M_PER_MM
INNER_MAX_TOL_M = 3.0 * C.M_PER_MM
"""The warp meets the landmarks; what is left is the projection onto the surface and the two-point table
entries (27, 28). Measured: ICT median 0.02 / max 0.7 mm, SFM 0.02 / 1.9 mm, procedural 0.04 / 0.7 mm."""
LEAVE_ONE_OUT = C.INNER_51[::3]
"""Every third inner landmark (brows, nose, eyes, lips): each in turn is left out of the warp."""
LEAVE_ONE_OUT_MEDIAN_TOL_M = 3.0 * C.M_PER_MM
"""A landmark left out of the warp is still found near its place (ICT, all 51 left out in turn: median 1.7,
p95 4.1, max 5.7 mm)."""
SYMMETRY_TOL_M = 1.0 * C.M_PER_MM
"""ICT is left-right symmetric to 0.05 mm; measured asymmetry of its correspondence: max 0.46 mm."""
RESIDUAL_MEDIAN_TOL_M = 1.0 * C.M_PER_MM


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache folder, so none reads another's (or the user's) cache files."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("F2P_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def canonical(models_dir: Path) -> torch.Tensor:
    if not (models_dir / dense.CANONICAL_FACE).is_file():
        pytest.skip(f"MediaPipe canonical face not found at {models_dir / dense.CANONICAL_FACE}")
    return dense.load_canonical_face()


_loaded: dict[str, MorphableModel] = {}


def shared_model(name: str) -> MorphableModel:
    """A model by registry name, loaded once per test session; skips when the shared files are absent."""
    if name not in _loaded:
        try:
            _loaded[name] = load_model(name)
        except ModelNotFoundError:
            pytest.skip(f"shared model {name!r} not found under F2P_MODEL_PATH={os.environ.get('F2P_MODEL_PATH')}")
    return _loaded[name]


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest, canonical: torch.Tensor) -> MorphableModel:
    """The procedural model and the shared ICT and SFM models."""
    return shared_model(request.param)


@pytest.fixture
def ict(canonical: torch.Tensor) -> MorphableModel:
    return shared_model("ict")


def mean_face(model: MorphableModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, V, 3) mean vertices and (68, 3) landmarks."""
    with torch.no_grad():
        mesh = model(**model.zero_params(1))
    return mesh.verts, mesh.landmarks[0]


def view_errors(model: MorphableModel, correspondence: dense.DenseCorrespondence) -> torch.Tensor:
    """(68,) distances (m) between the correspondence's iBUG-68 view and the model's own landmarks."""
    verts, landmarks = mean_face(model)
    return (M.ibug68_view(correspondence.points(verts, model.faces)[0]) - landmarks).norm(dim=-1)


# ---------------------------------------------------------------------------------------------- geometry kernels


def test_point_triangle_distance_matches_dense_sampling() -> None:
    generator = torch.Generator().manual_seed(1)
    triangles = torch.randn(200, 3, 3, dtype=torch.float64, generator=generator)
    points = 1.5 * torch.randn(200, 3, dtype=torch.float64, generator=generator)
    bary, distance = dense.point_triangle_distance(points, triangles)
    assert torch.all(bary >= 0) and torch.allclose(bary.sum(-1), torch.ones(200, dtype=torch.float64))
    closest = (bary[:, :, None] * triangles).sum(1)
    assert torch.allclose((closest - points).norm(dim=-1), distance)
    # Reference: the nearest of many points spread over each triangle.
    n = 60
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = i + j <= n
    grid = torch.stack([n - i[keep] - j[keep], i[keep], j[keep]], dim=-1).to(torch.float64) / n  # (S, 3)
    samples = torch.einsum("sk,mkd->msd", grid, triangles)  # (M, S, 3)
    sampled = (samples - points[:, None]).norm(dim=-1).amin(dim=1)
    edge = (triangles - triangles.roll(1, dims=1)).norm(dim=-1).amax(dim=1)
    assert torch.all(distance <= sampled + 1e-12)
    assert torch.all(sampled - distance <= edge / n)  # the sampling's own resolution


def test_point_triangle_distance_inside_and_degenerate() -> None:
    triangle = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    bary, distance = dense.point_triangle_distance(torch.tensor([[0.25, 0.25, 2.0]], dtype=torch.float64), triangle)
    assert torch.allclose(bary, torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)) and float(distance) == 2.0
    segment = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    bary, distance = dense.point_triangle_distance(torch.tensor([[0.5, 1.0, 0.0]], dtype=torch.float64), segment)
    assert torch.isfinite(bary).all() and torch.allclose(distance, torch.tensor([1.0], dtype=torch.float64))


def test_closest_surface_points_matches_brute_force(procedural_model: LinearMorphableModel) -> None:
    verts = procedural_model.mean.to(torch.float64)
    faces = procedural_model.faces
    points = verts[::7] + 0.01 * torch.randn(len(verts[::7]), 3, dtype=torch.float64)
    triangle, bary, distance = dense.closest_surface_points(points, verts, faces, chunk=16)
    P, F = len(points), len(faces)
    _, all_distances = dense.point_triangle_distance(points.repeat_interleave(F, 0), verts[faces].repeat(P, 1, 1))
    brute = all_distances.reshape(P, F)
    assert torch.allclose(distance, brute.amin(dim=1))
    assert torch.equal(triangle, brute.argmin(dim=1))
    assert torch.allclose((bary[:, :, None] * verts[faces[triangle]]).sum(1).sub(points).norm(dim=-1), distance)


def test_weighted_similarity_align_recovers_a_transform_and_ignores_zero_weights() -> None:
    source = torch.randn(30, 3, dtype=torch.float64)
    angle = torch.tensor(0.7, dtype=torch.float64)
    R = torch.tensor([[torch.cos(angle), -torch.sin(angle), 0], [torch.sin(angle), torch.cos(angle), 0], [0, 0, 1]],
                     dtype=torch.float64)
    target = 1.7 * source @ R.T + torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    target[0] += 5.0  # an outlier with weight 0
    weights = torch.ones(30, dtype=torch.float64)
    weights[0] = 0.0
    s, R_fit, t = dense.similarity_align(source, target, weights)
    assert torch.allclose(s, torch.tensor(1.7, dtype=torch.float64)) and torch.allclose(R_fit, R)
    assert torch.allclose(t, torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))


def test_thin_plate_warp_interpolates_and_keeps_affine_maps() -> None:
    source = torch.randn(20, 3, dtype=torch.float64)
    target = source + 0.1 * torch.randn(20, 3, dtype=torch.float64)
    exact = torch.zeros(20, dtype=torch.float64)
    assert torch.allclose(dense.thin_plate_warp(source, source, target, exact), target)
    smoothed = dense.thin_plate_warp(source, source, target, torch.full((20,), 10.0, dtype=torch.float64))
    assert (smoothed - target).norm() > 1e-3  # smoothing trades the fit for less bending
    A = torch.tensor([[1.1, 0.2, 0.0], [0.0, 0.9, 0.1], [0.05, 0.0, 1.2]], dtype=torch.float64)
    points = torch.randn(50, 3, dtype=torch.float64)
    affine = dense.thin_plate_warp(points, source, source @ A.T + 0.3, torch.full((20,), 0.01, dtype=torch.float64))
    assert torch.allclose(affine, points @ A.T + 0.3)
    with pytest.raises(ValueError, match="at least 4"):
        dense.thin_plate_warp(points, source[:3], target[:3], exact[:3])


def test_points_interpolates_the_right_corners() -> None:
    verts = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B=2, V=4, 3)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    correspondence = dense.DenseCorrespondence(
        triangles=torch.tensor([1, 0]), bary=torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.25, 0.75]]),
        contour=torch.zeros(2, dtype=torch.bool), residual_m=torch.zeros(2))
    points = correspondence.points(verts, faces)
    assert points.shape == (2, 2, 3)
    assert torch.equal(points[:, 0], verts[:, 1])
    assert torch.allclose(points[:, 1], 0.25 * verts[:, 1] + 0.75 * verts[:, 2])


# ---------------------------------------------------------------------------------------------- on face models


def test_correspondence_is_valid_and_on_the_face_region(model: MorphableModel) -> None:
    result = dense.dense_correspondence(model)
    N = M.NUM_MESH_POINTS
    assert result.triangles.shape == (N,) and result.triangles.dtype == torch.long
    assert result.bary.shape == (N, 3) and result.residual_m.shape == (N,)
    assert torch.all(result.bary >= 0) and torch.allclose(result.bary.sum(dim=1), torch.ones(N))
    assert torch.all(model.face_region[model.faces[result.triangles]])
    assert result.contour.tolist() == [i in M.FACE_OVAL for i in range(N)]
    verts, _ = mean_face(model)
    points = result.points(verts, model.faces)  # (1, 468, 3)
    _, _, distance = dense.closest_surface_points(points[0].double(), verts[0].double(), model.faces)
    assert float(distance.max()) < 1e-6  # on the surface
    assert float(result.residual_m.median()) < RESIDUAL_MEDIAN_TOL_M


def test_68_view_lies_on_the_models_landmarks(model: MorphableModel) -> None:
    errors = view_errors(model, dense.dense_correspondence(model))
    inner, jaw = errors[list(C.INNER_51)], errors[list(C.JAW)]
    mm = {name: value * C.MM_PER_M for name, value in (("inner", inner), ("jaw", jaw), ("all", errors))}
    print(f"\n{model.name}: 68-view vs landmarks (mm) inner-51 median {mm['inner'].median():.2f} p95 "
          f"{mm['inner'].quantile(0.95):.2f} max {mm['inner'].max():.2f}; jaw median {mm['jaw'].median():.2f} max "
          f"{mm['jaw'].max():.2f}; all-68 median {mm['all'].median():.2f} p95 {mm['all'].quantile(0.95):.2f}")
    assert float(inner.median()) < INNER_MEDIAN_TOL_M and float(inner.max()) < INNER_MAX_TOL_M
    # The jaw ends and the chin are oval points that the warp pins onto the model's jaw landmarks.
    assert float(errors[[0, C.CHIN, 16]].max()) < INNER_MAX_TOL_M


def test_landmarks_left_out_of_the_warp_are_still_found(ict: MorphableModel, canonical: torch.Tensor) -> None:
    verts, landmarks = mean_face(ict)
    errors = []
    for left_out in LEAVE_ONE_OUT:
        confidence = ict.landmark_confidence.clone()
        confidence[left_out] = 0.0
        result = dense.register_canonical_face(canonical, verts[0], ict.faces, ict.face_region, landmarks, confidence)
        view = M.ibug68_view(result.points(verts, ict.faces)[0])
        errors.append(float((view[left_out] - landmarks[left_out]).norm()))
    median = float(np.median(errors))
    print(f"\nICT leave-one-out, {len(LEAVE_ONE_OUT)} inner landmarks (mm): median {median * C.MM_PER_M:.2f} "
          f"p95 {np.quantile(errors, 0.95) * C.MM_PER_M:.2f}")
    assert median < LEAVE_ONE_OUT_MEDIAN_TOL_M


def test_correspondence_is_left_right_symmetric_on_ict(ict: MorphableModel) -> None:
    verts, _ = mean_face(ict)
    points = dense.dense_correspondence(ict).points(verts, ict.faces)[0]
    mirrored = points * points.new_tensor([-1.0, 1.0, 1.0])
    assert float((mirrored - points[list(M.MIRROR_468)]).norm(dim=-1).max()) < SYMMETRY_TOL_M


def test_memory_cache_and_determinism(procedural_model: LinearMorphableModel, canonical: torch.Tensor) -> None:
    assert dense.dense_correspondence(procedural_model) is dense.dense_correspondence(procedural_model)
    verts, landmarks = mean_face(procedural_model)
    args = (canonical, verts[0], procedural_model.faces, procedural_model.face_region, landmarks,
            procedural_model.landmark_confidence)
    first, second = dense.register_canonical_face(*args), dense.register_canonical_face(*args)
    for name in ("triangles", "bary", "contour", "residual_m"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def cache_files(cache: Path) -> list[Path]:
    return sorted((cache / dense.CACHE_FOLDER).glob("*.npz"))


def assert_same(a: dense.DenseCorrespondence, b: dense.DenseCorrespondence) -> None:
    for name in ("triangles", "bary", "contour", "residual_m"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_disk_cache_round_trip(canonical: torch.Tensor, _private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    computed = dense.dense_correspondence(LinearMorphableModel(procedural_data()))
    assert len(cache_files(_private_cache)) == 1

    def no_registration(*args: object) -> None:
        raise AssertionError("recomputed although a valid cache file exists")

    monkeypatch.setattr(dense, "register_canonical_face", no_registration)
    assert_same(dense.dense_correspondence(LinearMorphableModel(procedural_data())), computed)  # a new model object
    with pytest.raises(AssertionError, match="recomputed"):  # another mesh has another key
        dense.dense_correspondence(LinearMorphableModel(procedural_data(grid=24)))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "negative_bary", "missing_array"])
def test_corrupt_cache_file_is_recomputed(damage: str, canonical: torch.Tensor, _private_cache: Path) -> None:
    computed = dense.dense_correspondence(LinearMorphableModel(procedural_data()))
    (path,) = cache_files(_private_cache)
    arrays = dict(np.load(path, allow_pickle=False))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "negative_bary":
        arrays["bary"][0] = [1.5, -0.5, 0.0]
        np.savez(path, **arrays)
    else:
        del arrays["triangles"]
        np.savez(path, **arrays)
    assert_same(dense.dense_correspondence(LinearMorphableModel(procedural_data())), computed)
    assert_same(dense._read_cache(path, num_faces=len(procedural_data().faces)), computed)  # rewritten


def test_unwritable_cache_warns_and_still_returns(canonical: torch.Tensor, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("the cache folder cannot be created under a file")
    monkeypatch.setenv("F2P_CACHE_DIR", str(blocker))
    with pytest.warns(UserWarning, match="could not write"):
        result = dense.dense_correspondence(LinearMorphableModel(procedural_data()))
    assert result.triangles.shape == (M.NUM_MESH_POINTS,)


def test_missing_canonical_face_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2P_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="canonical_face_model.obj"):
        dense.load_canonical_face()
