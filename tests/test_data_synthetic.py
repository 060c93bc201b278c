"""Synthetic faces: deterministic items whose ground truth re-renders the image, framed like aligned photo crops."""

import pytest
import torch

from f2p.data import batch as keys
from f2p.data.synthetic import SceneSampler, SyntheticFaceDataModule, SyntheticFaces, aligned_translation
from f2p.perception.crop import crop_template, five_points
from f2p.render.renderer import MeshRenderer
from f2p.scene import SceneSpec, render_scene
from regressor_support import one_thread  # noqa: F401 (autouse fixture)

S = 48


@pytest.fixture(scope="module")
def spec(procedural_model):
    return SceneSpec(procedural_model, (S, S))


@pytest.fixture(scope="module")
def faces(spec):
    return SyntheticFaces(spec, SceneSampler(), length=6, seed=7)


def test_items_are_a_function_of_seed_and_index(spec, faces):
    a, b = faces[3], SyntheticFaces(spec, SceneSampler(), length=6, seed=7)[3]
    assert torch.equal(a[keys.IMAGE], b[keys.IMAGE]) and a[keys.NAME] == b[keys.NAME]
    batched = faces.__getitems__([1, 3])[1]
    assert torch.allclose(batched[keys.IMAGE], a[keys.IMAGE], atol=1e-5)
    assert all(torch.equal(batched[keys.PARAMS][g], a[keys.PARAMS][g]) for g in a[keys.PARAMS])
    other = SyntheticFaces(spec, SceneSampler(), length=6, seed=8)[3]
    assert not torch.equal(other[keys.PARAMS]["identity"], a[keys.PARAMS]["identity"])
    with pytest.raises(IndexError):
        faces[6]


def test_ground_truth_re_renders_the_image_and_its_landmarks(spec, faces):
    item = faces[2]
    params = {name: value[None] for name, value in item[keys.PARAMS].items()}
    scene = render_scene(spec, params, MeshRenderer())
    covered = scene.render.mask[0] > 0.5
    assert covered.float().mean() > 0.2
    assert torch.allclose(scene.render.image[0].clamp(0, 1) * covered, item[keys.IMAGE] * covered, atol=1e-5)
    assert torch.allclose(scene.landmarks2d[0], item[keys.LANDMARKS], atol=1e-4)
    assert (item[keys.FACE_MASK] * covered).sum() > 0.8 * item[keys.FACE_MASK].sum()  # skin region lies on the face
    expression = spec.model.groups["expression"]
    assert (item[keys.PARAMS]["expression"] >= torch.tensor(expression.lower)).all()
    assert (item[keys.PARAMS]["expression"] <= torch.tensor(expression.upper)).all()


def test_images_hold_a_highlight_the_parameters_cannot_explain(spec):
    plain = SyntheticFaces(spec, SceneSampler(), length=4, seed=3).__getitems__([0, 1, 2, 3])
    shiny = SyntheticFaces(spec, SceneSampler(specular_max=0.5), length=4, seed=3).__getitems__([0, 1, 2, 3])
    for a, b in zip(plain, shiny):
        assert all(torch.equal(a[keys.PARAMS][g], b[keys.PARAMS][g]) for g in a[keys.PARAMS])
        highlight = b[keys.IMAGE] - a[keys.IMAGE]
        assert highlight.min() > -1e-6  # only adds light (up to clamping at white)
    assert max(float((b[keys.IMAGE] - a[keys.IMAGE]).max()) for a, b in zip(plain, shiny)) > 0.05


def test_landmark_noise_perturbs_only_the_landmarks(spec):
    indices = list(range(4))
    exact = SyntheticFaces(spec, SceneSampler(), length=4, seed=3).__getitems__(indices)
    noisy = SyntheticFaces(spec, SceneSampler(landmark_noise=0.5), length=4, seed=3).__getitems__(indices)
    offsets = torch.stack([b[keys.LANDMARKS] - a[keys.LANDMARKS] for a, b in zip(exact, noisy)])
    assert 0.4 < float(offsets.std()) < 0.6 and abs(float(offsets.mean())) < 0.1
    for a, b in zip(exact, noisy):
        assert torch.equal(a[keys.IMAGE], b[keys.IMAGE])
        assert all(torch.equal(a[keys.PARAMS][g], b[keys.PARAMS][g]) for g in a[keys.PARAMS])


def test_neutral_face_is_framed_like_an_aligned_crop(spec):
    params = spec.initial(1)
    params["translation"] = aligned_translation(spec)[None]
    landmarks = render_scene(spec, params, None).landmarks2d
    error = (five_points(landmarks)[0] - crop_template(S)).norm(dim=-1)
    assert error.max() < 0.06 * S


def test_data_module_splits_are_disjoint_and_batched(procedural_model):
    module = SyntheticFaceDataModule("procedural", S, num_train=4, num_val=2, num_test=2, num_predict=2, batch_size=2)
    module.setup("fit")
    train, val = next(iter(module.train_dataloader())), next(iter(module.val_dataloader()))
    assert train[keys.IMAGE].shape == (2, 3, S, S) and train[keys.LANDMARKS].shape == (2, 68, 2)
    assert train[keys.PARAMS]["identity"].shape == (2, procedural_model.groups["identity"].size)
    assert train[keys.TO_PHOTO].shape == (2, 2, 3) and len(train[keys.NAME]) == 2
    assert not torch.equal(train[keys.PARAMS]["identity"], val[keys.PARAMS]["identity"])
    assert len(module.predict_dataloader().dataset) == 2
