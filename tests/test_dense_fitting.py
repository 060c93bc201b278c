"""Dense landmarks through the fit: the model's 468 surface points from parameters, projected by the scene, observed
in crops, and a term that pulls the fit towards them."""

from __future__ import annotations

import torch

from f2p.evaluation.geometry import vertex_errors
from f2p.fitting import Fitter, Stage
from f2p.morphable import load_model
from f2p.morphable.correspondence import dense_correspondence
from f2p.morphable.dense import dense_landmarks
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import render_scene
from f2p.scene.objective import FittingObjective
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec


def random_params(model, batch: int, scale: float = 0.7) -> dict[str, torch.Tensor]:
    params = {name: torch.randn(batch, group.size) * scale for name, group in model.groups.items()}
    for name, group in model.groups.items():
        if group.bounded:
            params[name] = group.clamp(params[name].abs())
    return params


def test_dense_landmarks_follow_the_mesh(models_dir):
    model = load_model("ict")
    params = random_params(model, 2)
    expected = dense_correspondence(model).points(model(**params).verts, model.faces)
    assert torch.allclose(dense_landmarks(model, **params), expected, atol=1e-6)


def test_the_scene_projects_dense_landmarks_like_the_mesh(models_dir):
    spec = SceneSpec(load_model("ict"), (128, 128))
    params = spec.initial(2)
    params.update(random_params(spec.model, 2))
    params["pose"] = torch.tensor([[0.0, 0.5, 0.0], [0.2, -0.3, 0.1]])
    landmark_only = render_scene(spec, params, None, dense=True)
    rendered = render_scene(spec, params, MeshRenderer(), dense=True)
    assert landmark_only.dense2d.shape == (2, 468, 2)
    assert torch.allclose(landmark_only.dense2d, rendered.dense2d, atol=1e-4)
    assert torch.allclose(landmark_only.landmarks2d, rendered.landmarks2d, atol=1e-4)  # one blend for both sets
    assert render_scene(spec, params, None).dense2d is None  # only when asked for


def observed(spec: SceneSpec, truth: dict[str, torch.Tensor]) -> Observations:
    scene = render_scene(spec, truth, None, dense=True)
    B = scene.landmarks2d.shape[0]
    return Observations(image=torch.zeros(B, 3, *spec.image_size), landmarks=scene.landmarks2d,
                        confidence=torch.ones(B, 68), dense=scene.dense2d, dense_confidence=torch.ones(B, 468))


def test_the_dense_term_is_zero_at_the_truth_and_grows_off_it(models_dir):
    spec = SceneSpec(load_model("ict"), (128, 128))
    truth = spec.initial(1)
    truth.update(random_params(spec.model, 1))
    obs = observed(spec, truth)
    objective = FittingObjective(spec)
    at_truth = objective.terms(truth, render_scene(spec, truth, None, dense=True), obs, {"dense"}, set())["dense"]
    moved = {**truth, "identity": truth["identity"] + 1.0}
    off = objective.terms(moved, render_scene(spec, moved, None, dense=True), obs, {"dense"}, set())["dense"]
    assert float(at_truth) < 1e-9 and float(off) > 1e-6


def test_without_dense_points_the_term_is_absent(models_dir):
    spec = SceneSpec(load_model("ict"), (128, 128))
    truth = spec.initial(1)
    obs = observed(spec, truth)
    plain = Observations(obs.image, obs.landmarks, obs.confidence)
    terms = FittingObjective(spec).terms(truth, render_scene(spec, truth, None, dense=True), plain,
                                         {"landmark", "dense"}, set())
    assert set(terms) == {"landmark"}


def test_dense_observations_recover_the_shape_better(models_dir):
    torch.manual_seed(3)
    spec = SceneSpec(load_model("ict"), (160, 160))
    truth = spec.initial(3)
    truth.update(random_params(spec.model, 3, scale=1.0))
    truth["pose"] = torch.tensor([[0.0, 0.4, 0.0], [0.1, -0.3, 0.0], [-0.1, 0.1, 0.05]])
    truth["translation"] = spec.translation_covering(render_scene(spec, truth, None).landmarks2d)
    obs = observed(spec, truth)
    stages = [Stage("rigid", 60, ["pose", "translation"], {"landmark": 1.0, "dense": 1.0}),
              Stage("shape", 120, ["pose", "translation", "identity", "expression"],
                    {"landmark": 1.0, "dense": 1.0, "prior": 2e-4, "bounds": 1.0})]
    fitter = Fitter(spec, MeshRenderer(), stages)

    def vertex_error(observations: Observations) -> float:
        """Median face-region error after a similarity alignment (one photo does not tell the face's size)."""
        fitted = fitter.fit(observations).params
        verts = spec.model(identity=fitted["identity"], expression=fitted["expression"]).verts
        true = spec.model(identity=truth["identity"], expression=truth["expression"]).verts
        return float(vertex_errors(verts, true, spec.model.face_region, align="similarity").median())

    sparse = vertex_error(Observations(obs.image, obs.landmarks, obs.confidence))
    dense = vertex_error(obs)
    assert dense < 0.9 * sparse  # measured: 2.95 mm with the 68 points, 2.47 mm with the dense points


def test_a_photos_dense_weight_decides_between_conflicting_dense_and_68_points(models_dir):
    """Two detectors disagree (the dense points come from another face): the photo whose dense points are worth less
    (``Observations.dense_weight``, from the measured accuracy of their detector) ends nearer its 68 points."""
    from f2p.fitting.schedule import landmark_stages

    spec = SceneSpec(load_model("ict"), (128, 128))
    torch.manual_seed(0)
    truth, other = spec.initial(1), spec.initial(1)
    truth.update(random_params(spec.model, 1))
    other.update(random_params(spec.model, 1))
    obs68, obs_dense = observed(spec, truth), observed(spec, other)
    obs = Observations(image=torch.zeros(2, 3, 128, 128), landmarks=obs68.landmarks.expand(2, -1, -1),
                       confidence=torch.ones(2, 68), dense=obs_dense.dense.expand(2, -1, -1),
                       dense_confidence=torch.ones(2, 468), dense_weight=torch.tensor([1.0, 0.1]))
    fitted = Fitter(spec, MeshRenderer(backend="torch"), landmark_stages()).fit(obs).params
    scene = render_scene(spec, fitted, None)
    errors = (scene.landmarks2d - obs.landmarks).norm(dim=-1).mean(-1)  # (2,) px from the 68 observed points
    assert errors[1] < 0.7 * errors[0]
    assert torch.equal(obs.select(torch.tensor([1])).dense_weight, torch.tensor([0.1]))


def test_dlib_placed_68_points_make_the_dense_points_worth_less():
    from f2p.perception.combined import DLIB_DENSE_WEIGHT, NAME, dense_weight

    assert dense_weight(NAME) == DLIB_DENSE_WEIGHT < 1.0
    assert dense_weight("mediapipe") == dense_weight("annotations.json") == 1.0
