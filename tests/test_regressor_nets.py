"""Networks of the regressor: parameter head ranges and start, encoder weights, refiner inputs and start."""

from dataclasses import replace
from urllib.error import URLError

import pytest
import torch
import torchvision

from f2p.nets import FaceRegressor, ParamHead, ResNetEncoder, UNetRefiner
from f2p.nets.param_head import BOUNDED_MARGIN
from f2p.nets.landmarks import LandmarkEncoder
from f2p.render.renderer import MeshRenderer
from f2p.scene import SceneSpec, render_scene
from regressor_support import one_thread  # noqa: F401 (autouse fixture)

S = 32


@pytest.fixture(scope="module")
def spec(procedural_model):
    return SceneSpec(procedural_model, (S, S))


def _landmarks(spec, B=2):
    params = spec.initial(B)
    params["translation"] = params["translation"] + torch.tensor([[0.01, -0.005, 0.05], [-0.01, 0.0, -0.05]])[:B]
    return render_scene(spec, params, None).landmarks2d


def test_untrained_regressor_predicts_what_fitting_starts_from(spec):
    landmarks = _landmarks(spec)
    predicted = FaceRegressor(ResNetEncoder(), spec)(torch.rand(2, 3, S, S), landmarks)
    initial = spec.initial(2, landmarks)
    assert predicted.keys() == spec.sizes().keys()
    for name, value in initial.items():
        group = spec.model.groups.get(name)
        tolerance = BOUNDED_MARGIN * 1.001 if group is not None and group.bounded else 1e-6
        assert torch.allclose(predicted[name], value, atol=tolerance), name


def test_sliders_stay_in_range_and_unbounded_groups_scale_with_the_prior(spec):
    head = ParamHead(16, spec, bottleneck=4)
    for module in head.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=10.0)
    params = head(torch.randn(64, 16) * 100, spec.initial(64))
    expression = spec.model.groups["expression"]
    assert (params["expression"] >= torch.tensor(expression.lower)).all()
    assert (params["expression"] <= torch.tensor(expression.upper)).all()
    assert params["identity"].abs().max() > 10  # not squashed
    assert isinstance(head.heads["identity"], torch.nn.Sequential) and len(head.heads["identity"]) == 2  # low rank
    assert len(head.heads["pose"]) == 1
    assert torch.equal(head.scale("identity"), torch.tensor(spec.model.groups["identity"].prior_std))


def test_landmarks_are_required_when_the_head_uses_them(spec):
    with pytest.raises(ValueError, match="landmarks"):
        FaceRegressor(ResNetEncoder(), spec)(torch.rand(2, 3, S, S))
    params = FaceRegressor(ResNetEncoder(), spec, use_landmarks=False)(torch.rand(2, 3, S, S))
    assert torch.allclose(params["translation"], spec.initial(2)["translation"])


def test_landmark_features_see_the_face_not_its_place_in_the_crop(spec):
    encoder = LandmarkEncoder(spec)
    features = encoder(_landmarks(spec))  # the same neutral face at two distances and places
    params = spec.initial(1)
    params["identity"] = params["identity"] + torch.tensor(spec.model.groups["identity"].prior_std)
    other = encoder(render_scene(spec, params, None).landmarks2d)  # another face
    moved = (features[0] - features[1]).norm()  # only perspective differs
    assert moved < 0.1 * (other[0] - features[0]).norm()


def test_encoder_weights_from_a_file_or_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    images = torch.rand(2, 3, S, S)
    a, b = ResNetEncoder(weights=str(path)).eval(), ResNetEncoder(weights=str(path)).eval()
    assert torch.equal(a(images), b(images)) and a.feature_dim == 512
    with pytest.raises(FileNotFoundError, match="weights: null"):
        ResNetEncoder(weights=str(tmp_path / "missing.pth"))

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        ResNetEncoder(weights="torchvision")


@pytest.fixture(scope="module")
def render(spec):
    with torch.no_grad():
        return render_scene(spec, spec.initial(2), MeshRenderer()).render


def test_refiner_starts_as_the_identity_and_never_paints_outside_the_render(render):
    refiner = UNetRefiner(channels=8, depth=2)
    assert torch.equal(refiner(render), render.image)
    torch.nn.init.normal_(refiner.out.weight)
    refined = refiner(render)
    outside = render.mask == 0
    assert torch.equal(refined.masked_select(outside), render.image.masked_select(outside))
    assert not torch.equal(refined, render.image)


def test_refiner_cannot_see_the_photo_and_hints_are_sparse(render):
    photo = torch.rand(2, 3, S, S, requires_grad=True)
    refiner = UNetRefiner(channels=8, depth=2)
    torch.nn.init.normal_(refiner.out.weight)
    refiner(render, photo).sum().backward()
    assert photo.grad is None  # no path from the photo to the refined portrait

    hinted = UNetRefiner(channels=8, depth=2, hint_fraction=0.05)
    torch.nn.init.normal_(hinted.out.weight)
    image = render.image.detach().requires_grad_(True)  # per-pixel dependence through the first conv only
    for module in hinted.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight)
    hinted(replace(render, image=image), photo).sum().backward()
    seen = (photo.grad.abs().sum(1) > 0).float().mean()
    assert 0.0 < seen < 0.15  # only the sampled pixels reach the refiner
    with pytest.raises(ValueError, match="photo"):
        hinted(render)


def test_refiner_checks_its_configuration(render):
    with pytest.raises(ValueError):
        UNetRefiner(channels=6)
    with pytest.raises(ValueError, match="divisible"):
        UNetRefiner(channels=8, depth=6)(render)
