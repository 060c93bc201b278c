"""`python -m f2p model`: description, OBJ and JSON outputs, one-line errors."""

from __future__ import annotations

import json

import pytest

from f2p.cli import main
from f2p.morphable.obj_io import read_obj


def test_model_command_describes_and_writes_the_neutral_mesh(tmp_path, capsys, procedural_model):
    assert main(["model", "procedural", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("procedural", "identity", "expression", "jawOpen", "[0, 1]", "albedo", "MIT"):
        assert text in out, text
    mesh = read_obj(tmp_path / "procedural_neutral.obj")
    assert mesh.verts.shape == tuple(procedural_model.mean.shape)
    assert abs(mesh.verts - procedural_model.mean.numpy()).max() < 1e-6  # metres, all parameters zero
    assert (mesh.faces == procedural_model.faces.numpy()).all()
    info = json.loads((tmp_path / "procedural_model.json").read_text())
    assert info["num_vertices"] == procedural_model.num_vertices
    assert [g["name"] for g in info["groups"]] == ["identity", "expression", "albedo"]
    assert info["groups"][1]["component_names"][0] == "jawOpen"


def test_model_command_sfm_shows_licence_and_approximate_landmarks(models_dir, monkeypatch, capsys):
    if not (models_dir / "sfm_3448").is_dir():
        pytest.skip(f"Surrey Face Model not found in {models_dir}")
    monkeypatch.setenv("F2P_MODEL_PATH", str(models_dir))
    assert main(["model", "sfm"]) == 0
    out = capsys.readouterr().out
    for text in ("3448", "6736", "anger, disgust", "18 approximated", "non-commercial"):
        assert text in out, text


def test_model_command_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("F2P_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("F2P_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["model", "flame"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("f2p model: flame: model not found.") and "flame.is.tue.mpg.de" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "broken.npz").write_text("garbage")
    assert main(["model", str(tmp_path / "broken.npz")]) == 1
    assert "broken.npz: not a readable .npz archive" in capsys.readouterr().err
