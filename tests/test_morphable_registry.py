"""Model registry: names through F2P_MODEL_PATH and the cache, paths by what they are, not-found messages."""

from __future__ import annotations

import dataclasses
import os
import sys
import types
from pathlib import Path

import pytest

from f2p.morphable import registry
from f2p.morphable.base import LinearMorphableModel, ModelFileError
from f2p.morphable.npz import save_model
from f2p.morphable.procedural import procedural_data
from f2p.morphable.registry import ModelNotFoundError, load_model


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(model root, cache) as empty folders, set through F2P_MODEL_PATH and F2P_CACHE_DIR."""
    models, cache = tmp_path / "models", tmp_path / "cache"
    models.mkdir()
    monkeypatch.setenv("F2P_MODEL_PATH", str(models))
    monkeypatch.setenv("F2P_CACHE_DIR", str(cache))
    return models, cache


def save_named(path: Path, name: str) -> Path:
    """Save the procedural model under another name, to see which file a lookup picked."""
    return save_model(dataclasses.replace(procedural_data(grid=8), name=name), path)


def test_names_resolve_in_model_path_before_cache(roots):
    models, cache = roots
    save_named(cache / "ict_facekit" / "ict_facekit.npz", "from_cache")
    assert load_model("ict").name == "from_cache"
    save_named(models / "ict_facekit" / "ict_facekit.npz", "from_model_path")
    assert load_model("ict").name == "from_model_path"


def test_the_default_model_is_ict(roots):
    models, _ = roots
    save_named(models / "ict_facekit" / "ict_facekit.npz", "default")
    assert load_model().name == "default"


def test_model_path_may_list_several_folders(roots, tmp_path, monkeypatch):
    models, _ = roots
    second = tmp_path / "second"
    save_named(second / "ict_facekit" / "ict_facekit.npz", "second")
    monkeypatch.setenv("F2P_MODEL_PATH", os.pathsep.join([str(models), str(second)]))
    assert load_model("ict").name == "second"


def test_cache_dir_follows_xdg_and_home(monkeypatch, tmp_path):
    monkeypatch.delenv("F2P_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.cache_dir() == tmp_path / "xdg" / "f2p"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert registry.cache_dir() == tmp_path / "home" / ".cache" / "f2p"


def test_procedural_needs_no_files(roots):
    model = load_model("procedural")
    assert isinstance(model, LinearMorphableModel) and model.has_albedo


@pytest.mark.parametrize("name, expected", [
    ("ict", ["ict_facekit.npz", "generic_neutral_mesh.obj", "--download", "github.com/ICT-VGL/ICT-FaceKit", "MIT"]),
    ("sfm", ["sfm_shape_3448.bin", "--download", "patrikhuber/eos", "non-commercial", "Apache-2.0"]),
    ("flame", ["generic_model.pkl", "flame2023*.pkl", "flame.is.tue.mpg.de", "sign", "CC-BY-4.0"]),
    ("bfm", ["01_MorphableModel.mat", "BFM_model_front.mat", "faces.dmi.unibas.ch", "no redistribution"]),
])
def test_missing_model_message_is_actionable(roots, name, expected):
    models, cache = roots
    folder = registry.SOURCES[name].folder
    with pytest.raises(ModelNotFoundError) as caught:
        load_model(name)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ModelFileError)
    assert message.startswith(f"{name}: model not found.")
    for text in [str(models / folder), str(cache / folder), *expected]:
        assert text in message, text


def test_missing_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"nowhere\.npz: no such file or folder \(model names are ict, sfm"):
        load_model(tmp_path / "nowhere.npz")


def test_empty_folder_and_unknown_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"folder holds no model files \(looked for .*generic_model\.pkl"):
        load_model(tmp_path)
    (tmp_path / "face.ply").write_text("ply\n")
    with pytest.raises(ModelFileError, match=r"face\.ply: unsupported model file"):
        load_model(tmp_path / "face.ply")


def test_a_folder_holding_a_model_file_loads_it(tmp_path):
    save_named(tmp_path / "sfm_3448.npz", "inside")
    assert load_model(tmp_path).name == "inside"
    assert load_model(str(tmp_path / "sfm_3448.npz")).name == "inside"


def test_sfm_by_name_from_its_eos_files(roots, models_dir):
    models, _ = roots
    shared = models_dir / "sfm_3448"
    if not shared.is_dir():
        pytest.skip(f"Surrey Face Model not found in {shared}")
    (models / "sfm_3448").mkdir()
    for name in ("sfm_shape_3448.bin", "expression_blendshapes_3448.bin", "ibug_to_sfm.txt", "sfm_model_contours.json"):
        (models / "sfm_3448" / name).symlink_to(shared / name)
    model = load_model("sfm")
    assert model.name == "sfm" and model.num_vertices == 3448
    assert load_model(models / "sfm_3448" / "sfm_shape_3448.bin").num_vertices == 3448  # marker file -> its folder


@pytest.fixture
def fake_loaders(monkeypatch):
    """Stand-ins for the FLAME, BFM and rig loaders that record what they were asked to load."""
    calls = []

    def loader(kind: str, wrap: bool):
        def load(path):
            calls.append((kind, Path(path)))
            data = dataclasses.replace(procedural_data(grid=8), name=kind)
            return LinearMorphableModel(data) if wrap else data
        return load

    for module, function, wrap in (("flame", "load_flame", True), ("bfm", "load_bfm", False), ("rig", "load_rig", False)):
        monkeypatch.setitem(sys.modules, f"f2p.morphable.{module}",
                            types.SimpleNamespace(**{function: loader(module, wrap)}))
    return calls


def test_flame_bfm_and_rig_dispatch(roots, fake_loaders, tmp_path):
    models, _ = roots
    flame = models / "flame" / "flame2023.pkl"
    flame.parent.mkdir()
    flame.write_bytes(b"")
    assert load_model("flame").name == "flame"
    bfm = tmp_path / "BFM_model_front.mat"
    bfm.write_bytes(b"")
    assert isinstance(load_model(bfm), LinearMorphableModel)
    rig = tmp_path / "rig"
    rig.mkdir()
    (rig / "rig.json").write_text("{}")
    assert load_model(rig).name == "rig"
    assert fake_loaders == [("flame", flame), ("bfm", bfm), ("rig", rig)]
