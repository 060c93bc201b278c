"""``reconstruct --init CKPT``: a fit really starts from the regressor's prediction, and a one-pass
``PredictionEstimator`` hands the prediction on unchanged.

A tiny regressor is trained for a few seconds on four synthetic faces of the procedural model (32 px); its
``predict_params`` is the initializer, as ``reconstruct --init`` builds it from ``load_regressor(CKPT)`` (the
checkpoint round trip of ``predict_params`` is tested in test_regressor_cli.py; a checkpoint that
``load_regressor`` reads needs a ``python -m f2p fit`` run, several times slower than this training). The fits run
on the same four faces rendered at 64 px (the same parameters: items are drawn from their seed alone), so the
prediction also goes through the crop-size change that ``--init`` meets at the default 224 px crop. The regressor
is judged on faces it was trained on: what is tested is where the fit starts, not how well the regressor
generalises.
"""

from dataclasses import replace

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import default_collate

from f2p.data import batch as K
from f2p.data.batch import batch_observations
from f2p.data.synthetic import SyntheticFaceDataModule
from f2p.fitting import Fitter, Stage, default_schedule
from f2p.fitting.estimate import FittingEstimator, PredictionEstimator
from f2p.morphable.registry import load_model
from f2p.nets import ResNetEncoder, UNetRefiner
from f2p.render.renderer import MeshRenderer
from f2p.scene import SceneSpec, render_scene
from f2p.systems.landmark_weights import regressor_initializer
from f2p.systems.regressor import LossWeights, RegressorSystem
from regressor_support import one_thread  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.slow  # about 10 s: training the regressor is what proves the feature

N = 4  # faces
TRAIN_SIZE = 32  # the regressor's crop side
FIT_SIZE = 64  # the fit's crop side
TRAIN_STEPS = 30  # enough to overfit four faces (starting landmark loss 3-15x below the mean face's)


def faces(size: int) -> dict:
    """The N training faces at ``size`` px, in index order (the train loader shuffles)."""
    data = SyntheticFaceDataModule("procedural", size, num_train=N, num_val=N, batch_size=N)
    data.setup("fit")
    return default_collate(data.datasets["train"].__getitems__(list(range(N))))


@pytest.fixture(scope="module")
def spec():
    return SceneSpec(load_model("procedural"), (FIT_SIZE, FIT_SIZE))


@pytest.fixture(scope="module")
def regressor():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the autouse one_thread
    try:
        torch.manual_seed(0)
        data = SyntheticFaceDataModule("procedural", TRAIN_SIZE, num_train=N, num_val=N, batch_size=N)
        system = RegressorSystem(ResNetEncoder(), UNetRefiner(channels=8, depth=2), face_model="procedural",
                                 image_size=TRAIN_SIZE, weights=LossWeights(params=1.0), lr=3e-3)
        Trainer(max_steps=TRAIN_STEPS, accelerator="cpu", logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0).fit(system, data)
    finally:
        torch.set_num_threads(threads)
    return system.eval()


@pytest.fixture(scope="module")
def obs():
    big, small = faces(FIT_SIZE), faces(TRAIN_SIZE)
    # precondition: the 64 px faces are the 32 px training faces (same parameters)
    assert torch.allclose(big[K.PARAMS]["pose"], small[K.PARAMS]["pose"])
    return batch_observations(big)


@pytest.fixture(scope="module")
def renderer():
    return MeshRenderer(backend="torch")


def rigid(steps: int) -> Stage:
    """The default schedule's rigid stage with ``steps`` steps."""
    stage = default_schedule()[0]
    assert stage.name == "rigid"
    return replace(stage, steps=steps)


def test_a_fit_of_zero_steps_returns_the_regressors_prediction(regressor, spec, obs, renderer):
    stages = [rigid(0), replace(default_schedule()[1], steps=0)]
    estimate = FittingEstimator(Fitter(spec, renderer, stages), initializer=regressor_initializer(regressor))(obs)
    predicted = regressor.predict_params(obs.image, obs.landmarks)
    assert set(estimate.params) == set(predicted)
    for group, value in predicted.items():
        assert torch.allclose(estimate.params[group], value, atol=1e-6), group
    # the prediction is not the mean face, so the comparison above tells the two starts apart
    mean = spec.initial(N, obs.landmarks)
    assert (estimate.params["pose"] - mean["pose"]).abs().amax(1).min() > 0.02  # radians, every face
    assert (estimate.params["identity"] - mean["identity"]).abs().amax(1).min() > 0.05
    assert estimate.errors == [""] * N and all(m["steps"] == 0 for m in estimate.metrics)
    # the scene handed to the exporter is the prediction's, at the fit's crop size
    projected = render_scene(spec, predicted, None).landmarks2d
    assert estimate.scene.landmarks2d.shape == (N, 68, 2)
    assert torch.allclose(estimate.scene.landmarks2d, projected, atol=1e-3)


def first_rigid_loss(estimator: FittingEstimator, obs) -> float:
    seen = []
    estimator(obs, on_step=lambda stage, step, loss: seen.append((stage, step, loss)))
    stage, step, loss = seen[0]
    assert (stage, step) == ("rigid", 0)
    return loss


def test_the_fit_starts_lower_from_a_trained_regressor_than_from_the_mean_face(regressor, spec, obs, renderer):
    fitter = Fitter(spec, renderer, [rigid(2)])
    from_mean = first_rigid_loss(FittingEstimator(fitter), obs)
    from_regressor = first_rigid_loss(FittingEstimator(fitter, initializer=regressor_initializer(regressor)), obs)
    # ignoring the initializer gives a ratio of 1; the trained regressor's start is 0.07-0.3 of the mean face's
    assert from_regressor < 0.5 * from_mean, (from_regressor, from_mean)


def test_the_prediction_estimator_hands_the_prediction_on_unchanged(regressor, obs):
    estimator = PredictionEstimator(regressor_initializer(regressor))
    assert estimator.method == "regressor" and estimator.steps == 0
    calls = []
    estimate = estimator(obs, on_step=lambda *args: calls.append(args))
    predicted = regressor.predict_params(obs.image, obs.landmarks)
    assert set(estimate.params) == set(predicted)
    for group, value in predicted.items():
        assert torch.allclose(estimate.params[group], value, atol=1e-6), group
        assert not estimate.params[group].requires_grad
    assert estimate.errors == [""] * N and not estimate.failed.any()
    assert estimate.metrics == [{}] * N and estimate.scene is None and calls == []
    assert PredictionEstimator(regressor_initializer(regressor), method="regressor-v2").method == "regressor-v2"
