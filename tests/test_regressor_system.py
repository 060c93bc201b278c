"""RegressorSystem: end-to-end gradients, overfitting a tiny synthetic set, lean checkpoints, size-free predictions."""

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer

from f2p.data import batch as keys
from f2p.data.batch import batch_observations
from f2p.data.synthetic import SyntheticFaceDataModule
from f2p.errors import ModelFileError
from f2p.losses.perceptual import PerceptualLoss
from f2p.nets import ResNetEncoder, UNetRefiner
from f2p.scene import render_scene
from f2p.systems.regressor import LossWeights, RegressorSystem, parameter_errors
from regressor_support import one_thread  # noqa: F401 (autouse fixture)

S = 32


def make_system(**kwargs) -> RegressorSystem:
    return RegressorSystem(ResNetEncoder(), UNetRefiner(channels=8, depth=2), face_model="procedural", image_size=S,
                           **kwargs)


@pytest.fixture(scope="module")
def batch():
    module = SyntheticFaceDataModule("procedural", S, num_train=4, batch_size=4)
    module.setup("fit")
    return next(iter(module.train_dataloader()))


def _grads(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_render_losses_alone_train_encoder_head_and_refiner(batch):
    system = make_system(weights=LossWeights(params=0.0))
    # zero-initialised last layers pass no gradient back until their first update: start from a trained-like state
    for layer in (system.refiner.out, *(head[-1] for head in system.regressor.head.heads.values())):
        torch.nn.init.normal_(layer.weight, std=0.01)
    obs = batch_observations(batch)
    out = system(obs.image, obs.landmarks)
    terms = system.loss_terms(out, obs, None)
    assert {"landmark", "photometric", "refined_photometric", "prior"} <= set(terms) and "params" not in terms
    system.total_loss(terms).backward()
    assert _grads(system.regressor.encoder) > 0 and _grads(system.regressor.head) > 0 and _grads(system.refiner) > 0

    # the refined portrait's loss reaches the encoder through the render buffers (end to end)
    system.zero_grad()
    out = system(obs.image, obs.landmarks)
    system.loss_terms(out, obs, None)["refined_photometric"].mean().backward()
    assert _grads(system.regressor.encoder) > 0


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.slow
def test_overfits_a_tiny_synthetic_set():
    data = SyntheticFaceDataModule("procedural", S, num_train=4, num_val=4, batch_size=4)
    system = make_system(weights=LossWeights(params=1.0), lr=3e-3)
    recorder = LossRecorder()
    Trainer(max_steps=50, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, limit_val_batches=0, callbacks=[recorder]).fit(system, data)
    first, last = recorder.losses[0], min(recorder.losses[-5:])
    assert last < 0.1 * first, recorder.losses


def test_checkpoints_hold_no_model_data_nor_frozen_networks(tmp_path):
    vgg = torch.nn.Sequential(*list(__import__("torchvision").models.vgg16().features)[:9])
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg.pth")
    perceptual = PerceptualLoss(str(tmp_path / "vgg.pth"), layers=("relu1_2", "relu2_2"))
    system = make_system(weights=LossWeights(refined_identity=0.1, perceptual=0.1), perceptual=perceptual)
    assert system.objective.embedder is not None
    state_keys = list(system.state_dict())
    assert not [k for k in state_keys if k.startswith(("objective.", "perceptual.", "face_model."))], state_keys
    assert any(k.startswith("regressor.encoder.") for k in state_keys)
    assert any(k.startswith("refiner.") for k in state_keys)
    other = make_system(weights=LossWeights(refined_identity=0.1, perceptual=0.1), perceptual=perceptual)
    other.load_state_dict(system.state_dict())  # strict: frozen networks are not expected
    assert torch.equal(other.refiner.out.weight, system.refiner.out.weight)


def test_init_weights_start_a_run_and_a_file_that_cannot_is_one_line_naming_it(tmp_path):
    trained = make_system()
    torch.nn.init.normal_(trained.refiner.out.weight)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": trained.state_dict()}, good)
    assert torch.equal(make_system(init_weights=str(good)).refiner.out.weight, trained.refiner.out.weight)
    junk, no_state, wider = tmp_path / "junk.ckpt", tmp_path / "plain.ckpt", tmp_path / "wider.ckpt"
    junk.write_text("junk\n")
    torch.save({"epoch": 1}, no_state)
    torch.save({"state_dict": RegressorSystem(ResNetEncoder(), UNetRefiner(channels=16, depth=2),
                                              face_model="procedural", image_size=S).state_dict()}, wider)
    for path, problem in ((junk, "not a regressor checkpoint f2p can load"), (no_state, "no state_dict"),
                          (wider, "holds networks that differ"), (tmp_path / "missing.ckpt", "no such file")):
        with pytest.raises(ModelFileError) as caught:
            make_system(init_weights=str(path))
        assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value)
        assert "\n" not in str(caught.value)


