"""Scene pieces the fit relies on at every stage: ``Observations.rescaled`` (coarse-to-fine stages),
``SceneSpec.translation_covering`` (where a fit from the mean face starts) and ``jaw_weights`` (turned heads)."""

import pytest
import torch

from f2p import conventions as C
from f2p.morphable.registry import load_model
from f2p.render.rotations import euler_to_axis_angle
from f2p.scene import SceneSpec, render_scene
from f2p.scene.objective import jaw_weights
from f2p.scene.observations import Observations


def observations(B=2, H=8, W=12, mask=True):
    g = torch.Generator().manual_seed(3)
    return Observations(image=torch.rand(B, 3, H, W, generator=g),
                        landmarks=torch.rand(B, 68, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0]),
                        confidence=torch.rand(B, 68, generator=g),
                        face_mask=torch.rand(B, 1, H, W, generator=g) if mask else None,
                        embedding=torch.rand(B, 5, generator=g))


def block_mean(x, k=2):
    """(B, C, H, W) -> (B, C, H / k, W / k) mean of each k x k block (the area filter, computed independently)."""
    B, Ch, H, W = x.shape
    return x.reshape(B, Ch, H // k, k, W // k, k).mean(dim=(3, 5))


# ---------------------------------------------------------------------------------------------- Observations.rescaled
def test_half_scale_halves_images_and_area_averages_them():
    obs = observations()
    half = obs.rescaled(0.5)
    assert half.image.shape == (2, 3, 4, 6) and half.image_size == (4, 6) and half.face_mask.shape == (2, 1, 4, 6)
    assert torch.allclose(half.image, block_mean(obs.image), atol=1e-6)
    assert torch.allclose(half.face_mask, block_mean(obs.face_mask), atol=1e-6)
    assert torch.equal(half.confidence, obs.confidence) and torch.equal(half.embedding, obs.embedding)
    # at a quarter each pixel averages a 4 x 4 block (a bilinear filter, equal to the area filter at one half, is not)
    quarter = obs.rescaled(0.25)
    assert quarter.image_size == (2, 3)
    assert torch.allclose(quarter.image, block_mean(obs.image, 4), atol=1e-6)
    assert torch.allclose(quarter.face_mask, block_mean(obs.face_mask, 4), atol=1e-6)


def test_half_scale_maps_landmarks_with_the_pixel_centre_rule():
    obs = observations()
    before = obs.landmarks.clone()
    half = obs.rescaled(0.5)
    assert torch.allclose(half.landmarks, (before + 0.5) * 0.5 - 0.5, atol=1e-6)
    assert torch.equal(obs.landmarks, before)  # the full-resolution observations are left as they were


def test_a_landmark_on_a_bright_block_stays_on_its_pixel():
    # a 2 x 2 bright block at rows 2-3, columns 6-7: its centre (6.5, 2.5) is the centre of pixel (3, 1) at half size
    image = torch.zeros(1, 3, 8, 12)
    image[..., 2:4, 6:8] = 1.0
    obs = Observations(image, torch.tensor([[[6.5, 2.5]]]).expand(1, 68, 2).clone(), torch.ones(1, 68))
    half = obs.rescaled(0.5)
    row, col = divmod(int(half.image[0, 0].argmax()), half.image.shape[-1])
    assert half.image[0, 0, row, col] == 1.0
    assert torch.allclose(half.landmarks[0, 0], torch.tensor([float(col), float(row)]))
    assert half.face_mask is None


def test_image_edges_map_to_image_edges_when_the_axes_round_differently():
    # 6 x 9 at 0.5 -> 3 x round(4.5) = 3 x 4: x scales by 4/9, y by 1/2; the outer pixel edges stay the outer edges
    obs = observations(B=1, H=6, W=9)
    edges = torch.tensor([[-0.5, -0.5], [8.5, 5.5]])
    obs = Observations(obs.image, torch.cat([edges, obs.landmarks[0, 2:]])[None], obs.confidence, obs.face_mask)
    half = obs.rescaled(0.5)
    assert half.image_size == (3, 4)
    assert torch.allclose(half.landmarks[0, :2], torch.tensor([[-0.5, -0.5], [3.5, 2.5]]), atol=1e-6)


def test_scale_one_returns_the_same_observations():
    obs = observations()
    assert obs.rescaled(1.0) is obs


# ------------------------------------------------------------------------------------ SceneSpec.translation_covering
@pytest.fixture(params=["procedural", "ict"])
def face_model(request):
    if request.param == "ict":
        request.getfixturevalue("models_dir")  # skips with a reason where the shared models are absent
    return load_model(request.param)


def test_translation_covering_recovers_where_the_neutral_face_is(face_model):
    spec = SceneSpec(face_model, (120, 160))  # not square: x and y use their own image centre
    truth = torch.tensor([[0.02, -0.01, 0.8], [-0.03, 0.02, 1.5], [0.0, 0.0, 1.0]])
    params = spec.initial(3)
    params["translation"] = truth
    with torch.no_grad():
        landmarks = render_scene(spec, params, None).landmarks2d  # neutral frontal face at ``truth``
        found = spec.translation_covering(landmarks)
    assert found.shape == (3, 3)
    assert (found[:, :2] - truth[:, :2]).abs().max() < 0.002  # metres
    assert ((found[:, 2] / truth[:, 2]) - 1).abs().max() < 0.03
    # and the mean face placed there by ``initial`` covers the landmarks
    with torch.no_grad():
        placed = render_scene(spec, spec.initial(3, landmarks), None).landmarks2d
    face = (landmarks.amax(1) - landmarks.amin(1)).norm(dim=-1)  # (B,) bounding-box diagonal in pixels
    assert ((placed - landmarks).norm(dim=-1).amax(1) < 0.03 * face).all()


# ------------------------------------------------------------------------------------------------------ jaw_weights
RIGHT_JAW, CHIN, LEFT_JAW = list(C.JAW[:8]), C.JAW[8], list(C.JAW[9:])


def yaw(*degrees: float) -> torch.Tensor:
    return euler_to_axis_angle(torch.tensor([[d, 0.0, 0.0] for d in degrees]))


def test_a_frontal_face_weighs_every_landmark_fully():
    assert torch.equal(jaw_weights(torch.zeros(3, 3)), torch.ones(3, 68))


@pytest.mark.parametrize("degrees", [60.0, -60.0])
def test_the_jaw_side_turning_away_fades(procedural_model, degrees):
    spec = SceneSpec(procedural_model, (96, 96))
    params = spec.initial(1)
    params["pose"] = yaw(degrees)
    weights = jaw_weights(params["pose"])[0]
    # which side turns away, from the geometry: its jaw landmarks are further from the camera
    with torch.no_grad():
        scene = render_scene(spec, params, None)
        depth = scene.camera.to_camera(procedural_model.landmarks(**procedural_model.zero_params(1)))[0, :, 2]
    away, facing = (LEFT_JAW, RIGHT_JAW) if depth[LEFT_JAW].mean() > depth[RIGHT_JAW].mean() else (RIGHT_JAW, LEFT_JAW)
    assert (weights[away] < 1).all() and (weights[away] >= 0).all()
    assert (weights[facing] == 1).all()
    others = [i for i in range(68) if i not in away]
    assert (weights[others] == 1).all() and weights[CHIN] == 1


def test_the_far_side_fades_further_as_the_head_turns():
    weights = jaw_weights(yaw(30.0, 40.0, 90.0))[:, LEFT_JAW].mean(1)  # +yaw turns the left cheek away
    assert 1 > weights[0] > weights[1] > weights[2]
    assert weights[2] == 0  # a profile's far jaw is not there to be matched


def test_jaw_weights_carry_no_gradient():
    pose = yaw(60.0).requires_grad_(True)
    weights = jaw_weights(pose)
    assert not weights.requires_grad and weights.grad_fn is None
