import json

import numpy as np
import pytest
import torch

from f2p import conventions as C
from f2p.morphable import load_model
from f2p.morphable.base import LinearMorphableModel, ModelFileError
from f2p.morphable.rig import load_rig

N = 5  # a 5 x 5 vertex grid of 16 quads, in centimetres; row 0 is the bottom


def _index(row: int, col: int) -> int:
    return row * N + col


def _grid_cm() -> np.ndarray:
    """(25, 3) y-up vertices (cm): a dome facing +z."""
    x, y = np.meshgrid(np.linspace(-4.5, 4.5, N), np.linspace(-6.0, 6.0, N))
    return np.stack([x, y, 4.0 * (1 - (x / 7) ** 2 - (y / 9) ** 2)], axis=-1).reshape(-1, 3)


def _quads() -> list[tuple[int, int, int, int]]:
    return [(_index(r, c), _index(r, c + 1), _index(r + 1, c + 1), _index(r + 1, c)) for r in range(N - 1)
            for c in range(N - 1)]


def _write_obj(path, verts, faces=True, uv=False) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    if uv:
        lines += [f"vt {(i % N) / (N - 1):.4f} {(i // N) / (N - 1):.4f}" for i in range(len(verts))]
    if faces:
        lines += ["f " + " ".join(f"{i + 1}/{i + 1}" if uv else str(i + 1) for i in quad) for quad in _quads()]
    path.write_text("\n".join(lines) + "\n")


def _landmarks() -> list[int]:
    """Every landmark at the centre vertex except the ones the frame check reads."""
    indices = [_index(2, 2)] * 68
    indices[C.RIGHT_EYE_OUTER], indices[C.LEFT_EYE_OUTER] = _index(3, 0), _index(3, 4)  # subject's right is -x
    indices[C.MOUTH_RIGHT], indices[C.MOUTH_LEFT] = _index(1, 1), _index(1, 3)
    return indices


def _jaw_open(verts: np.ndarray) -> np.ndarray:
    moved = verts.copy()
    moved[:2 * N, 1] -= 1.5  # the two bottom rows drop 1.5 cm
    return moved


