"""MediaPipe face-mesh tables and the iBUG-68 view, checked on MediaPipe's canonical face."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from f2p import conventions as C
from f2p import face_mesh as M
from f2p.morphable.obj_io import read_obj

CANONICAL_OBJ = Path("mediapipe") / "canonical_face_model.obj"
SYMMETRY_TOL_CM = 1e-5


@pytest.fixture(scope="module")
def canonical(models_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(468, 3) float64 vertices (cm) and (F, 3) faces of MediaPipe's canonical face."""
    path = models_dir / CANONICAL_OBJ
    if not path.is_file():
        pytest.skip(f"MediaPipe canonical face not found at {path}")
    mesh = read_obj(path)
    return torch.from_numpy(mesh.verts), torch.from_numpy(mesh.faces)


def test_table_sizes_and_ranges() -> None:
    assert M.NUM_DENSE_POINTS == 478 and M.NUM_MESH_POINTS == 468
    assert M.RIGHT_IRIS == (468, 469, 470, 471, 472) and M.LEFT_IRIS == (473, 474, 475, 476, 477)
    assert len(M.FACE_OVAL) == len(set(M.FACE_OVAL)) == 36
    assert len(M.IBUG68_INNER) == len(C.INNER_51)
    assert all(1 <= len(entry) <= 2 for entry in M.IBUG68_INNER)
    used = [*M.FACE_OVAL, *(i for entry in M.IBUG68_INNER for i in entry)]
    assert all(0 <= i < M.NUM_MESH_POINTS for i in used)
    assert sorted(M.MIRROR_468) == list(range(M.NUM_MESH_POINTS))
    assert all(M.MIRROR_468[M.MIRROR_468[i]] == i for i in range(M.NUM_MESH_POINTS))
    assert [i for i in range(M.NUM_MESH_POINTS) if M.MIRROR_468[i] == i] == list(M.MIDLINE)


def test_jaw_contour_bounds_are_pinned() -> None:
    assert (M.JAW_RIGHT_END, M.CHIN_POINT, M.JAW_LEFT_END) == (127, 152, 356)
    assert M.JAW_CONTOUR[0] == M.JAW_RIGHT_END and M.JAW_CONTOUR[-1] == M.JAW_LEFT_END
    assert M.JAW_CONTOUR[len(M.JAW_CONTOUR) // 2] == M.CHIN_POINT
    assert len(M.JAW_CONTOUR) == 23 and set(M.JAW_CONTOUR) <= set(M.FACE_OVAL)


def test_face_oval_is_a_closed_edge_loop_of_the_canonical_mesh(canonical) -> None:
    _, faces = canonical
    edges = {frozenset((tri[k], tri[(k + 1) % 3])) for tri in faces.tolist() for k in range(3)}
    loop = [*M.FACE_OVAL, M.FACE_OVAL[0]]
    assert all(frozenset(pair) in edges for pair in zip(loop[:-1], loop[1:]))


def test_mirror_table_matches_canonical_symmetry(canonical) -> None:
    verts, _ = canonical
    flipped = verts * verts.new_tensor([-1.0, 1.0, 1.0])
    nearest = torch.cdist(flipped, verts).argmin(dim=1)
    assert nearest.tolist() == list(M.MIRROR_468)
    assert torch.allclose(flipped, verts[list(M.MIRROR_468)], atol=SYMMETRY_TOL_CM)


def test_ibug68_view_is_left_right_symmetric(canonical) -> None:
    verts, _ = canonical
    view = M.ibug68_view(verts)
    assert view.shape == (68, 3)
    mirrored = view * view.new_tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(mirrored, view[list(C.IBUG68_MIRROR)], atol=SYMMETRY_TOL_CM)
    # f2p's frame: the subject's right (jaw start, right eye) at negative x.
    assert view[0, 0] < 0 and view[C.RIGHT_EYE_OUTER, 0] < 0


def test_ibug68_view_landmarks_are_where_they_belong(canonical) -> None:
    verts, _ = canonical
    view = M.ibug68_view(verts)
    jaw = view[list(C.JAW)]
    assert int(jaw[:, 1].argmin()) == C.CHIN
    assert torch.allclose(view[C.CHIN], verts[M.CHIN_POINT])
    assert torch.allclose(view[0], verts[M.JAW_RIGHT_END]) and torch.allclose(view[16], verts[M.JAW_LEFT_END])
    # The jaw ends are the widest oval points, near the height of the outer eye corners.
    oval_x = verts[list(M.FACE_OVAL), 0]
    assert verts[M.JAW_RIGHT_END, 0] == oval_x.min() and verts[M.JAW_LEFT_END, 0] == oval_x.max()
    assert abs(float(view[0, 1] - view[C.RIGHT_EYE_OUTER, 1])) < 1.0  # cm
    assert int(view[:, 2].argmax()) == C.NOSE_TIP
    assert float(verts[:, 2].max() - view[C.NOSE_TIP, 2]) < 0.1  # cm: the most forward region of the mesh
    eyes = view[list(C.RIGHT_EYE + C.LEFT_EYE)]
    assert int(eyes[:, 0].argmin()) == C.RIGHT_EYE.index(C.RIGHT_EYE_OUTER)
    assert int(eyes[:, 0].argmax()) == len(C.RIGHT_EYE) + C.LEFT_EYE.index(C.LEFT_EYE_OUTER)


def test_jaw_is_equally_spaced_by_arc_length(canonical) -> None:
    verts, _ = canonical
    for points in (verts, verts[:, :2]):
        jaw = M.ibug68_view(points)[list(C.JAW)]
        contour = points[list(M.JAW_CONTOUR)]
        total = (contour[1:] - contour[:-1]).norm(dim=-1).sum()
        # Chords are at most the arc between them; on this smooth contour they are close to it.
        chords = (jaw[1:] - jaw[:-1]).norm(dim=-1)
        assert torch.all(chords <= total / 16 + 1e-9) and torch.all(chords > 0.95 * total / 16)


def test_resample_by_arc_length_on_a_known_path() -> None:
    # An L-shaped path with unevenly placed vertices: 3 units along x, then 1 up (total length 4).
    path = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0], [3.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    out = M.resample_by_arc_length(path, 5)
    expected = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(out, expected)
    batched = M.resample_by_arc_length(torch.stack([path, 2 * path])[:, None], 5)  # (2, 1, 5, 2)
    assert batched.shape == (2, 1, 5, 2) and torch.allclose(batched[1, 0], 2 * expected)
    with pytest.raises(ValueError):
        M.resample_by_arc_length(path[:1], 5)


def test_ibug68_view_shapes_and_dense_input() -> None:
    points = torch.randn(2, 3, M.NUM_DENSE_POINTS, 2, dtype=torch.float64, requires_grad=True)
    view = M.ibug68_view(points)
    assert view.shape == (2, 3, 68, 2)
    assert torch.allclose(view, M.ibug68_view(points[..., :M.NUM_MESH_POINTS, :]))
    view.sum().backward()
    assert points.grad is not None and torch.isfinite(points.grad).all()
    assert points.grad[..., M.NUM_MESH_POINTS:, :].abs().sum() == 0  # irises are not used
    with pytest.raises(ValueError, match="468 or 478"):
        M.ibug68_view(torch.zeros(68, 2))
    with pytest.raises(ValueError):
        M.ibug68_view(torch.zeros(468, 4))