def test_identity_and_perceptual_terms_on_the_refined_portrait(tmp_path, batch):
    vgg = torch.nn.Sequential(*list(__import__("torchvision").models.vgg16().features)[:4])
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg.pth")
    system = make_system(weights=LossWeights(refined_identity=0.1, perceptual=0.1),
                         perceptual=PerceptualLoss(str(tmp_path / "vgg.pth"), layers=("relu1_2",)))
    two = {key: value[:2] if not isinstance(value, dict) else {g: v[:2] for g, v in value.items()}
           for key, value in batch.items()}
    obs = batch_observations(two, system._photo_embedding(two))
    terms = system.loss_terms(system(obs.image, obs.landmarks), obs, None)
    assert terms["refined_identity"].shape == (2,) and (terms["refined_identity"] > 0).all()
    assert terms["perceptual"].shape == (2,) and (terms["perceptual"] > 0).all()
    with pytest.raises(ValueError, match="perceptual"):
        make_system(weights=LossWeights(perceptual=0.1))


def test_predicted_parameters_do_not_depend_on_the_crop_size(batch):
    system = make_system().eval()
    torch.nn.init.normal_(system.regressor.head.heads["translation"][0].weight, std=0.01)
    crops, landmarks = batch[keys.IMAGE], batch[keys.LANDMARKS]
    native = system.predict_params(crops, landmarks)
    with torch.no_grad():
        direct = system.regressor(crops, landmarks)
    assert all(torch.allclose(native[g], direct[g]) for g in native)
    assert system.training is False
    big = F.interpolate(crops, scale_factor=3, mode="bilinear", align_corners=False)
    upscaled = system.predict_params(big, (landmarks + 0.5) * 3 - 0.5)
    assert torch.allclose(upscaled["translation"], native["translation"], atol=2e-3, rtol=5e-3)
    # the same parameters put the landmarks where they belong in the big crop
    big_spec = type(system.spec)(system.face_model, (3 * S, 3 * S))
    projected = render_scene(big_spec, native, None).landmarks2d
    small = render_scene(system.spec, native, None).landmarks2d
    assert torch.allclose(projected, (small + 0.5) * 3 - 0.5, atol=1e-3)


def test_parameter_errors_against_the_prior(batch):
    system = make_system()
    truth = batch[keys.PARAMS]
    scales = {g: system.regressor.head.scale(g) for g in truth}
    exact = parameter_errors(system.spec, truth, truth, scales)
    assert all(torch.allclose(v, torch.zeros_like(v), atol=1e-3) for v in exact.values())
    prior = parameter_errors(system.spec, system.spec.initial(4), truth, scales)
    assert (prior["param_error"] > 0.3).all() and (prior["vertex_error_mm"] > 0).all()
    assert (prior["param_error_shape"] > 0.3).all() and (prior["param_error_identity_shape"] > 0.3).all()
    assert (prior["pose_error_deg"] > 0).all()
    assert {f"param_error_{g}" for g in system.face_model.groups} <= set(prior)


def test_the_supervised_vertex_term_is_the_mesh_error_and_trains_the_shape_head(batch):
    system = make_system(weights=LossWeights(params=0.0, vertices=1.0))
    obs = batch_observations(batch)
    truth = batch[keys.PARAMS]
    out = system(obs.image, obs.landmarks)
    terms = system.loss_terms(out, obs, truth)
    scales = {g: system.regressor.head.scale(g) for g in truth}
    torch.testing.assert_close(terms["vertices"], parameter_errors(system.spec, out.params, truth, scales)[
        "vertex_error_mm"])
    assert (terms["vertices"] > 0).all()
    terms["vertices"].mean().backward()
    shape_heads = [system.regressor.head.heads[g] for g in system.face_model.groups]
    assert sum(_grads(head) for head in shape_heads) > 0
    assert "vertices" not in make_system().loss_terms(out, obs, truth)  # off unless weighted