def _write_rig(folder, manifest_changes: dict | None = None, to_file=lambda v: v) -> dict:
    """Write a tiny rig; ``to_file`` maps y-up cm vertices to the coordinates stored in the OBJ files."""
    folder.mkdir(parents=True, exist_ok=True)
    verts = _grid_cm()
    _write_obj(folder / "neutral.obj", to_file(verts), uv=True)
    _write_obj(folder / "jawOpen.obj", to_file(_jaw_open(verts)))
    brow = verts.copy()
    brow[3 * N:, 1] += 0.5
    _write_obj(folder / "browRaise.obj", to_file(brow), faces=False)  # targets may carry vertices only
    wide = verts * [1.1, 1.0, 1.0]
    _write_obj(folder / "wide.obj", to_file(wide))
    (folder / "face.txt").write_text("# face area\n" + " ".join(str(i) for i in range(N, 4 * N)))
    manifest = {
        "name": "tiny", "base": "neutral.obj", "units": "cm",
        "sliders": [{"name": "jawOpen", "file": "jawOpen.obj", "min": 0, "max": 1, "default": 0},
                    {"name": "browRaise", "file": "browRaise.obj", "min": -1, "max": 1, "default": 0.5}],
        "identity": [{"name": "wide", "file": "wide.obj"}],
        "landmarks": _landmarks(), "face_region": "face.txt",
    }
    manifest.update(manifest_changes or {})
    (folder / "rig.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def test_rig_loads_units_groups_blendshapes_and_extras(tmp_path):
    _write_rig(tmp_path / "rig")
    data = load_rig(tmp_path / "rig")
    assert data.name == "tiny"
    assert np.allclose(data.mean, _grid_cm() * 0.01, atol=1e-7)
    assert data.faces.shape == (2 * 16, 3) and data.uv.shape == (25, 2) and data.faces_uv.shape == (32, 3)
    sliders, identity = data.groups
    assert (sliders.name, sliders.component_names, sliders.lower, sliders.upper, sliders.prior_std) == (
        "sliders", ("jawOpen", "browRaise"), (0.0, -1.0), (1.0, 1.0), (0.5, 1.0))
    assert (identity.name, identity.bounded, identity.prior_std) == ("identity", False, (1.0,))
    assert json.loads(data.metadata["defaults"]) == {"sliders": {"jawOpen": 0.0, "browRaise": 0.5},
                                                     "identity": {"wide": 0.0}}
    assert np.array_equal(data.landmark_vertices[:, 0], _landmarks()) and np.all(data.landmark_confidence == 1)
    assert data.face_region.sum() == 3 * N and data.face_region[N] and not data.face_region[0]
    model = load_model(tmp_path / "rig")  # the registry dispatches rig folders here
    assert isinstance(model, LinearMorphableModel) and model.name == "tiny"
    mesh = model(sliders=torch.tensor([[1.0, 0.0]]), identity=torch.zeros(1, 1))
    assert torch.allclose(mesh.verts[0], torch.tensor(_jaw_open(_grid_cm()) * 0.01, dtype=torch.float32), atol=1e-6)


def test_rig_json_path_and_z_up_rig(tmp_path):
    # The same rig stored z-up (Blender, 3ds Max): f2p (x, y, z) is stored as (x, -z, y).
    _write_rig(tmp_path / "zup", {"up": "z"}, to_file=lambda v: v[:, [0, 2, 1]] * [1, -1, 1])
    data = load_rig(tmp_path / "zup" / "rig.json")
    assert np.allclose(data.mean, _grid_cm() * 0.01, atol=1e-7)
    assert np.allclose(data.bases["sliders"][0], (_jaw_open(_grid_cm()) - _grid_cm()) * 0.01, atol=1e-7)
    _write_rig(tmp_path / "zup", {"up": "y"}, to_file=lambda v: v[:, [0, 2, 1]] * [1, -1, 1])
    with pytest.raises(ModelFileError, match="f2p.s model space has"):  # declared wrongly: the landmarks catch it
        load_rig(tmp_path / "zup")


def test_rig_without_landmarks_loads_for_photometric_fitting(tmp_path):
    manifest = _write_rig(tmp_path)
    del manifest["landmarks"]
    (tmp_path / "rig.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="68 of 68 landmarks have no vertex"):
        data = load_rig(tmp_path)
    assert np.all(data.landmark_confidence == 0) and np.all(data.landmark_vertices == 0)
    assert LinearMorphableModel(data)(**{}).verts.shape == (1, 25, 3)


def _slider(**changes) -> list[dict]:
    return [{"name": "jawOpen", "file": "jawOpen.obj", **changes}]


@pytest.mark.parametrize(("changes", "where", "message"), [
    ({"sliders": _slider(min=1, max=0)}, "rig.json", "min 1.0 > max 0.0"),
    ({"sliders": _slider(default=2)}, "rig.json", "default 2.0 outside"),
    ({"sliders": _slider(file="absent.obj")}, "absent.obj", "file not found"),
    ({"sliders": _slider(file="short.obj")}, "short.obj", "has 20 vertices, the base mesh 25"),
    ({"sliders": _slider(file="other_faces.obj")}, "other_faces.obj", "different faces"),
    ({"sliders": _slider(mn=0)}, "rig.json", r"unknown key\(s\) \['mn'\]"),
    ({"sliders": _slider() * 2}, "rig.json", "duplicate name"),
    ({"sliders": _slider(max="1")}, "rig.json", "'max' must be a finite number"),
    ({"slider": []}, "rig.json", r"unknown key\(s\) \['slider'\]"),
    ({"sliders": [], "identity": []}, "rig.json", "no blendshapes"),
    ({"identity": [{"name": "a", "file": "wide.obj", "min": -1, "max": 1}, {"name": "b", "file": "wide.obj"}]},
     "rig.json", "for every entry or for none"),
    ({"units": "inch"}, "rig.json", "'units' must be one of"),
    ({"units": "m"}, "rig.json", "are the units right"),
    ({"landmarks": _landmarks()[:60]}, "rig.json", "68 integer vertex indices"),
    ({"landmarks": [99] * 68}, "rig.json", r"must lie in \[0, 25\)"),
    ({"face_region": [0, 25]}, "rig.json", "face_region must list vertex indices"),
    ({"base": "missing.obj"}, "missing.obj", "file not found"),
])
def test_broken_rigs_name_the_file_and_problem(tmp_path, changes, where, message):
    _write_rig(tmp_path, changes)
    _write_obj(tmp_path / "short.obj", _grid_cm()[:20], faces=False)
    other = tmp_path / "other_faces.obj"
    _write_obj(other, _grid_cm())
    other.write_text(other.read_text().replace("f 1 2 7 6", "f 1 7 2 6"))
    with pytest.raises(ModelFileError, match=message) as info:
        load_rig(tmp_path)
    assert where in info.value.path


def test_missing_manifest_and_bad_json(tmp_path):
    with pytest.raises(ModelFileError, match="rig manifest not found"):
        load_rig(tmp_path)
    (tmp_path / "rig.json").write_text('{"base": "neutral.obj", "sliders": [}')
    with pytest.raises(ModelFileError, match="not valid JSON: .* line 1 column"):
        load_rig(tmp_path)


@pytest.mark.parametrize(("changes", "entry"), [
    ({"base": "../outside/secret.obj"}, "'base': file '../outside/secret.obj'"),
    ({"sliders": _slider(file="SECRET")}, "sliders 'jawOpen': file"),
    ({"identity": [{"name": "wide", "file": "../outside/secret.obj"}]}, "identity 'wide': file"),
    ({"landmarks": "../outside/lmk.txt"}, "'landmarks': file '../outside/lmk.txt'"),
    ({"face_region": "SECRET"}, "'face_region': file"),
    ({"sliders": _slider(file="link.obj")}, "sliders 'jawOpen': file 'link.obj'"),  # a symbolic link leading out
])
def test_rig_files_outside_the_rig_folder_are_refused(tmp_path, changes, entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.obj"
    secret.write_text("password: hunter2\n")
    (outside / "lmk.txt").write_text("password: hunter2\n")
    rig = tmp_path / "rig"
    changes = {key: json.loads(json.dumps(value).replace("SECRET", str(secret))) for key, value in changes.items()}
    _write_rig(rig, changes)
    (rig / "link.obj").symlink_to(secret)
    with pytest.raises(ModelFileError) as info:
        load_rig(rig)
    message = str(info.value)
    assert info.value.path == str(rig / "rig.json") and entry in message and "outside the rig folder" in message
    assert "hunter2" not in message and len(message.splitlines()) == 1


def test_rig_files_in_subfolders_and_links_within_the_rig_load(tmp_path):
    rig = tmp_path / "rig"
    _write_rig(rig, {"sliders": _slider(file="targets/jaw.obj")})
    (rig / "targets").mkdir()
    (rig / "targets" / "jaw.obj").symlink_to(rig / "jawOpen.obj")
    assert load_rig(rig).bases["sliders"].shape == (1, 25, 3)
