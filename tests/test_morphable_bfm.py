import numpy as np
import pytest
import scipy.io
import torch

from f2p import conventions as C
from f2p.morphable import load_model
from f2p.morphable.base import LinearMorphableModel, ModelFileError
from f2p.morphable.bfm import load_bfm
from f2p.morphable.procedural import procedural_data

MICROMETRES_PER_METRE = 1e6
DECIMETRES_PER_METRE = 10.0


@pytest.fixture(scope="module")
def face():
    """A small face in f2p's frame; the BFM files below store it in BFM's units and layouts."""
    return procedural_data(grid=12, num_identity=4, num_albedo=3)


def _keypoints(face) -> np.ndarray:
    """(68,) 0-based vertex of each landmark: the heaviest corner of its barycentric embedding."""
    heaviest = face.landmark_weights.argmax(axis=1)
    return face.landmark_vertices[np.arange(68), heaviest]


def _columns(per_vertex: np.ndarray) -> np.ndarray:
    """(K, V, 3) -> (3V, K) flattened (x, y, z, ...) columns as BFM stores components."""
    return per_vertex.reshape(len(per_vertex), -1).T.astype(np.float64)


def _split(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3V, K) scaled components -> orthonormal-style unit columns and their standard deviations (K, 1)."""
    std = np.linalg.norm(columns, axis=0)
    return columns / std, std[:, None]


def _bfm2009_fields(face) -> dict:
    shape_pc, shape_ev = _split(_columns(face.bases["identity"]) * MICROMETRES_PER_METRE)
    tex_pc, tex_ev = _split(_columns(face.albedo_basis) * 255)
    return {
        "shapeMU": face.mean.reshape(-1, 1).astype(np.float64) * MICROMETRES_PER_METRE,
        "shapePC": shape_pc, "shapeEV": shape_ev,
        "texMU": face.albedo_mean.reshape(-1, 1).astype(np.float64) * 255, "texPC": tex_pc, "texEV": tex_ev,
        "tl": face.faces[:, [0, 2, 1]].astype(np.int32) + 1,  # 1-based, wound clockwise like BFM 2009
    }


def _front_fields(face) -> dict:
    return {
        "meanshape": face.mean.reshape(1, -1).astype(np.float64) * DECIMETRES_PER_METRE,
        "idBase": _columns(face.bases["identity"]) * DECIMETRES_PER_METRE,
        "exBase": _columns(face.bases["expression"]) * DECIMETRES_PER_METRE,
        "meantex": face.albedo_mean.reshape(1, -1).astype(np.float64) * 255,
        "texBase": _columns(face.albedo_basis) * 255,
        "tri": face.faces.astype(np.float64) + 1,
        "keypoints": (_keypoints(face) + 1).astype(np.float64)[None, :],
        "point_buf": np.ones((len(face.mean), 8)),
    }


def _save(tmp_path, fields: dict, name: str):
    path = tmp_path / name
    scipy.io.savemat(path, fields)
    return path


def test_bfm2009_converts_units_albedo_indices_and_winding(tmp_path, face):
    path = _save(tmp_path, _bfm2009_fields(face), "01_MorphableModel.mat")
    landmarks = tmp_path / "bfm_ibug68.txt"
    landmarks.write_text("# iBUG-68 -> vertex, 0-based\n" + "\n".join(map(str, _keypoints(face))))
    data = load_bfm(path, landmarks=landmarks)
    assert data.name == "bfm2009" and [g.name for g in data.groups] == ["identity", "albedo"]
    assert np.allclose(data.mean, face.mean, atol=1e-7)
    assert np.allclose(data.bases["identity"], face.bases["identity"], atol=1e-7)
    assert np.allclose(data.albedo_mean, face.albedo_mean, atol=1e-6)
    assert np.allclose(data.albedo_basis, face.albedo_basis, atol=1e-6)
    assert np.array_equal(data.faces, face.faces)  # 0-based, counter-clockwise seen from +z again
    assert np.array_equal(data.landmark_vertices[:, 0], _keypoints(face)) and np.all(data.landmark_confidence == 1)
    model = LinearMorphableModel(data)
    params = model.zero_params(1)
    params["identity"][0, 1] = 1.0  # one standard deviation of the second component
    expected = torch.tensor(face.mean + face.bases["identity"][1])
    assert torch.allclose(model(**params).verts[0], expected, atol=1e-6)


def test_bfm2009_without_landmarks_loads_with_zero_confidence(tmp_path, face):
    path = _save(tmp_path, _bfm2009_fields(face), "01_MorphableModel.mat")
    with pytest.warns(UserWarning, match="68 of 68 landmarks have no vertex"):
        data = load_bfm(path)
    assert np.all(data.landmark_confidence == 0)


def test_partial_landmark_npy_gives_confidence_per_landmark(tmp_path, face):
    path = _save(tmp_path, _bfm2009_fields(face), "01_MorphableModel.mat")
    indices = _keypoints(face).copy()
    indices[list(C.JAW)] = -1
    np.save(tmp_path / "lmk.npy", indices)
    with pytest.warns(UserWarning, match="17 of 68"):
        data = load_bfm(path, landmarks=tmp_path / "lmk.npy")
    assert np.all(data.landmark_confidence[list(C.JAW)] == 0) and np.all(data.landmark_confidence[17:] == 1)


def test_deep3d_front_layout(tmp_path, face):
    path = _save(tmp_path, _front_fields(face), "BFM_model_front.mat")
    data = load_bfm(path)
    assert data.name == "bfm_front"
    assert [(g.name, g.size, g.bounded) for g in data.groups] == [
        ("identity", 4, False), ("expression", 4, False), ("albedo", 3, False)]
    assert np.allclose(data.mean, face.mean, atol=1e-7)
    assert np.allclose(data.bases["expression"], face.bases["expression"], atol=1e-7)
    assert np.allclose(data.albedo_basis, face.albedo_basis, atol=1e-6)
    assert np.array_equal(data.faces, face.faces)
    assert np.array_equal(data.landmark_vertices[:, 0], _keypoints(face)) and np.all(data.landmark_confidence == 1)
    assert load_model(path).name == "bfm_front"  # the registry dispatches .mat files here
    mesh = LinearMorphableModel(data)(expression=torch.tensor([[1.0, 0, 0, 0]]))
    assert torch.allclose(mesh.verts[0], torch.tensor(face.mean + face.bases["expression"][0]), atol=1e-6)
    assert torch.allclose(mesh.albedo[0], torch.tensor(face.albedo_mean), atol=1e-6)


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.update(meanshape=f["meanshape"] * 100), "are the units right"),
    (lambda f: f.update(meanshape=(f["meanshape"].reshape(-1, 3) * [-1, 1, 1]).reshape(1, -1)), "mirrored"),
    (lambda f: f.update(meanshape=(f["meanshape"].reshape(-1, 3) * [1, -1, 1]).reshape(1, -1)), "y up"),
])
def test_front_model_in_the_wrong_frame_is_refused(tmp_path, face, change, message):
    fields = _front_fields(face)
    change(fields)
    with pytest.raises(ModelFileError, match=message):
        load_bfm(_save(tmp_path, fields, "BFM_model_front.mat"))


@pytest.mark.parametrize(("layout", "change", "message"), [
    ("2009", lambda f: f.pop("shapePC"), "missing array 'shapePC'"),
    ("2009", lambda f: f.update(shapePC=f["shapePC"][:-3]), "'shapePC' has shape"),
    ("2009", lambda f: f.update(shapeEV=f["shapeEV"][:-1]), "shapeEV has 3 values for the 4 columns"),
    ("2009", lambda f: f.update(tl=f["tl"] + 1000), "triangle indices must lie in"),
    ("2009", lambda f: f.update(shapeMU=f["shapeMU"][:-1]), "3 per vertex"),
    ("front", lambda f: f.update(keypoints=f["keypoints"][:, :60]), "68 integer vertex indices"),
    ("front", lambda f: f.update(keypoints=f["keypoints"] + 10000), "must lie in"),
    ("front", lambda f: f.update(idBase=f["idBase"] * np.nan), "identity basis contains NaN"),
    ("front", lambda f: [f.pop(k) for k in list(f)] and f.update(vertices=np.zeros((3, 3))), "not a known BFM layout"),
])
@pytest.mark.filterwarnings("ignore:.*landmarks have no vertex")
def test_broken_files_name_the_file_and_problem(tmp_path, face, layout, change, message):
    fields = _bfm2009_fields(face) if layout == "2009" else _front_fields(face)
    change(fields)
    path = _save(tmp_path, fields, "model.mat")
    with pytest.raises(ModelFileError, match=message) as info:
        load_bfm(path)
    assert str(path) in str(info.value)


def test_unreadable_and_hdf5_mat_files(tmp_path, monkeypatch):
    missing = tmp_path / "absent.mat"
    with pytest.raises(ModelFileError, match="file not found"):
        load_bfm(missing)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"\x00" * 300)
    with pytest.raises(ModelFileError, match="not a readable MATLAB .mat file"):
        load_bfm(junk)
    v73 = tmp_path / "v73.mat"  # MATLAB v7.3 header: text, subsystem offset, version 0x0200, endian 'IM'
    v73.write_bytes(b"MATLAB 7.3 MAT-file".ljust(116) + bytes(8) + b"\x00\x02IM" + bytes(400))
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # as if h5py were not installed
    with pytest.raises(ModelFileError, match="v7.3 .*needs h5py"):
        load_bfm(v73)
