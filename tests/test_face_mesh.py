"""MediaPipe face-mesh tables and the iBUG-68 view, checked on MediaPipe's canonical face."""

from __future__ import annotations

import math
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
    assert len(M.IBUG68_JAW) == len(C.JAW) and len(M.IBUG68_INNER) == len(C.INNER_51)
    assert M.IBUG68_TABLE == M.IBUG68_JAW + M.IBUG68_INNER and len(M.IBUG68_TABLE) == C.NUM_LANDMARKS
    assert all(1 <= len(entry) <= 2 for entry in M.IBUG68_TABLE)
    used = [*M.FACE_OVAL, *(i for entry in M.IBUG68_TABLE for i in entry)]
    assert all(0 <= i < M.NUM_MESH_POINTS for i in used)
    assert sorted(M.MIRROR_468) == list(range(M.NUM_MESH_POINTS))
    assert all(M.MIRROR_468[M.MIRROR_468[i]] == i for i in range(M.NUM_MESH_POINTS))
    assert [i for i in range(M.NUM_MESH_POINTS) if M.MIRROR_468[i] == i] == list(M.MIDLINE)


def test_jaw_runs_along_the_face_oval_from_ear_to_ear() -> None:
    assert (M.IBUG68_JAW[0], M.IBUG68_JAW[C.CHIN], M.IBUG68_JAW[16]) == ((127,), (152,), (356,))
    assert all(set(entry) <= set(M.FACE_OVAL) for entry in M.IBUG68_JAW)
    # The oval loop runs up the subject's right side after the chin: reversed, it runs from the right ear (127)
    # over the chin to the left ear (356), the iBUG jaw order; each entry's mean moves strictly along it.
    lower = list(reversed(M.FACE_OVAL[M.FACE_OVAL.index(356):M.FACE_OVAL.index(127) + 1]))
    places = [sum(lower.index(i) for i in entry) / len(entry) for entry in M.IBUG68_JAW]
    assert lower[0] == 127 and lower[-1] == 356 and places == sorted(set(places))


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
    assert torch.allclose(view[C.CHIN], verts[152])
    assert torch.allclose(view[0], verts[127]) and torch.allclose(view[16], verts[356])
    # The jaw ends are the widest oval points, near the height of the outer eye corners.
    oval_x = verts[list(M.FACE_OVAL), 0]
    assert view[0, 0] == oval_x.min() and view[16, 0] == oval_x.max()
    assert abs(float(view[0, 1] - view[C.RIGHT_EYE_OUTER, 1])) < 1.0  # cm
    assert int(view[:, 2].argmax()) == C.NOSE_TIP
    assert float(verts[:, 2].max() - view[C.NOSE_TIP, 2]) < 0.1  # cm: the most forward region of the mesh
    eyes = view[list(C.RIGHT_EYE + C.LEFT_EYE)]
    assert int(eyes[:, 0].argmin()) == C.RIGHT_EYE.index(C.RIGHT_EYE_OUTER)
    assert int(eyes[:, 0].argmax()) == len(C.RIGHT_EYE) + C.LEFT_EYE.index(C.LEFT_EYE_OUTER)


def test_chin_stays_on_the_menton_of_a_turned_face(canonical) -> None:
    """The jaw is fixed mesh points, so the image of a turned face has its chin where the menton's image is."""
    verts, _ = canonical
    for yaw in (math.radians(-40.0), math.radians(25.0)):
        turn = torch.tensor([[math.cos(yaw), 0.0, math.sin(yaw)], [0.0, 1.0, 0.0],
                             [-math.sin(yaw), 0.0, math.cos(yaw)]], dtype=torch.float64)
        scale = torch.tensor([3.0, -3.0], dtype=torch.float64)  # pixels per cm, image y down

        def camera(points: torch.Tensor) -> torch.Tensor:  # orthographic image of the turned face
            return (points @ turn.T)[:, :2] * scale + 100.0

        view = M.ibug68_view(camera(verts))
        assert torch.allclose(view[C.CHIN], camera(verts)[152])
        # The view commutes with an affine camera: the image of the 3-D view is the view of the image.
        assert torch.allclose(view, camera(M.ibug68_view(verts)))


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
