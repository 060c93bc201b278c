"""The landmark regressor's refinement stages: a new stage changes nothing (so weights without stages, or with
fewer, start the network before the new ones), stages read the reprojection residuals of the current answer, the stages survive export and
loading, and weights with other stages are refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from f2p.data.landmark_synthetic import (CONFIDENCE, DENSE, DENSE_CONFIDENCE, LANDMARKS, PARAMS, LandmarkFaceBatches,
                                         LandmarkSampler)
from f2p.morphable.registry import load_model
from f2p.nets.landmark_regressor import LandmarkRegressor
from f2p.scene.params import SceneSpec
from f2p.systems.landmark_regressor import LandmarkRegressorSystem
from f2p.systems.landmark_weights import export_weights, load_landmark_regressor
from regressor_support import one_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def ict_spec(models_dir) -> SceneSpec:
    return SceneSpec(load_model("ict"), (224, 224))


@pytest.fixture(scope="module")
def exact_faces(ict_spec) -> dict:
    return LandmarkFaceBatches(ict_spec, LandmarkSampler(noise=None), 1, 4, seed=5)[0]


def inputs(batch: dict) -> tuple:
    return batch[LANDMARKS], batch[CONFIDENCE], batch[DENSE], batch[DENSE_CONFIDENCE]


def test_weights_without_stages_start_a_refining_network_unchanged(ict_spec, exact_faces, tmp_path):
    plain = LandmarkRegressor(ict_spec, hidden=32, depth=1)
    for layer in plain.head.heads.values():  # a "trained" head, so that the answer is not the mean face
        torch.nn.init.normal_(layer[-1].weight, std=0.05)
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    (tmp_path / "plain.json").write_text(json.dumps({"face_model": "ict", "image_size": 224, "hidden": 32,
                                                     "depth": 1}))
    system = LandmarkRegressorSystem(hidden=32, depth=1, refine=2, refine_hidden=16,
                                     init_weights=str(tmp_path / "plain.pt"))
    assert len(system.network.refinement) == 2
    with torch.no_grad():
        expected, refined = plain(*inputs(exact_faces)), system.network(*inputs(exact_faces))
    for name, value in expected.items():
        torch.testing.assert_close(refined[name], value)
    with pytest.raises(ValueError, match="refinement stages") as error:
        LandmarkRegressorSystem(hidden=32, depth=1, refine=1, refine_hidden=8, init_weights=_export(system, tmp_path))
    assert "\n" not in str(error.value)


def test_weights_with_fewer_stages_start_a_deeper_network_unchanged(ict_spec, exact_faces, tmp_path):
    shallow = LandmarkRegressorSystem(hidden=32, depth=1, refine=1, refine_hidden=16)
    for layer in [*shallow.network.head.heads.values(), shallow.network.refinement[0]]:  # "trained" outputs
        torch.nn.init.normal_((layer[-1] if isinstance(layer, torch.nn.Sequential) else layer.out).weight, std=0.05)
    deeper = LandmarkRegressorSystem(hidden=32, depth=1, refine=3, refine_hidden=16,
                                     init_weights=_export(shallow, tmp_path))
    with torch.no_grad():
        expected, answer = shallow.network(*inputs(exact_faces)), deeper.network(*inputs(exact_faces))
    for name, value in expected.items():
        torch.testing.assert_close(answer[name], value)


def _export(system: LandmarkRegressorSystem, tmp_path) -> str:
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": dict(system.hparams),
                "state_dict": {f"network.{k}": v for k, v in system.network.state_dict().items()}}, checkpoint)
    pt, _ = export_weights(checkpoint, tmp_path / "refined.pt")
    return str(pt)


def test_stages_survive_export_and_loading(ict_spec, exact_faces, tmp_path):
    system = LandmarkRegressorSystem(hidden=32, depth=1, refine=2, refine_hidden=16)
    for stage in system.network.refinement:
        torch.nn.init.normal_(stage.out.weight, std=0.05)  # stages that move the answer
    pt = _export(system, tmp_path)
    assert json.loads((tmp_path / "refined.json").read_text())["refine"] == 2
    loaded = load_landmark_regressor(pt, expect=ict_spec).network
    with torch.no_grad():
        base = LandmarkRegressor(ict_spec, hidden=32, depth=1)
        base.load_state_dict(system.network.state_dict(), strict=False)  # the same network without its stages
        unrefined, original, reloaded = (net(*inputs(exact_faces)) for net in (base, system.network, loaded))
    torch.testing.assert_close(reloaded["identity"], original["identity"])
    assert (original["identity"] - unrefined["identity"]).abs().max() > 1e-3  # the stages change the answer


def test_stages_read_the_reprojection_residuals(ict_spec, exact_faces):
    network = LandmarkRegressor(ict_spec, hidden=32, depth=1, refine=1, refine_hidden=16)
    landmarks, confidence, dense, dense_confidence = inputs(exact_faces)
    observed = network.observed(landmarks, confidence, dense, dense_confidence)
    at_truth = network.residuals(exact_faces[PARAMS], *observed)
    assert at_truth.shape == (4, (68 + 468) * 2)
    assert float(at_truth.abs().max()) < 1e-2  # the true face explains exact landmarks
    mean_face = ict_spec.initial(4, landmarks)
    off = network.residuals(mean_face, *observed)
    assert float(off.abs().mean()) > 20 * float(at_truth.abs().mean())
    absent = network.residuals(mean_face, *network.observed(landmarks, confidence, dense,
                                                            torch.zeros_like(dense_confidence)))
    assert torch.equal(absent[:, 68 * 2:], torch.zeros_like(absent[:, 68 * 2:]))  # absent points say nothing
    torch.testing.assert_close(absent[:, :68 * 2], off[:, :68 * 2])


def test_half_precision_export_halves_the_file_and_keeps_the_answer(ict_spec, exact_faces, tmp_path):
    system = LandmarkRegressorSystem(hidden=32, depth=1, refine=1, refine_hidden=16)
    for layer in system.network.head.heads.values():
        torch.nn.init.normal_(layer[-1].weight, std=0.05)
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": dict(system.hparams),
                "state_dict": {f"network.{k}": v for k, v in system.network.state_dict().items()}}, checkpoint)
    full, _ = export_weights(checkpoint, tmp_path / "full.pt")
    half, _ = export_weights(checkpoint, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    network = load_landmark_regressor(half).network
    assert all(p.dtype == torch.float32 for p in network.parameters())
    with torch.no_grad():
        expected, answer = system.network(*inputs(exact_faces)), network(*inputs(exact_faces))
    for name, value in expected.items():
        torch.testing.assert_close(answer[name], value, atol=2e-3, rtol=2e-3)
