import math

import pytest
import torch

from f2p.fitting import Fitter, Stage, default_schedule
from f2p.perception.masks import face_region_mask
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import axis_angle_to_euler
from f2p.scene import SceneSpec, render_scene
from f2p.scene.observations import Observations


def synthetic_batch(model, spec, renderer, seed=0, shape=True):
    generator = torch.Generator().manual_seed(seed)
    B = 3
    gt = spec.initial(B)
    if shape:
        gt["identity"] = torch.randn(B, model.groups["identity"].size, generator=generator)
        gt["expression"] = torch.rand(B, model.groups["expression"].size, generator=generator) * 0.5
    gt["pose"] = torch.tensor([[0.05, 0.35, 0.0], [-0.1, -0.3, 0.05], [0.1, 0.0, -0.1]])
    gt["translation"] = torch.tensor([[0.01, -0.005, 0.95], [-0.01, 0.0, 1.05], [0.0, 0.01, 1.0]])
    with torch.no_grad():
        scene = render_scene(spec, gt, renderer)
    H, W = spec.image_size
    obs = Observations(image=scene.render.image, landmarks=scene.landmarks2d, confidence=torch.ones(B, 68),
                       face_mask=face_region_mask(scene.landmarks2d, H, W, softness=1.5))
    return gt, obs


@pytest.fixture(scope="module")
def setup(procedural_model):
    spec = SceneSpec(procedural_model, (96, 96))
    renderer = MeshRenderer(backend="torch")
    return procedural_model, spec, renderer


def test_rigid_stage_recovers_head_pose_from_landmarks(setup):
    model, spec, renderer = setup
    gt, obs = synthetic_batch(model, spec, renderer, shape=False)
    result = Fitter(spec, renderer, [Stage("rigid", 300, ["pose", "translation"])]).fit(obs)
    angles_gt = axis_angle_to_euler(gt["pose"])
    angles_fit = axis_angle_to_euler(result.params["pose"])
    assert (angles_fit - angles_gt).abs().max() < 0.5  # degrees
    assert not result.failed.any()


def test_shape_stage_explains_the_landmarks(setup):
    model, spec, renderer = setup
    gt, obs = synthetic_batch(model, spec, renderer)
    stages = [Stage("rigid", 60, ["pose", "translation"]),
              Stage("shape", 100, ["pose", "translation", "identity", "expression"], {"landmark": 1.0, "prior": 1e-5})]
    rigid = Fitter(spec, renderer, stages[:1]).fit(obs).losses["landmark"]
    shaped = Fitter(spec, renderer, stages).fit(obs).losses["landmark"]
    assert (shaped < 0.1 * rigid).all()


def test_photometric_stage_lowers_the_image_error(setup):
    model, spec, renderer = setup
    gt, obs = synthetic_batch(model, spec, renderer, seed=1)
    landmarks_only = default_schedule(0.5)[:2]
    before = Fitter(spec, renderer, landmarks_only).fit(obs).losses["photometric"]
    after = Fitter(spec, renderer, default_schedule(0.5)).fit(obs).losses["photometric"]
    assert (after < 0.7 * before).all()


def test_a_fit_renders_its_final_scene_unless_nothing_asks_for_a_render(setup):
    model, spec, renderer = setup
    gt, obs = synthetic_batch(model, spec, renderer, seed=2)
    landmarks_only = [Stage("rigid", 5, ["pose", "translation"], solver="lm")]
    rendered = Fitter(spec, renderer, landmarks_only).fit(obs)
    bare = Fitter(spec, renderer, landmarks_only, final_render=False).fit(obs)
    assert rendered.scene.render is not None and "photometric" in rendered.losses
    assert bare.scene.render is None and "photometric" not in bare.losses
    assert torch.equal(bare.params["pose"], rendered.params["pose"])  # the same fit, only not rendered at the end
    shading = landmarks_only + [Stage("colour", 2, ["sh"], {"photometric": 1.0})]
    assert Fitter(spec, renderer, shading, final_render=False).fit(obs).scene.render is not None


def test_a_diverging_photo_is_rolled_back_and_reported_alone(setup):
    model, spec, renderer = setup
    gt, obs = synthetic_batch(model, spec, renderer)
    landmarks = obs.landmarks.clone()
    landmarks[1, 5] = math.nan  # photo 1 can never produce a finite loss
    bad = Observations(obs.image, landmarks, obs.confidence, obs.face_mask)
    stages = [Stage("rigid", 30, ["pose", "translation"])]
    result = Fitter(spec, renderer, stages).fit(bad)
    assert result.failed.tolist() == [False, True, False]
    assert result.retries[1] > 0 and result.retries[0] == 0
    assert torch.isfinite(result.params["pose"]).all()
    alone = Fitter(spec, renderer, stages).fit(obs.select(torch.tensor([0, 2])))
    assert torch.allclose(result.losses["landmark"][[0, 2]], alone.losses["landmark"], rtol=1e-4)


def test_stage_rejects_unknown_loss_terms():
    with pytest.raises(ValueError, match="unknown loss terms"):
        Stage("x", 1, ["pose"], {"landmarks": 1.0})
