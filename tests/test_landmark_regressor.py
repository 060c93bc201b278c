"""The landmark regressor: network shapes and ranges, the landmark-only synthetic faces (crop convention, noise),
weights-only loading that refuses bad files in one line, a tiny LightningCLI training run, the shipped ICT weights
against the mean face, and ``reconstruct --quality instant`` on a shared photo (with and without its
Levenberg-Marquardt iterations)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from f2p.cli import main
from f2p.data.landmark_synthetic import (CONFIDENCE, DENSE, DENSE_CONFIDENCE, LANDMARKS, PARAMS, LandmarkFaceBatches,
                                         LandmarkSampler)
from f2p.errors import ModelFileError
from f2p.evaluation.geometry import vertex_errors
from f2p.output_sets import OUTPUT_FILES
from f2p.morphable.registry import load_model
from f2p.nets.landmark_regressor import LandmarkRegressor
from f2p.perception.crop import crop_matrix
from f2p.render.rotations import axis_angle_to_matrix
from f2p.evaluation.pose import pose_errors
from f2p.scene.compose import render_scene
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec
from f2p.systems.landmark_weights import load_initializer, load_landmark_regressor, shipped_weights
from regressor_support import one_thread  # noqa: F401 (autouse fixture)
from regressor_support import tiny_landmark_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "landmark_regressor.yaml"


@pytest.fixture(scope="module")
def ict_spec(models_dir) -> SceneSpec:
    return SceneSpec(load_model("ict"), (224, 224))


def observations(batch: dict) -> Observations:
    B = batch[LANDMARKS].shape[0]
    return Observations(image=torch.zeros(B, 3, 224, 224), landmarks=batch[LANDMARKS], confidence=batch[CONFIDENCE],
                        dense=batch[DENSE], dense_confidence=batch[DENSE_CONFIDENCE])


def test_network_predicts_every_group_in_range(ict_spec):
    batch = LandmarkFaceBatches(ict_spec, LandmarkSampler(), 1, 6, seed=7)[0]
    network = LandmarkRegressor(ict_spec, hidden=64, depth=2)
    untrained = network(batch[LANDMARKS], batch[CONFIDENCE], batch[DENSE], batch[DENSE_CONFIDENCE])
    assert {name: tuple(v.shape) for name, v in untrained.items()} == {n: (6, K) for n, K in ict_spec.sizes().items()}
    initial = ict_spec.initial(6, batch[LANDMARKS])  # zero-initialised heads: the mean face over the landmarks
    torch.testing.assert_close(untrained["translation"], initial["translation"], atol=0.005, rtol=0.0)
    torch.testing.assert_close(untrained["identity"], initial["identity"])
    turn = torch.tensor([[0.8, -0.6], [0.6, 0.8]])  # the photo turned in-plane about the principal point
    centre = torch.tensor([111.5, 111.5])
    turned = network(*((points - centre) @ turn.T + centre if points.shape[-1:] == (2,) else points
                       for points in (batch[LANDMARKS], batch[CONFIDENCE], batch[DENSE], batch[DENSE_CONFIDENCE])))
    torch.testing.assert_close(turned["identity"], untrained["identity"], atol=1e-4, rtol=0.0)
    projected = render_scene(ict_spec, turned, None).landmarks2d  # the same face, turned with the photo
    torch.testing.assert_close(projected, (render_scene(ict_spec, untrained, None).landmarks2d - centre) @ turn.T
                               + centre, atol=1e-2, rtol=0.0)
    for layer in network.head.heads.values():
        torch.nn.init.normal_(layer[-1].weight, std=10.0)  # saturating outputs must stay in range
    wild = network(batch[LANDMARKS], batch[CONFIDENCE])  # no dense points at all
    group = ict_spec.model.groups["expression"]
    assert torch.isfinite(wild["identity"]).all()
    assert (wild["expression"] >= torch.tensor(group.lower)).all() and (wild["expression"] <= torch.tensor(group.upper)).all()


def test_synthetic_faces_follow_the_crop_convention_and_the_measured_noise(ict_spec):
    exact = LandmarkFaceBatches(ict_spec, LandmarkSampler(noise=None), 1, 64, seed=3)[0]
    noisy = LandmarkFaceBatches(ict_spec, LandmarkSampler(), 1, 64, seed=3)[0]
    matrix = crop_matrix(exact[LANDMARKS], size=224)  # re-aligning a synthetic face barely moves it
    assert (torch.linalg.det(matrix[:, :, :2]).sqrt() - 1).abs().max() < 0.1
    assert matrix[:, 1, 0].abs().max() < 0.06  # rotation under ~3.5 degrees
    expression = exact[PARAMS]["expression"]
    assert 0.15 < (expression > 0).float().mean() < 0.45  # sparse sliders
    offsets = (noisy[DENSE] - exact[DENSE]).norm(dim=-1)  # same seed: same faces, plus noise
    eye = (exact[DENSE][:, 33] - exact[DENSE][:, 263]).norm(dim=-1)
    median = float((offsets / eye[:, None]).median())
    assert 0.04 < median < 0.12  # measured: 0.064 outer-eye-corner distances (frontal to 45 degrees)
    again = LandmarkFaceBatches(ict_spec, LandmarkSampler(), 1, 64, seed=3)[0]
    torch.testing.assert_close(again[DENSE], noisy[DENSE])


def test_synthetic_faces_can_be_cropped_from_their_noisy_points_and_placed_loosely(ict_spec):
    def shifts(batch: dict) -> Tensor:  # (B,) pixels that re-aligning the observed points would move the face by
        matrix = crop_matrix(batch[LANDMARKS], size=224)
        centre = torch.full((1, 2, 1), 111.5)
        return ((matrix[:, :, :2] @ centre + matrix[:, :, 2:]) - centre).norm(dim=(1, 2))

    tight = LandmarkFaceBatches(ict_spec, LandmarkSampler(), 1, 64, seed=3)[0]
    photo_like = LandmarkFaceBatches(ict_spec, LandmarkSampler(crop_from_noisy=True), 1, 64, seed=3)[0]
    loose = LandmarkFaceBatches(ict_spec, LandmarkSampler(crop_from_noisy=True, placement_px=8.0), 1, 64, seed=3)[0]
    # a photo's crop comes from its detections: its observed points, not the true face, sit on the template
    assert float(shifts(photo_like).median()) < 0.25 * float(shifts(tight).median())
    assert float(shifts(loose).median()) > 6.0
    for batch in (photo_like, loose):  # the truth still projects to the observed points up to the detector noise
        exact = render_scene(ict_spec, batch[PARAMS], None, dense=True)
        tight_exact = render_scene(ict_spec, tight[PARAMS], None, dense=True)
        noise = (batch[DENSE] - exact.dense2d).norm(dim=-1).mean()
        assert abs(float(noise / (tight[DENSE] - tight_exact.dense2d).norm(dim=-1).mean()) - 1) < 0.1
    with pytest.raises(ValueError, match="crop_from_noisy needs a detector noise"):
        LandmarkSampler(noise=None, crop_from_noisy=True)
    with pytest.raises(ValueError, match="placement_px"):
        LandmarkSampler(placement_px=-1.0)


def test_training_faces_can_be_drawn_towards_the_canonical_face(ict_spec):
    from f2p.morphable.canonical_identity import canonical_coefficients
    from f2p.morphable.correspondence import load_canonical_face, similarity_align
    from f2p.morphable.dense import dense_landmarks

    model = ict_spec.model
    canonical = canonical_coefficients(model)["identity"]
    face = load_canonical_face()

    def distance_mm(identity: Tensor) -> float:  # mean distance of the model's dense points to the canonical face
        points = dense_landmarks(model, identity=identity[None])[0].double()
        s, R, t = similarity_align(points, face)
        return float((s * points @ R.T + t - face).norm(dim=1).mean()) * 1000

    assert distance_mm(canonical) < 0.6 * distance_mm(torch.zeros_like(canonical))
    plain = LandmarkFaceBatches(ict_spec, LandmarkSampler(), 1, 256, seed=3)[0][PARAMS]["identity"]
    shifted = LandmarkFaceBatches(ict_spec, LandmarkSampler(canonical_shift=1.0), 1, 256,
                                  seed=3)[0][PARAMS]["identity"]
    # on average half the canonical face's coefficients are added, and the prior's spread is kept around them
    along = (shifted.mean(0) - plain.mean(0)) @ canonical / canonical.norm() ** 2
    assert 0.4 < float(along) < 0.6
    assert abs(float((shifted - shifted.mean(0)).std() / plain.std()) - 1) < 0.15
    with pytest.raises(ValueError, match="canonical_shift"):
        LandmarkSampler(canonical_shift=-0.5)


def save_tiny_weights(spec: SceneSpec, path: Path, hidden: int = 32) -> LandmarkRegressor:
    network = LandmarkRegressor(spec, hidden=hidden, depth=1)
    torch.save(network.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"face_model": "ict", "image_size": 224, "hidden": hidden,
                                                     "depth": 1}))
    return network


def test_weights_load_weights_only_and_bad_files_are_one_line(ict_spec, tmp_path):
    path = tmp_path / "net.pt"
    save_tiny_weights(ict_spec, path)
    batch = LandmarkFaceBatches(ict_spec, LandmarkSampler(), 1, 2, seed=1)[0]
    assert load_landmark_regressor(path, expect=ict_spec)(observations(batch))["identity"].shape == (2, 100)
    path.with_suffix(".json").write_text(json.dumps({"face_model": "ict", "image_size": 224, "hidden": 64,
                                                     "depth": 1}))
    with pytest.raises(ModelFileError, match="not the weights of f2p's landmark regressor") as wrong_shape:
        load_landmark_regressor(path)
    tampered = tmp_path / "tampered.pt"
    tampered.write_bytes(path.read_bytes()[:1000])
    tampered.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(ModelFileError, match="not a weights file f2p can load") as truncated:
        load_landmark_regressor(tampered)
    code = tmp_path / "code.pt"
    torch.save({"x": Path("/")}, code)  # a pickled object, not tensors: weights_only refuses it
    code.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(ModelFileError) as pickled:
        load_landmark_regressor(code)
    junk = tmp_path / "junk.pt"  # bytes that are no torch file: the unpickler fails with a KeyError on these
    junk.write_text("junk\n")
    with pytest.raises(ModelFileError, match="can load") as not_torch:
        load_initializer(junk, expect=ict_spec)
    for error in (wrong_shape, truncated, pickled, not_torch):
        assert "\n" not in str(error.value) and str(error.value).startswith(str(tmp_path))


def test_evaluate_instant_answers_from_the_network_given_with_init(ict_spec, tmp_path, capsys):
    path = tmp_path / "tiny.pt"
    save_tiny_weights(ict_spec, path)
    args = ["evaluate", "--synthetic", "1", "--dense", "--quality", "instant", "--steps", "0", "--threads", "1"]
    assert main([*args, "--init", str(path), "--out", str(tmp_path / "report")]) == 0
    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    assert summary["settings"]["method"] == f"regressor {path}"  # not the shipped weights
    assert main([*args, "--init", str(path), "--checkpoint", str(path)]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_tiny_cli_training_run_writes_a_loadable_checkpoint(models_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    code = main(tiny_landmark_run(CONFIG, tmp_path))
    assert code == 0
    checkpoint = next(tmp_path.rglob("last.ckpt"))
    assert str(checkpoint) in capsys.readouterr().out
    predictor = load_landmark_regressor(checkpoint)
    assert predictor.network.net[0].out_features == 32


def test_shipped_weights_beat_the_mean_face(ict_spec):
    path = shipped_weights("ict")
    assert path.stat().st_size < 10 * 2**20
    predictor = load_landmark_regressor(path, expect=ict_spec)
    batch = LandmarkFaceBatches(ict_spec, LandmarkSampler(dense_drop=0.0), 1, 16, seed=12345)[0]
    predicted, truth = predictor(observations(batch)), batch[PARAMS]
    prior = ict_spec.initial(16, batch[LANDMARKS])
    model = ict_spec.model

    def shape_error(params: dict) -> float:  # median face-region error, mm, similarity-aligned unposed meshes
        verts = model(**{n: params[n] for n in model.groups}).verts
        true = model(**{n: truth[n] for n in model.groups}).verts
        return float(vertex_errors(verts, true, model.face_region, "similarity").median(1).values.median() * 1000)

    def rotation_error(params: dict) -> float:
        errors = pose_errors(axis_angle_to_matrix(params["pose"]), axis_angle_to_matrix(truth["pose"]))
        return float(errors["geodesic"].median())

    assert shape_error(predicted) < 0.8 * shape_error(prior)
    assert rotation_error(predicted) < 0.3 * rotation_error(prior)


def test_reconstruct_instant_writes_the_outputs_and_refines_the_network(models_dir, faces_dir, tmp_path):
    photo = sorted(p for p in (faces_dir / "images").iterdir() if p.suffix.lower() in (".jpg", ".png"))[0]
    metrics = {}
    for steps in ("0", "2"):  # the network alone, then instant's default: two Levenberg-Marquardt iterations after it
        out = tmp_path / steps
        code = main(["reconstruct", str(photo), "--out", str(out), "--quality", "instant", "--steps", steps,
                     "--no-identity"])
        assert code == 0
        folder = next(p for p in out.iterdir() if p.is_dir())
        assert {name for name in OUTPUT_FILES} <= {p.name for p in folder.iterdir()}
        metrics[steps] = json.loads((folder / "metrics.json").read_text())
    assert metrics["0"]["method"] == "landmark-regressor" and metrics["0"]["landmark_rmse_px"] < 10
    assert metrics["2"]["landmark_rmse_px"] < 0.8 * metrics["0"]["landmark_rmse_px"]


@pytest.mark.parametrize("config", ["landmark_regressor.yaml", "landmark_regressor_photos.yaml",
                                    "landmark_image_regressor.yaml"])
def test_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as done:
        main(["predict" if "photos" in config else "fit", "--config", str(REPO / "configs" / config),
              "--print_config"])
    assert done.value.code == 0
    assert "LandmarkRegressorSystem" in capsys.readouterr().out
