import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from f2p import conventions as C
from f2p.morphable.base import ModelFileError
from f2p.morphable import load_model
from f2p.morphable.flame import FLAME_NUM_SHAPE, JAW, LEFT_EYE, NECK, RIGHT_EYE, ROOT, FlameModel, load_flame

COLS, ROWS = 6, 5  # a 30-vertex height-field "head": row 0 is the bottom (neck), row 4 the top
ROOT_PARENT = 4294967295  # what FLAME's kintree_table stores for the root


def _grid_index(row: int, col: int) -> int:
    return row * COLS + col


def _grid_mesh() -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(np.linspace(-0.06, 0.06, COLS), np.linspace(-0.08, 0.08, ROWS))
    verts = np.stack([x, y, 0.05 * (1 - (x / 0.09) ** 2 - (y / 0.12) ** 2)], axis=-1).reshape(-1, 3)
    faces = []
    for r in range(ROWS - 1):
        for c in range(COLS - 1):
            a, b, d, e = _grid_index(r, c), _grid_index(r, c + 1), _grid_index(r + 1, c), _grid_index(r + 1, c + 1)
            faces += [(a, b, e), (a, e, d)]  # counter-clockwise seen from +z
    return verts, np.asarray(faces, dtype=np.uint32)


def _chumpy_dumps(obj, ch_values: dict) -> bytes:
    """Pickle ``obj`` with the arrays named in ``ch_values`` wrapped in a fake ``chumpy.ch.Ch``."""
    class Ch:
        def __init__(self, x):
            self.x, self._dirty_vars = x, {"x"}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch, package.ch = Ch, module
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        return pickle.dumps({**obj, **{k: Ch(v) for k, v in ch_values.items()}}, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def _flame_arrays(posedirs_scale: float = 0.01, num_components: int = 400, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    verts, faces = _grid_mesh()
    V = len(verts)
    regressor = np.zeros((5, V))
    regressor[ROOT] = 1.0 / V
    regressor[NECK, [_grid_index(0, c) for c in range(COLS)]] = 1.0 / COLS
    # An affine combination that puts the jaw hinge behind the face (z ~ 0.007), above the chin row.
    regressor[JAW, [_grid_index(2, 0), _grid_index(2, COLS - 1)]] = 1.0
    regressor[JAW, [_grid_index(2, 2), _grid_index(2, 3)]] = -0.5
    regressor[LEFT_EYE, [_grid_index(3, 4), _grid_index(3, 5)]] = 0.5  # the subject's left is +x
    regressor[RIGHT_EYE, [_grid_index(3, 0), _grid_index(3, 1)]] = 0.5
    weights = np.zeros((V, 5))
    weights[:, ROOT] = 1.0
    for c in range(COLS):
        weights[_grid_index(0, c)] = np.eye(5)[NECK]
        weights[_grid_index(1, c)] = np.eye(5)[JAW]
        weights[_grid_index(2, c)] = 0.5 * (np.eye(5)[JAW] + np.eye(5)[ROOT])
    weights[_grid_index(3, 4)] = np.eye(5)[LEFT_EYE]
    weights[_grid_index(3, 1)] = np.eye(5)[RIGHT_EYE]
    return {
        "v_template": verts, "f": faces,
        "shapedirs": rng.normal(scale=0.002, size=(V, 3, num_components)),
        "posedirs": rng.normal(scale=posedirs_scale, size=(V, 3, 36)),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "kintree_table": np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "weights": weights, "bs_style": "lbs", "bs_type": "lrotmin",
    }


def _write_flame(folder, arrays: dict, name: str = "generic_model.pkl"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    plain = {k: v for k, v in arrays.items() if k != "shapedirs"}
    path.write_bytes(_chumpy_dumps(plain, {"shapedirs": arrays["shapedirs"]}))
    return path


def _static_embedding(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(51,) face indices and (51, 3) barycentric coordinates; eye corners and lower lip at realistic places."""
    rng = np.random.default_rng(seed)
    num_faces = 2 * (ROWS - 1) * (COLS - 1)
    faces_idx = rng.integers(0, num_faces, size=51)
    face_of_cell = lambda row, col: 2 * (row * (COLS - 1) + col)  # noqa: E731 - first triangle of a grid cell
    faces_idx[C.RIGHT_EYE_OUTER - 17] = face_of_cell(3, 0)
    faces_idx[C.LEFT_EYE_OUTER - 17] = face_of_cell(3, 4)
    faces_idx[57 - 17] = face_of_cell(1, 2)
    bary = rng.uniform(0.1, 1.0, size=(51, 3))
    return faces_idx, bary / bary.sum(axis=1, keepdims=True)


def _dynamic_embedding(seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bary = rng.uniform(0.1, 1.0, size=(3, 17, 3))
    return rng.integers(0, 40, size=(3, 17)), bary / bary.sum(axis=-1, keepdims=True)


@pytest.fixture
def flame_folder(tmp_path):
    arrays = _flame_arrays()
    path = _write_flame(tmp_path / "flame", arrays)
    static_faces, static_bary = _static_embedding()
    dynamic_faces, dynamic_bary = _dynamic_embedding()
    # DECA's landmark_embedding.npy: a pickled dict, the dynamic part as torch tensors.
    np.save(path.parent / "landmark_embedding.npy", {
        "static_lmk_faces_idx": static_faces, "static_lmk_bary_coords": static_bary,
        "dynamic_lmk_faces_idx": torch.from_numpy(dynamic_faces),
        "dynamic_lmk_bary_coords": torch.from_numpy(dynamic_bary)}, allow_pickle=True)
    return path, arrays


def _rotation(axis_angle) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(axis_angle, dtype=np.float64)).as_matrix()


def _reference_lbs(arrays: dict, identity: np.ndarray, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """smplx-style LBS with 4x4 homogeneous transforms, in float64 numpy; pose (5, 3) with root first."""
    shapedirs = arrays["shapedirs"]
    v = (arrays["v_template"] + shapedirs[..., :len(identity)] @ identity
         + shapedirs[..., FLAME_NUM_SHAPE:FLAME_NUM_SHAPE + len(expression)] @ expression)
    joints = arrays["J_regressor"].toarray() @ v
    rots = [_rotation(p) for p in pose]
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v + arrays["posedirs"] @ feature
    parents = [-1, 0, 1, 1, 1]
    world = []
    for j, r in enumerate(rots):
        local = np.eye(4)
        local[:3, :3] = r
        local[:3, 3] = joints[j] - (joints[parents[j]] if j else 0)
        world.append(local if j == 0 else world[parents[j]] @ local)
    skin = []
    for j, g in enumerate(world):
        a = g.copy()
        a[:3, 3] -= g[:3, :3] @ joints[j]
        skin.append(a)
    transforms = np.einsum("vj,jab->vab", arrays["weights"], np.stack(skin))
    homogeneous = np.concatenate([v_posed, np.ones((len(v_posed), 1))], axis=1)
    return np.einsum("vab,vb->va", transforms, homogeneous)[:, :3]


def test_groups_sizes_bounds_and_zero_params(flame_folder):
    path, arrays = flame_folder
    model = load_flame(path)
    assert {g.name: g.size for g in model.groups.values()} == {
        "identity": 100, "expression": 50, "jaw_pose": 3, "neck_pose": 3, "eye_pose": 6}
    assert model.groups["jaw_pose"].bounded and not model.groups["neck_pose"].bounded
    assert not model.groups["identity"].bounded and not model.has_albedo
    mesh = model(**model.zero_params(2))
    assert mesh.albedo is None and mesh.verts.shape == (2, 30, 3) and mesh.landmarks.shape == (2, 68, 3)
    assert torch.allclose(mesh.verts, torch.tensor(arrays["v_template"], dtype=torch.float32).expand(2, -1, -1), atol=1e-7)
    assert model.face_region.all() and model.faces.dtype == torch.long
    assert model.state_dict() == {}  # model data never reach checkpoints
    assert isinstance(load_model(path), FlameModel)  # the registry dispatches .pkl files here


def test_shape_coefficient_adds_its_shapedirs_column(flame_folder):
    path, arrays = flame_folder
    model = load_flame(path, num_identity=7, num_expression=5)
    template = torch.tensor(arrays["v_template"], dtype=torch.float32)
    params = model.zero_params(1)
    params["identity"][0, 0] = 1.0
    expected = template + torch.tensor(arrays["shapedirs"][..., 0], dtype=torch.float32)
    assert torch.allclose(model(**params).verts[0], expected, atol=1e-6)
    params = model.zero_params(1)
    params["expression"][0, 2] = 1.0
    expected = template + torch.tensor(arrays["shapedirs"][..., FLAME_NUM_SHAPE + 2], dtype=torch.float32)
    assert torch.allclose(model(**params).verts[0], expected, atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*landmarks have no vertex")
def test_jaw_pose_rotates_only_jaw_vertices_about_the_jaw_joint(tmp_path):
    arrays = _flame_arrays(posedirs_scale=0.0)
    model = load_flame(_write_flame(tmp_path, arrays))
    axis_angle = np.array([0.4, 0.05, -0.03])
    params = model.zero_params(1)
    params["jaw_pose"][0] = torch.tensor(axis_angle)
    verts = model(**params).verts[0].double().numpy()
    template = arrays["v_template"]
    jaw_joint = arrays["J_regressor"].toarray()[JAW] @ template
    rotated = (template - jaw_joint) @ _rotation(axis_angle).T + jaw_joint
    w_jaw = arrays["weights"][:, JAW]
    assert np.allclose(verts[w_jaw == 0], template[w_jaw == 0], atol=1e-7)
    assert np.allclose(verts[w_jaw == 1], rotated[w_jaw == 1], atol=1e-6)
    half = w_jaw == 0.5
    assert np.allclose(verts[half], 0.5 * (template[half] + rotated[half]), atol=1e-6)
    # Positive x opens the mouth: the chin row (jaw vertices, in front of and below the hinge) moves down.
    assert (verts[w_jaw == 1, 1] < template[w_jaw == 1, 1]).all()


def test_full_pose_with_correctives_matches_reference_lbs(flame_folder):
    path, arrays = flame_folder
    model = load_flame(path, num_identity=4, num_expression=3)
    rng = np.random.default_rng(5)
    identity, expression = rng.normal(size=4), rng.normal(size=3)
    neck, jaw, eyes = rng.normal(scale=0.3, size=3), np.array([0.3, 0.1, -0.05]), rng.normal(scale=0.3, size=6)
    params = {"identity": identity, "expression": expression, "neck_pose": neck, "jaw_pose": jaw, "eye_pose": eyes}
    mesh = model(**{k: torch.tensor(v, dtype=torch.float32)[None] for k, v in params.items()})
    pose = np.stack([np.zeros(3), neck, jaw, eyes[:3], eyes[3:]])
    expected = _reference_lbs(arrays, identity, expression, pose)
    assert np.abs(expected - arrays["v_template"]).max() > 0.01  # the pose really moves the mesh
    assert np.allclose(mesh.verts[0].double().numpy(), expected, atol=2e-6)
    # Landmarks follow the posed mesh through the embedding.
    picked = mesh.verts[0][model.landmark_vertices]  # (68, 3, 3)
    assert torch.allclose(mesh.landmarks[0], (picked * model.landmark_weights[..., None]).sum(1), atol=1e-7)


def test_gradients_reach_every_group_and_pass_gradcheck(flame_folder):
    path, _ = flame_folder
    model = load_flame(path, num_identity=3, num_expression=2).double()
    names = list(model.groups)
    inputs = tuple(torch.randn(1, model.groups[n].size, dtype=torch.float64).mul_(0.2).requires_grad_() for n in names)

    def run(*values):
        mesh = model(**dict(zip(names, values)))
        return mesh.verts, mesh.landmarks

    assert torch.autograd.gradcheck(run, inputs)
    mesh_verts, landmarks = run(*inputs)
    ((mesh_verts * torch.randn_like(mesh_verts)).sum() + landmarks.square().sum()).backward()
    for name, value in zip(names, inputs):
        assert value.grad is not None and value.grad.abs().sum() > 0, name


def test_landmarks_use_static_and_frontal_dynamic_embedding(flame_folder):
    path, arrays = flame_folder
    model = load_flame(path)
    faces = arrays["f"].astype(np.int64)
    static_faces, static_bary = _static_embedding()
    dynamic_faces, dynamic_bary = _dynamic_embedding()
    assert np.array_equal(model.landmark_vertices[17:].numpy(), faces[static_faces])
    assert np.allclose(model.landmark_weights[17:].numpy(), static_bary)
    assert np.array_equal(model.landmark_vertices[:17].numpy(), faces[dynamic_faces[0]])  # yaw 0 row
    assert np.allclose(model.landmark_weights[:17].numpy(), dynamic_bary[0])
    assert torch.all(model.landmark_confidence == 1)


def test_flame_pytorch_static_pkl_with_dynamic_npy(tmp_path):
    arrays = _flame_arrays()
    path = _write_flame(tmp_path, arrays)
    static_faces, static_bary = _static_embedding()
    dynamic_faces, dynamic_bary = _dynamic_embedding()
    (tmp_path / "flame_static_embedding.pkl").write_bytes(
        pickle.dumps({"lmk_face_idx": static_faces.astype(np.uint32), "lmk_b_coords": static_bary}, protocol=2))
    np.save(tmp_path / "flame_dynamic_embedding.npy",
            {"lmk_face_idx": dynamic_faces, "lmk_b_coords": dynamic_bary}, allow_pickle=True)
    model = load_flame(path)
    assert np.array_equal(model.landmark_vertices[:17].numpy(), arrays["f"].astype(np.int64)[dynamic_faces[0]])
    assert torch.all(model.landmark_confidence == 1)


def test_static_only_embedding_estimates_the_jaw_line(tmp_path):
    arrays = _flame_arrays()
    path = _write_flame(tmp_path, arrays)
    static_faces, static_bary = _static_embedding()
    embedding = tmp_path / "elsewhere" / "my_embedding.pkl"
    embedding.parent.mkdir()
    embedding.write_bytes(pickle.dumps({"lmk_face_idx": static_faces, "lmk_b_coords": static_bary}, protocol=2))
    model = load_flame(path, landmark_embedding=embedding)
    assert torch.all(model.landmark_confidence[:17] == 0.5) and torch.all(model.landmark_confidence[17:] == 1)
    landmarks = model(**model.zero_params(1)).landmarks[0].numpy()
    jaw = landmarks[:17]
    assert jaw[0, 0] < -0.03 and jaw[16, 0] > 0.03  # the subject's right ear is model -x
    assert jaw[8, 1] == jaw[:, 1].min() < landmarks[57, 1] and abs(jaw[8, 0]) <= 0.013  # chin: lowest, middle
    assert np.all(np.diff(jaw[:9, 1]) <= 1e-9) and np.all(np.diff(jaw[8:, 1]) >= -1e-9)  # down to the chin, up again


def test_no_embedding_warns_and_gives_zero_confidence(tmp_path):
    path = _write_flame(tmp_path, _flame_arrays())
    with pytest.warns(UserWarning, match="68 of 68 landmarks have no vertex"):
        model = load_flame(path)
    assert torch.all(model.landmark_confidence == 0)


def test_masks_file_sets_face_region(flame_folder):
    path, _ = flame_folder
    face = np.array([3, 4, 9, 10], dtype=np.int64)
    (path.parent / "FLAME_masks.pkl").write_bytes(pickle.dumps({"face": face, "neck": np.arange(6)}, protocol=2))
    model = load_flame(path)
    assert model.face_region.nonzero().flatten().tolist() == face.tolist()
    (path.parent / "FLAME_masks.pkl").write_bytes(pickle.dumps({"neck": np.arange(6)}, protocol=2))
    with pytest.raises(ModelFileError, match="no 'face' region"):
        load_flame(path)


def test_malicious_flame_pickle_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class RunsShell:
        def __reduce__(self):
            return os.system, (f"touch '{marker}'",)

    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({**_flame_arrays(), "evil": RunsShell()}, protocol=2))
    with pytest.raises(ModelFileError, match="refusing to load arbitrary code"):
        load_flame(path)
    assert not marker.exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.pop("posedirs"), "missing array 'posedirs'"),
    (lambda a: a.update(shapedirs=a["shapedirs"][..., :FLAME_NUM_SHAPE]), "300 identity components"),
    (lambda a: a.update(weights=a["weights"][:, :4]), "'weights' has shape"),
    (lambda a: a.update(kintree_table=np.array([[ROOT_PARENT, 0, 3, 1, 1], [0, 1, 2, 3, 4]])), "must each precede"),
    (lambda a: a.update(f=a["f"] + 100), "face indices must lie in"),
])
def test_inconsistent_flame_files_name_the_problem(tmp_path, change, message):
    arrays = _flame_arrays()
    change(arrays)
    path = _write_flame(tmp_path, arrays)
    with pytest.raises(ModelFileError, match=message) as info:
        load_flame(path, landmark_embedding=None)
    assert str(path) in str(info.value)
