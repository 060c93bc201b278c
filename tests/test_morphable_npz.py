"""f2p's own .npz model format: exact round trips and clear errors on bad files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p.morphable.base import LinearModelData, LinearMorphableModel, ModelFileError
from f2p.morphable.npz import HEADER_KEY, load_npz, save_model
from f2p.morphable.procedural import procedural_data
from f2p.morphable.registry import load_model
from f2p.morphable.sfm import load_sfm


def assert_same_data(a: LinearModelData, b: LinearModelData) -> None:
    for field in dataclasses.fields(LinearModelData):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field.name
        elif field.name == "bases":
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in x)
        else:
            assert x == y, field.name


def random_params(model: LinearMorphableModel, batch: int = 3) -> dict[str, torch.Tensor]:
    return {k: torch.randn_like(v) for k, v in model.zero_params(batch).items()}


def test_round_trip_is_exact_with_albedo_and_uv(tmp_path):
    data = procedural_data()
    data.metadata["note"] = "ünïcode, \"quotes\" and\nnewlines survive"
    path = save_model(data, tmp_path / "procedural.npz")
    loaded = load_npz(path)
    assert_same_data(data, loaded)
    original, reloaded = LinearMorphableModel(data), load_model(path)
    params = random_params(original)
    out_a, out_b = original(**params), reloaded(**params)
    assert torch.equal(out_a.verts, out_b.verts) and torch.equal(out_a.landmarks, out_b.landmarks)
    assert torch.equal(out_a.albedo, out_b.albedo)


def test_round_trip_of_a_loaded_model(models_dir, tmp_path):
    """A real model (SFM: bounds, names, 3-vertex landmark weights, confidences < 1) saved from the module."""
    folder = models_dir / "sfm_3448"
    if not folder.is_dir():
        pytest.skip(f"Surrey Face Model not found in {folder}")
    model = LinearMorphableModel(load_sfm(folder))
    reloaded = load_model(save_model(model, tmp_path / "sfm.npz"))
    assert reloaded.groups == model.groups and reloaded.metadata == model.metadata
    params = random_params(model)
    assert torch.equal(model(**params).verts, reloaded(**params).verts)
    assert torch.equal(model(**params).landmarks, reloaded(**params).landmarks)
    assert torch.equal(model.landmark_confidence, reloaded.landmark_confidence)


def test_save_rejects_other_suffixes_and_non_linear_models(tmp_path, procedural_model):
    with pytest.raises(ValueError, match="must end in .npz"):
        save_model(procedural_model, tmp_path / "model.pkl")
    with pytest.raises(TypeError, match="only linear models"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "model.npz")


def test_invalid_data_is_not_saved(tmp_path):
    data = procedural_data()
    data.bases["identity"][0, 0, 0] = np.nan
    with pytest.raises(ModelFileError, match="identity basis contains NaN"):
        save_model(data, tmp_path / "nan.npz")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_model(procedural_data(), tmp_path / "model.npz")


def rewrite(path: Path, **changes: np.ndarray | None) -> Path:
    """Rewrite an npz with some arrays replaced (or removed when None)."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_truncated_file(saved):
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"model\.npz: not a readable \.npz archive \(truncated or corrupt\?\)"):
        load_model(saved)


def test_text_file_renamed_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("this is not a model\n")
    with pytest.raises(ModelFileError, match=r"notes\.npz: not a readable \.npz archive"):
        load_model(path)


def test_npy_file_renamed_npz(tmp_path):
    path = tmp_path / "array.npz"
    with path.open("wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(ModelFileError, match=r"array\.npz: is a single \.npy array"):
        load_model(path)


def test_nan_in_a_basis(saved):
    basis = np.load(saved)["basis_expression"].copy()
    basis[1, 2, 0] = np.nan
    with pytest.raises(ModelFileError, match=r"model\.npz: expression basis contains NaN"):
        load_model(rewrite(saved, basis_expression=basis))


def test_mismatched_shapes(saved):
    basis = np.load(saved)["basis_identity"]
    with pytest.raises(ModelFileError, match=r"model\.npz: array 'basis_identity' has shape \(10, 739, 3\), expected \(10, 740, 3\)"):
        load_model(rewrite(saved, basis_identity=basis[:, :-1]))


def test_mismatched_albedo_and_uv(saved):
    albedo = np.load(saved)["albedo_mean"]
    with pytest.raises(ModelFileError, match=r"model\.npz: albedo_mean shape \(739, 3\), expected \(740, 3\)"):
        load_model(rewrite(saved, albedo_mean=albedo[:-1]))


def test_missing_array_and_bad_header(saved):
    with pytest.raises(ModelFileError, match=r"model\.npz: missing array 'face_region'"):
        load_model(rewrite(saved, face_region=None))
    header = json.loads(str(np.load(saved)[HEADER_KEY]))
    header["version"] = 99
    with pytest.raises(ModelFileError, match=r"unsupported f2p model version 99"):
        load_model(rewrite(saved, **{HEADER_KEY: np.array(json.dumps(header))}))
    with pytest.raises(ModelFileError, match=r"f2p_header is not valid JSON"):
        load_model(rewrite(saved, **{HEADER_KEY: np.array("{broken")}))
    header["version"], header["groups"][0]["size"] = 1, 3
    with pytest.raises(ModelFileError, match=r"bad parameter group in header: .*'identity': prior_std has 10 entries"):
        load_model(rewrite(saved, **{HEADER_KEY: np.array(json.dumps(header))}))


def test_unknown_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match=r"other\.npz: neither an f2p model .* found arrays \['weights'\]"):
        load_model(path)
    with pytest.raises(ModelFileError, match=r"other\.npz: not an f2p model file"):
        load_npz(path)


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, f2p_header=np.array([{"code": "would run on unpickling"}], dtype=object))
    with pytest.raises(ModelFileError, match=r"pickled\.npz: not a readable \.npz archive .*allow_pickle=False"):
        load_model(path)


def test_text_where_numbers_belong(saved):
    with pytest.raises(ModelFileError, match=r"model\.npz: array 'landmark_confidence' has dtype <U3, expected bool or integer"):
        load_model(rewrite(saved, landmark_confidence=np.array(["one"] * 68)))
