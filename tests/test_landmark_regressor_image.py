"""The landmark regressor's optional image branch: landmark faces rendered into crops where their landmarks are,
a network that reads the crop (upright with the landmarks) and needs it, landmarks-only weights that start it
answering as they do, weights that rebuild the branch and refuse
an unknown encoder in one line, the predictor handing it crops of the network's size, and a tiny LightningCLI run
of ``configs/landmark_image_regressor.yaml``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from f2p.cli import main
from f2p.data.landmark_synthetic import IMAGE, LANDMARKS, LandmarkFaceBatches, LandmarkSampler
from f2p.data.synthetic import SceneSampler
from f2p.errors import ModelFileError
from f2p.morphable.registry import load_model
from f2p.nets.landmark_regressor import LandmarkRegressor
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec
from f2p.systems.landmark_regressor import LandmarkRegressorSystem
from f2p.systems.landmark_weights import load_landmark_regressor
from regressor_support import one_thread  # noqa: F401 (autouse fixture)
from regressor_support import tiny_landmark_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "landmark_image_regressor.yaml"
S = 64


@pytest.fixture(scope="module")
def spec(models_dir) -> SceneSpec:
    return SceneSpec(load_model("ict"), (S, S))


def test_rendered_crops_show_the_face_where_its_landmarks_are(spec):
    exact = LandmarkSampler(noise=None)
    plain = LandmarkFaceBatches(spec, exact, 1, 6, seed=3)[0]
    batch = LandmarkFaceBatches(spec, exact, 1, 6, seed=3, images=SceneSampler(background_std=0.0))[0]
    assert batch[IMAGE].shape == (6, 3, S, S) and 0 <= batch[IMAGE].min() and batch[IMAGE].max() <= 1
    assert torch.equal(batch[LANDMARKS], plain[LANDMARKS])  # the crops change nothing else
    background = batch[IMAGE][:, :, 0, 0]  # (B, 3): a plain background colour per face
    # brows and nose (ICT's open eye and mouth sockets show the background at the eyes' and inner lips' points)
    inner = batch[LANDMARKS][:, 17:36].round().long().clamp(0, S - 1)  # (B, 19, 2)
    at_points = torch.stack([batch[IMAGE][b, :, inner[b, :, 1], inner[b, :, 0]].T for b in range(6)])  # (B, 19, 3)
    on_face = (at_points - background[:, None]).abs().amax(-1) > 1e-3
    assert on_face.float().mean() > 0.95


def test_a_network_with_an_image_encoder_reads_the_crop(spec):
    torch.manual_seed(0)
    network = LandmarkRegressor(spec, hidden=32, depth=1, image_encoder="resnet18").eval()
    for layer in network.head.heads.values():  # the head starts at zero: give it weights so features show
        torch.nn.init.normal_(layer[-1].weight, std=0.1)
    batch = LandmarkFaceBatches(spec, LandmarkSampler(), 1, 2, seed=0, images=SceneSampler())[0]
    args = (batch[LANDMARKS], torch.ones(2, 68))
    with pytest.raises(ValueError, match="reads the crops"):
        network(*args)
    first = network(*args, image=batch[IMAGE])
    second = network(*args, image=batch[IMAGE].flip(0))
    assert not torch.allclose(first["identity"], second["identity"])
    first["identity"].square().sum().backward()
    assert network.crop_encoder.net.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="image_encoder must be one of"):
        LandmarkRegressor(spec, hidden=32, depth=1, image_encoder="vgg16")


def test_crops_are_turned_upright_with_their_landmarks(spec):
    network = LandmarkRegressor(spec, hidden=32, depth=1, image_encoder="resnet18")
    batch = LandmarkFaceBatches(spec, LandmarkSampler(noise=None), 1, 1, seed=1, images=SceneSampler())[0]
    angle = math.radians(20)
    turn = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = torch.tensor([(S - 1) / 2, (S - 1) / 2])
    turned_points = (batch[LANDMARKS] - centre) @ turn.T + centre  # the face turned by 20 degrees in the crop
    theta = torch.cat([turn.T, torch.zeros(2, 1)], 1)[None]  # output pixel p shows the input at turn^T p
    grid = torch.nn.functional.affine_grid(theta, [1, 3, S, S], align_corners=False)
    turned_image = torch.nn.functional.grid_sample(batch[IMAGE], grid, align_corners=False, padding_mode="border")
    ones = torch.ones(1, 68)
    upright = network.upright_crops(batch[IMAGE], network.in_plane_rotation(batch[LANDMARKS], ones))
    from_turned = network.upright_crops(turned_image, network.in_plane_rotation(turned_points, ones))
    middle = slice(S // 4, 3 * S // 4)
    difference = (upright - from_turned)[..., middle, middle].abs().mean()
    assert difference < 0.25 * (upright - turned_image)[..., middle, middle].abs().mean()


def test_weights_rebuild_the_image_branch_and_the_predictor_resizes_crops(spec, tmp_path):
    network = LandmarkRegressor(spec, hidden=32, depth=1, image_encoder="resnet18")
    path = tmp_path / "net.pt"
    torch.save(network.state_dict(), path)
    meta = {"face_model": "ict", "image_size": S, "hidden": 32, "depth": 1, "image_encoder": "resnet18"}
    path.with_suffix(".json").write_text(json.dumps(meta))
    predictor = load_landmark_regressor(path)
    assert predictor.network.image_encoder == "resnet18" and predictor.network.crop_encoder is not None
    batch = LandmarkFaceBatches(spec, LandmarkSampler(), 1, 2, seed=0)[0]
    obs = Observations(image=torch.rand(2, 3, 2 * S, 2 * S), landmarks=batch[LANDMARKS] * 2 + 0.5,
                       confidence=torch.ones(2, 68))  # crops twice the network's size
    assert predictor(obs)["identity"].shape == (2, spec.model.groups["identity"].size)
    path.with_suffix(".json").write_text(json.dumps(meta | {"image_encoder": "vgg16"}))
    with pytest.raises(ModelFileError, match="image_encoder") as error:
        load_landmark_regressor(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_tiny_cli_run_of_the_image_config_writes_a_loadable_checkpoint(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    code = main(tiny_landmark_run(CONFIG, tmp_path, "--trainer.accelerator", "cpu", "--data.init_args.num_workers", "0",
                                  "--data.init_args.image_size", str(S), "--model.init_args.image_size", str(S),
                                  "--model.init_args.refine", "1"))
    assert code == 0
    network = load_landmark_regressor(next(tmp_path.rglob("last.ckpt"))).network
    assert network.image_encoder == "resnet18" and network.refine == 1


def test_landmarks_only_weights_start_an_image_network_answering_as_they_do(spec, tmp_path):
    plain = LandmarkRegressor(spec, hidden=32, depth=1)
    for layer in plain.head.heads.values():  # a "trained" head, so that the answer is not the mean face
        torch.nn.init.normal_(layer[-1].weight, std=0.05)
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    (tmp_path / "plain.json").write_text(json.dumps({"face_model": "ict", "image_size": S, "hidden": 32, "depth": 1}))
    system = LandmarkRegressorSystem(image_size=S, hidden=32, depth=1, image_encoder="resnet18",
                                     init_weights=str(tmp_path / "plain.pt"))
    batch = LandmarkFaceBatches(spec, LandmarkSampler(), 1, 2, seed=0, images=SceneSampler())[0]
    with torch.no_grad():
        expected = plain(batch[LANDMARKS], torch.ones(2, 68))
        answer = system.network.eval()(batch[LANDMARKS], torch.ones(2, 68), image=batch[IMAGE])
    for name, value in expected.items():
        torch.testing.assert_close(answer[name], value)
