"""The landmark regressor's residual blocks and its similarity-aligned surface term: weights from before the blocks
(no ``blocks`` in their JSON) still load into the plain MLP, weights with blocks rebuild them, a bad ``blocks`` is
one line, both shipped networks load, the aligned term is the benchmark's similarity-aligned distance and the
rotation term its head-rotation error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from f2p.conventions import MM_PER_M
from f2p.data.landmark_synthetic import PARAMS, LandmarkFaceBatches, LandmarkSampler
from f2p.errors import ModelFileError
from f2p.evaluation.geometry import vertex_errors
from f2p.evaluation.parameters import prior_scales, recovery_errors
from f2p.morphable.dense import dense_landmarks
from f2p.morphable.registry import load_model
from f2p.nets.landmark_regressor import LandmarkRegressor, ResidualBlock
from f2p.scene.params import SceneSpec
from f2p.systems.landmark_regressor import LandmarkLossWeights, LandmarkRegressorSystem
from f2p.systems.landmark_weights import WEIGHTS_DIR, export_weights, load_landmark_regressor
from regressor_support import one_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def ict_spec(models_dir) -> SceneSpec:
    return SceneSpec(load_model("ict"), (224, 224))


def save(network: LandmarkRegressor, path: Path, **hparams) -> None:
    torch.save(network.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"face_model": "ict", "image_size": 224, **hparams}))


def test_a_residual_block_starts_as_the_identity():
    block = ResidualBlock(8)
    x = torch.randn(4, 8)
    assert torch.equal(block(x), x)


def test_weights_without_blocks_load_the_plain_mlp_and_with_blocks_the_residual_one(ict_spec, tmp_path):
    plain, residual = LandmarkRegressor(ict_spec, 32, 2), LandmarkRegressor(ict_spec, 32, 1, blocks=2)
    assert not any(isinstance(m, ResidualBlock) for m in plain.net)
    assert sum(isinstance(m, ResidualBlock) for m in residual.net) == 2
    save(plain, tmp_path / "plain.pt", hidden=32, depth=2)  # a JSON from before the blocks
    save(residual, tmp_path / "residual.pt", hidden=32, depth=1, blocks=2)
    for name, network in (("plain", plain), ("residual", residual)):
        loaded = load_landmark_regressor(tmp_path / f"{name}.pt", expect=ict_spec).network
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in network.state_dict().items())
    save(residual, tmp_path / "missing.pt", hidden=32, depth=1)  # blocks left out: the plain MLP does not fit
    with pytest.raises(ModelFileError, match="not the weights of f2p's landmark regressor"):
        load_landmark_regressor(tmp_path / "missing.pt")
    for bad in (-1, 1.5, True, "2"):
        save(residual, tmp_path / "bad.pt", hidden=32, depth=1, blocks=bad)
        with pytest.raises(ModelFileError, match="'blocks'") as error:
            load_landmark_regressor(tmp_path / "bad.pt")
        assert "\n" not in str(error.value)


def test_export_keeps_the_blocks(ict_spec, tmp_path):
    system = LandmarkRegressorSystem(hidden=32, depth=1, blocks=1)
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": dict(system.hparams),
                "state_dict": {f"network.{k}": v for k, v in system.network.state_dict().items()}}, checkpoint)
    pt, meta = export_weights(checkpoint, tmp_path / "out.pt")
    assert json.loads(meta.read_text())["blocks"] == 1
    assert sum(isinstance(m, ResidualBlock) for m in load_landmark_regressor(pt).network.net) == 1


@pytest.mark.parametrize("model", ["ict", "sfm"])
def test_both_shipped_networks_load(model, models_dir):
    path = WEIGHTS_DIR / f"{model}_landmark_regressor.pt"
    if not path.is_file():
        pytest.skip(f"no shipped {model} weights")
    assert path.stat().st_size < 10 * 2**20
    assert load_landmark_regressor(path).network.spec.model.name == model


def perturbed_faces(spec: SceneSpec, seed: int, group: str, noise: float) -> tuple[dict, dict]:
    """The true parameters of 4 synthetic faces and a copy with Gaussian ``noise`` on ``group`` (requires grad)."""
    truth = LandmarkFaceBatches(spec, LandmarkSampler(), 1, 4, seed=seed)[0][PARAMS]
    guess = {name: value.clone() for name, value in truth.items()}
    guess[group] = (guess[group] + noise * torch.randn_like(guess[group])).requires_grad_()
    return truth, guess


def test_the_aligned_term_is_the_similarity_aligned_surface_distance(ict_spec):
    system = LandmarkRegressorSystem(hidden=32, depth=1, weights=LandmarkLossWeights(aligned=1.0))
    truth, guess = perturbed_faces(ict_spec, 3, "identity", 0.5)
    model = ict_spec.model
    terms = system.loss_terms(guess, truth)
    points = dense_landmarks(model, **{n: guess[n] for n in model.groups})
    true_points = dense_landmarks(model, **{n: truth[n] for n in model.groups})
    everywhere = torch.ones(points.shape[1], dtype=torch.bool)
    expected = vertex_errors(points, true_points, everywhere, "similarity").mean(1) * MM_PER_M
    torch.testing.assert_close(terms["aligned"], expected, rtol=1e-4, atol=1e-4)
    assert (terms["aligned"] < terms["vertices"]).all()
    terms["aligned"].sum().backward()
    assert guess["identity"].grad.abs().sum() > 0
    assert float(system.loss_terms(truth, truth)["aligned"].max()) < 1e-3
    switched_off = LandmarkRegressorSystem(hidden=32, depth=1, weights=LandmarkLossWeights(aligned=0.0))
    assert "aligned" not in switched_off.loss_terms(guess, truth)


def test_the_rotation_term_is_the_benchmarks_head_rotation_error(ict_spec):
    system = LandmarkRegressorSystem(hidden=32, depth=1, weights=LandmarkLossWeights(rotation=1.0))
    truth, guess = perturbed_faces(ict_spec, 4, "pose", 0.05)
    terms = system.loss_terms(guess, truth)
    expected = recovery_errors(ict_spec.model, guess, truth, prior_scales(ict_spec.model)).pose_deg["geodesic"]
    torch.testing.assert_close(terms["rotation"], expected, rtol=1e-3, atol=1e-3)
    assert (terms["rotation"] > 0.5).all()  # 0.05 rad of noise per axis is degrees of error
    terms["rotation"].sum().backward()
    assert torch.isfinite(guess["pose"].grad).all() and guess["pose"].grad.abs().sum() > 0
    at_truth = {n: v.clone().requires_grad_() for n, v in truth.items()}
    exact = system.loss_terms(at_truth, truth)["rotation"]
    assert float(exact.detach().max()) < 1e-2
    exact.sum().backward()
    assert torch.isfinite(at_truth["pose"].grad).all()  # finite at zero error, unlike the arccos of the trace
    assert "rotation" not in LandmarkRegressorSystem(hidden=32, depth=1).loss_terms(guess, truth)
