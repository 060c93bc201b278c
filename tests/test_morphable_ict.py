"""ICT FaceKit: the shared compact npz (loaded once) and the original OBJ-folder format (tiny generated files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p import conventions as C
from f2p.morphable import ict
from f2p.morphable.base import LinearMorphableModel, ModelFileError
from f2p.morphable.registry import load_model



@pytest.fixture(scope="session")
def ict_model(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LinearMorphableModel:
    """ICT FaceKit from the shared models, found by name through F2P_MODEL_PATH."""
    if not (models_dir / "ict_facekit").is_dir():
        pytest.skip(f"ICT FaceKit not found in {models_dir}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("F2P_MODEL_PATH", str(models_dir))
        mp.setenv("F2P_CACHE_DIR", str(tmp_path_factory.mktemp("empty_cache")))
        return load_model("ict")


def neutral_landmarks(model: LinearMorphableModel, **params: torch.Tensor) -> torch.Tensor:
    full = model.zero_params(1)
    full.update(params)
    return model(**full).landmarks[0]


def test_ict_shapes_units_and_groups(ict_model):
    assert ict_model.num_vertices == ict.SKIN_VERTICES
    assert tuple(ict_model.faces.shape) == (2 * 14034, 3)  # 14034 quads split in two
    assert int(ict_model.face_region.sum()) == ict.FACE_AREA_VERTICES
    identity, expression = ict_model.groups["identity"], ict_model.groups["expression"]
    assert identity.size == 100 and not identity.bounded and set(identity.prior_std) == {1.0}
    assert expression.size == 53 and expression.component_names == ict.EXPRESSION_NAMES
    assert set(expression.lower) == {0.0} and set(expression.upper) == {1.0}
    assert set(expression.prior_std) == {ict.EXPRESSION_PRIOR_STD}
    verts = ict_model.mean
    head_width = (verts[:, 0].max() - verts[:, 0].min()).item()
    face = verts[ict_model.face_region]
    face_width = (face[:, 0].max() - face[:, 0].min()).item()
    assert 0.15 < head_width < 0.30, head_width  # metres, not cm
    assert 0.12 < face_width < head_width, face_width
    assert ict_model.metadata["license"].startswith("MIT")


def test_ict_landmarks_follow_the_conventions(ict_model):
    lmk = neutral_landmarks(ict_model)
    assert lmk[:, 2].argmax().item() == C.NOSE_TIP
    right, left = lmk[C.RIGHT_EYE_OUTER], lmk[C.LEFT_EYE_OUTER]
    assert right[0] < 0 < left[0]  # the subject's right is model -x
    assert torch.allclose(right * torch.tensor([-1.0, 1.0, 1.0]), left, atol=3 * C.M_PER_MM)
    jaw_x = lmk[list(C.JAW), 0]
    assert (jaw_x.diff() > -C.M_PER_MM).all(), jaw_x  # from the subject's right (-x) to the left (+x)


def test_ict_jaw_open_moves_chin_down(ict_model):
    jaw_open = torch.zeros(1, 53)
    jaw_open[0, ict.EXPRESSION_NAMES.index("jawOpen")] = 1.0
    closed = neutral_landmarks(ict_model)[C.CHIN]
    opened = neutral_landmarks(ict_model, expression=jaw_open)[C.CHIN]
    assert opened[1] < closed[1] - 0.01  # at least 1 cm down


def test_ict_gradients_reach_every_group_and_state_dict_is_empty(ict_model):
    params = {k: (0.1 * torch.rand_like(v)).requires_grad_() for k, v in ict_model.zero_params(2).items()}
    ict_model(**params).verts.square().sum().backward()
    for name, value in params.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, name
    assert ict_model.state_dict() == {}


# --- the original FaceXModel OBJ folder, on tiny generated files -------------------------------------------

QUADS = np.array([[0, 1, 4, 3], [1, 2, 5, 4], [3, 4, 7, 6], [4, 5, 8, 7]])  # a 3 x 3 grid of 9 vertices
NEUTRAL_CM = np.array([[x, y, 1.0 + 0.1 * x * y] for y in (-1.0, 0.0, 1.0) for x in (-1.0, 0.0, 1.0)])
UV = NEUTRAL_CM[:, :2] * 0.5 + 0.5
EXPRESSIONS = ("jawOpen", "eyeBlink_L", "mouthSmile_R")
LANDMARKS = np.arange(68) % 9


def offsets(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.5, size=NEUTRAL_CM.shape)


def obj_text(verts: np.ndarray, quads: np.ndarray = QUADS) -> str:
    lines = ["# ICT-like test mesh", "mtllib ICTFaceModelMaterial.mtl"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in UV]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in quad) for quad in quads]
    return "\n".join(lines) + "\n"


def write_facex_folder(folder: Path, neutral: np.ndarray = NEUTRAL_CM, quads: np.ndarray = QUADS,
                       landmarks: np.ndarray = LANDMARKS) -> Path:
    """A FaceXModel folder: neutral, 2 identities, 3 expressions, vertex_indices.json (cm, like ICT)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ict.NEUTRAL_OBJ).write_text(obj_text(neutral, quads))
    for k in range(2):
        (folder / f"identity{k:03d}.obj").write_text(obj_text(neutral + offsets(k), quads))
    for k, name in enumerate(EXPRESSIONS):
        (folder / f"{name}.obj").write_text(obj_text(neutral + offsets(10 + k), quads))
    indices = {"expressions": list(EXPRESSIONS), "idx_to_landmark_verts": landmarks.tolist()}
    (folder / ict.INDICES_JSON).write_text(json.dumps(indices))
    return folder


