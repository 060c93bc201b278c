"""A clip's shared identity: the keyframes' joint Levenberg-Marquardt solve (``fitting.shared_identity``)."""

from __future__ import annotations

import pytest
import torch

from f2p.evaluation.geometry import vertex_errors
from f2p.fitting import Fitter
from f2p.fitting.schedule import landmark_stages
from f2p.fitting.shared_identity import fit_shared_identity
from f2p.morphable import load_model
from f2p.scene.compose import render_scene
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec

VIEWS = 6


@pytest.fixture(scope="module")
def views(models_dir):
    """One random ICT face seen ``VIEWS`` times (yaw -30..30 degrees, its own expression each), its projected 68
    and dense landmarks with 1 px noise in 224 px crops; the views' independent fits."""
    g = torch.Generator().manual_seed(5)
    spec = SceneSpec(load_model("ict"), (224, 224))
    truth = spec.initial(VIEWS)
    truth["identity"] = (torch.randn(1, 100, generator=g) * 1.2).expand(VIEWS, -1).clone()
    truth["expression"] = (torch.rand(VIEWS, 53, generator=g) * 0.3).clamp(0, 1)
    truth["pose"] = torch.stack([torch.zeros(VIEWS), torch.linspace(-0.5, 0.5, VIEWS), torch.zeros(VIEWS)], 1)
    scene = render_scene(spec, truth, None, dense=True)
    obs = Observations(image=torch.zeros(VIEWS, 3, 224, 224),
                       landmarks=scene.landmarks2d + torch.randn(VIEWS, 68, 2, generator=g),
                       confidence=torch.ones(VIEWS, 68),
                       dense=scene.dense2d + torch.randn(VIEWS, 468, 2, generator=g),
                       dense_confidence=torch.ones(VIEWS, 468))
    independent = Fitter(spec, None, landmark_stages()).fit(obs)
    return spec, truth, obs, independent


def identity_mm(spec, identity, truth) -> float:
    """Face-region median vertex error (mm, similarity-aligned) of a (1, K) identity at neutral expression."""
    model = spec.model
    zeros = model.zero_params(1)
    fitted = model(**{**zeros, "identity": identity}).verts
    true = model(**{**zeros, "identity": truth["identity"][:1]}).verts
    return float(vertex_errors(fitted, true, model.face_region, "similarity").median()) * 1000


def test_joint_identity_beats_the_mean_of_independent_fits(views):
    spec, truth, obs, independent = views
    shape = landmark_stages()[-1]
    joint = fit_shared_identity(spec, obs, independent.params, shape, "identity", max_iterations=10)
    identity = joint.params["identity"]
    assert torch.equal(identity, identity[:1].expand(VIEWS, -1))  # one identity for every view
    assert joint.joint_cost[1] < joint.joint_cost[0]
    mean_mm = identity_mm(spec, independent.params["identity"].mean(0, keepdim=True), truth)
    joint_mm = identity_mm(spec, identity[:1], truth)
    assert joint_mm < 0.85 * mean_mm, (joint_mm, mean_mm)
    lower, upper = spec.model.groups["expression"].lower, spec.model.groups["expression"].upper
    expression = joint.params["expression"]
    inside = (expression >= torch.as_tensor(lower) - 1e-6) & (expression <= torch.as_tensor(upper) + 1e-6)
    assert bool(inside.all())


def test_joint_solve_needs_a_landmark_stage_that_fits_the_identity(views):
    spec, _, obs, independent = views
    rigid = landmark_stages()[0]
    with pytest.raises(ValueError, match="needs an 'lm' stage that trains 'identity'"):
        fit_shared_identity(spec, obs, independent.params, rigid, "identity", max_iterations=3)
