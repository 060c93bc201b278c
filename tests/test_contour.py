"""Sliding contour correspondence (f2p.morphable.contour) and its use by the objective and the solver."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from f2p import conventions as C
from f2p.fitting import Fitter, schedule_for
from f2p.fitting.solver import LandmarkLeastSquares
from f2p.morphable import load_model
from f2p.morphable.contour import contour_candidates
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import face_triangles, render_scene
from f2p.scene.objective import FittingObjective, dense_point_weights, slide_contour
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec

sys.path.insert(0, str(Path(__file__).parent))
from test_fitting_solver import SHAPE, SHAPE_WEIGHTS, observed, off_truth, truth_of  # noqa: E402


@pytest.fixture(scope="module")
def ict(models_dir):
    return SceneSpec(load_model("ict"), (160, 160))


@pytest.mark.parametrize("name", ["ict", "sfm", "procedural"])
def test_every_model_slides_its_cheek_points_symmetrically(models_dir, name):
    model = load_model(name)
    contour = contour_candidates(model)
    assert 0 < len(contour.landmarks) < len(C.JAW) and C.CHIN not in contour.landmarks.tolist()
    mirrored = sorted(C.IBUG68_MIRROR[i] for i in contour.landmarks.tolist())
    assert mirrored == contour.landmarks.tolist()  # the same points slide on both sides
    assert (contour.side[:len(contour.landmarks)] > 0).sum() == (contour.side[:len(contour.landmarks)] < 0).sum()
    assert contour.valid[:, 0].all()


def silhouette_scene(spec: SceneSpec, yaw: float):
    """The mean face turned by ``yaw`` (radians), centred in the crop, its face region rendered, and its
    outline points slid onto its silhouette."""
    params = spec.initial(1)
    params["pose"] = torch.tensor([[0.0, yaw, 0.0]])
    centre = render_scene(spec, params, None).landmarks2d[0].mean(0)
    params["translation"][0, :2] -= (centre - (spec.image_size[0] - 1) / 2) * params["translation"][0, 2] \
        / (spec.base_focal * params["log_focal"][0, 0].exp())
    scene = render_scene(spec, params, MeshRenderer(), face_triangles(spec.model), dense=True)
    contour = contour_candidates(spec.model)
    sliding, _ = slide_contour(spec.model, contour, params, scene.camera, scene.landmarks2d, scene.dense2d)
    return scene, contour, sliding[0]


@pytest.mark.parametrize("yaw", [0.4, -0.7])
def test_the_far_outline_points_lie_on_the_rendered_silhouette(ict, yaw):
    scene, contour, sliding = silhouette_scene(ict, yaw)
    mask = scene.render.mask[0, 0] > 0.5  # (H, W)
    far = 1.0 if yaw > 0 else -1.0  # +yaw turns the subject's left (model +x, image right) away
    rows = contour.landmarks[contour.side[:len(contour.landmarks)] == far].tolist()
    assert rows
    for row in rows:
        x, y = sliding[row].round().long().tolist()
        outward = int(far)
        assert mask[y, x - 2 * outward], f"point {row} at {x, y} is not on the face"
        assert not mask[y, x + 2 * outward], f"point {row} at {x, y} is inside the face, not on its outline"


def test_a_turned_face_moves_the_far_outline_across_the_cheek(ict):
    scene, contour, sliding = silhouette_scene(ict, 0.7)  # +yaw turns the subject's left cheek away
    fixed = scene.landmarks2d[0]
    left = contour.landmarks[contour.side[:len(contour.landmarks)] > 0]
    right = contour.landmarks[contour.side[:len(contour.landmarks)] < 0]
    assert (sliding[left, 0] - fixed[left, 0]).mean() > 4.0  # the hidden jaw line's outline is further out
    assert (sliding[right] - fixed[right]).norm(dim=-1).mean() < (sliding[left] - fixed[left]).norm(dim=-1).mean()


def test_the_solver_cost_and_gradient_match_the_sliding_objective(ict):
    truth = truth_of(ict)
    obs = observed(ict, truth, dense=True)
    params = off_truth(ict, truth)
    ict.clamp_(params)
    objective = FittingObjective(ict, sliding_contour=True)
    problem = LandmarkLeastSquares(ict, obs, params, SHAPE, SHAPE_WEIGHTS, dense_point_weights(ict.model),
                                   objective.contour)
    x = problem.pack(params).requires_grad_(True)
    cost = problem.cost(x)
    terms = objective.terms(params, render_scene(ict, params, None, dense=True), obs, set(SHAPE_WEIGHTS), set(SHAPE))
    assert torch.allclose(cost, sum(SHAPE_WEIGHTS[name] * value for name, value in terms.items()), rtol=1e-5)
    cost.sum().backward()
    gradient = 2 * problem.linearise(x.detach()).gradient.float()
    assert torch.allclose(gradient, x.grad, rtol=1e-3, atol=1e-4 * float(x.grad.abs().max()))


def test_a_visible_outline_is_fitted_better_when_it_slides(ict):
    truth = truth_of(ict)  # two faces turned by about 25 and 20 degrees, one near frontal
    exact = observed(ict, truth, dense=True)
    scene = render_scene(ict, truth, None, dense=True)
    landmarks, dense = slide_contour(ict.model, contour_candidates(ict.model), truth, scene.camera,
                                     scene.landmarks2d, scene.dense2d)
    outline = Observations(exact.image, landmarks, exact.confidence, dense=dense,
                           dense_confidence=exact.dense_confidence)  # what a detector of the visible outline sees

    def shape_error_mm(sliding: bool) -> torch.Tensor:
        fitted = Fitter(ict, MeshRenderer(), schedule_for("fast"), sliding_contour=sliding).fit(outline).params
        verts = [ict.model(**{g: p[g] for g in ict.model.groups}).verts for p in (fitted, truth)]
        return (verts[0] - verts[1])[:, ict.model.face_region].norm(dim=-1).median(1).values * 1000

    fixed, sliding = shape_error_mm(False), shape_error_mm(True)
    assert (sliding[:2] < 0.75 * fixed[:2]).all(), (fixed, sliding)