def test_ict_obj_folder_converts_units_deltas_and_names(tmp_path):
    data = ict.load_ict_obj_folder(write_facex_folder(tmp_path / "FaceXModel"))
    np.testing.assert_allclose(data.mean, NEUTRAL_CM * 0.01, atol=1e-7)
    np.testing.assert_allclose(data.bases["identity"][1], offsets(1) * 0.01, atol=1e-7)
    np.testing.assert_allclose(data.bases["expression"][2], offsets(12) * 0.01, atol=1e-7)
    expression = {g.name: g for g in data.groups}["expression"]
    assert expression.component_names == EXPRESSIONS and expression.upper == (1.0,) * 3
    assert np.array_equal(data.faces, ict.quads_to_triangles(QUADS))  # same split as the compact npz
    assert np.array_equal(data.faces_uv, data.faces) and np.allclose(data.uv, UV)
    assert np.array_equal(data.landmark_vertices[:, 0], LANDMARKS)


def test_ict_obj_and_compact_npz_give_the_same_model(tmp_path):
    from_obj = LinearMorphableModel(ict.load_ict_obj_folder(write_facex_folder(tmp_path / "FaceXModel")))
    compact = tmp_path / "compact.npz"
    np.savez(compact, neutral=NEUTRAL_CM.astype(np.float32), faces=QUADS.astype(np.int32),
             face_uv_idx=QUADS.astype(np.int32), uv=UV.astype(np.float32),
             identity_deltas=np.stack([offsets(0), offsets(1)]).astype(np.float32),
             expression_deltas=np.stack([offsets(10 + k) for k in range(3)]).astype(np.float32),
             expression_names=np.array(EXPRESSIONS), landmarks68_vertex_idx=LANDMARKS)
    from_npz = load_model(compact)
    params = {k: torch.rand_like(v) for k, v in from_obj.zero_params(3).items()}
    assert torch.equal(from_obj.faces, from_npz.faces)
    torch.testing.assert_close(from_obj(**params).verts, from_npz(**params).verts, atol=1e-6, rtol=0)


def test_ict_full_head_keeps_the_skin_subset(tmp_path, monkeypatch):
    # Pretend the 9-vertex grid is the full head and its first 6 vertices (two rows) the skin.
    monkeypatch.setattr(ict, "FULL_HEAD_VERTICES", 9)
    monkeypatch.setattr(ict, "SKIN_VERTICES", 6)
    data = ict.load_ict_obj_folder(write_facex_folder(tmp_path / "FaceXModel", landmarks=np.arange(68) % 6))
    assert data.mean.shape == (6, 3) and data.bases["expression"].shape == (3, 6, 3)
    assert np.array_equal(data.faces, ict.quads_to_triangles(QUADS[:2]))  # faces touching vertices 6..8 dropped


def test_quads_with_minus_one_are_triangles():
    tris = ict.quads_to_triangles(np.array([[0, 1, 2, 3], [4, 5, 6, -1]]))
    assert tris.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6]]


def test_ict_obj_folder_errors_name_the_file(tmp_path):
    folder = write_facex_folder(tmp_path / "FaceXModel")
    (folder / "eyeBlink_L.obj").write_text(obj_text(NEUTRAL_CM[:8], QUADS[:1]))
    with pytest.raises(ModelFileError, match=r"eyeBlink_L\.obj: has 8 vertices, generic_neutral_mesh\.obj has 9"):
        ict.load_ict_obj_folder(folder)
    (folder / "eyeBlink_L.obj").unlink()
    with pytest.raises(ModelFileError, match=r"eyeBlink_L\.obj: file not found"):
        ict.load_ict_obj_folder(folder)
    (folder / ict.INDICES_JSON).write_text('{"expressions": ["jawOpen"]}')
    with pytest.raises(ModelFileError, match=r"vertex_indices\.json: not a valid ICT vertex_indices\.json"):
        ict.load_ict_obj_folder(folder)


def test_ict_compact_npz_with_mismatched_shapes_is_rejected(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, neutral=NEUTRAL_CM, faces=QUADS, face_uv_idx=QUADS, uv=UV,
             identity_deltas=np.zeros((2, 8, 3)), expression_deltas=np.zeros((3, 9, 3)),
             expression_names=np.array(EXPRESSIONS), landmarks68_vertex_idx=LANDMARKS)
    with pytest.raises(ModelFileError, match=r"bad\.npz: array 'identity_deltas' has shape \(2, 8, 3\), expected \(\*, 9, 3\)"):
        load_model(bad)

