"""The Levenberg-Marquardt landmark solver (f2p.fitting.solver), its stage kind and the quality levels."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacfwd

from f2p.evaluation.geometry import vertex_errors
from f2p.fitting import QUALITIES, Fitter, Stage, default_schedule, schedule_for
from f2p.fitting.solver import LandmarkLeastSquares
from f2p.morphable import load_model
from f2p.morphable.base import MeshOutput, MorphableModel
from f2p.morphable.contour import contour_candidates
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import axis_angle_to_euler
from f2p.scene.compose import render_scene
from f2p.scene.objective import FittingObjective, dense_point_weights, model_slider_pairs
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec

SHAPE = ["pose", "translation", "identity", "expression"]
SHAPE_WEIGHTS = {"landmark": 1.0, "dense": 1.0, "prior": 2e-4, "bounds": 1.0}


def truth_of(spec: SceneSpec, seed: int = 0, batch: int = 3) -> dict[str, torch.Tensor]:
    """Random identity, expression (inside the bounds) and pose, placed where the crop puts a face."""
    generator = torch.Generator().manual_seed(seed)
    model = spec.model
    truth = spec.initial(batch)
    truth["identity"] = torch.randn(batch, model.groups["identity"].size, generator=generator)
    expression = model.groups["expression"]
    truth["expression"] = expression.clamp(torch.rand(batch, expression.size, generator=generator) * 0.6)
    truth["pose"] = torch.tensor([[0.05, 0.45, 0.0], [-0.15, -0.35, 0.05], [0.1, 0.1, -0.1]])[:batch]
    truth["translation"] = spec.translation_covering(render_scene(spec, truth, None).landmarks2d)
    return truth


def observed(spec: SceneSpec, truth: dict[str, torch.Tensor], dense: bool = False) -> Observations:
    """Exact landmarks (and dense landmarks) of ``truth``; no image is needed by the landmark stages."""
    scene = render_scene(spec, truth, None, dense=dense)
    B = scene.landmarks2d.shape[0]
    return Observations(image=torch.zeros(B, 3, *spec.image_size), landmarks=scene.landmarks2d,
                        confidence=torch.ones(B, 68), dense=scene.dense2d,
                        dense_confidence=torch.ones(B, 468) if dense else None)


def lm_stages(shape_steps: int = 30, prior: float = 1e-9) -> list[Stage]:
    return [Stage("rigid", 20, ["pose", "translation"], {"landmark": 1.0, "dense": 1.0}, solver="lm"),
            Stage("shape", shape_steps, SHAPE, SHAPE_WEIGHTS | {"prior": prior}, solver="lm")]


@pytest.fixture(scope="module")
def procedural(procedural_model):
    return SceneSpec(procedural_model, (128, 128))


@pytest.fixture(scope="module")
def ict(models_dir):
    return SceneSpec(load_model("ict"), (160, 160))


def off_truth(spec: SceneSpec, truth: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameters between the mean face and ``truth``, with expression sliders pushed outside their bounds."""
    params = {name: value.clone() for name, value in truth.items()}
    params["identity"] = 0.3 * truth["identity"]
    params["expression"] = truth["expression"] * 2.0 - 0.3
    params["pose"] = truth["pose"] * 0.5
    return params


def weighted_stage_loss(spec: SceneSpec, params: dict[str, torch.Tensor], obs: Observations, stage: Stage
                        ) -> torch.Tensor:
    """(B,) the Adam stage's weighted loss (``Fitter.total`` of ``FittingObjective.terms``)."""
    scene = render_scene(spec, params, None, dense=obs.dense is not None)
    terms = FittingObjective(spec).terms(params, scene, obs, set(stage.weights), set(stage.groups))
    return sum(stage.weights[name] * value for name, value in terms.items())


def assert_cost_is_the_stage_loss(spec: SceneSpec, obs: Observations, params: dict[str, torch.Tensor]) -> None:
    stage = Stage("shape", 1, SHAPE, SHAPE_WEIGHTS, solver="lm")
    spec.clamp_(params)  # inside the bounds, where the bound penalty is zero
    dense_weights = None if obs.dense is None else dense_point_weights(spec.model)
    problem = LandmarkLeastSquares(spec, obs, params, SHAPE, stage.weights, dense_weights)
    x = problem.pack(params).requires_grad_(True)
    cost = problem.cost(x)
    expected = weighted_stage_loss(spec, params, obs, stage)
    assert torch.allclose(cost, expected, rtol=1e-5, atol=0)
    cost.sum().backward()  # the Gauss-Newton gradient J^T r is half the cost's gradient
    gradient = 2 * problem.linearise(x.detach()).gradient.float()
    assert torch.allclose(gradient, x.grad, rtol=1e-3, atol=1e-4 * float(x.grad.abs().max()))


def test_the_sum_of_squares_is_the_stage_loss(procedural):
    truth = truth_of(procedural)
    obs = observed(procedural, truth)
    assert_cost_is_the_stage_loss(procedural, obs, off_truth(procedural, truth))


def test_the_sum_of_squares_is_the_stage_loss_with_robust_dense_points(ict):
    truth = truth_of(ict)
    obs = observed(ict, truth, dense=True)
    dense = obs.dense.clone()
    dense[:, :40] += 25.0  # outliers far in the Geman-McClure tail
    assert_cost_is_the_stage_loss(ict, Observations(obs.image, obs.landmarks, obs.confidence, dense=dense,
                                                    dense_confidence=obs.dense_confidence), off_truth(ict, truth))


class OpaqueModel(MorphableModel):
    """A linear model seen through the generic interface only (as FLAME is): the solver differentiates it
    with jacfwd instead of using its point bases."""

    def __init__(self, inner: MorphableModel) -> None:
        super().__init__("opaque", tuple(inner.groups.values()))
        self.inner = inner
        for name in ("faces", "face_region", "landmark_confidence"):
            self.register_buffer(name, getattr(inner, name), persistent=False)

    def forward(self, **params: torch.Tensor) -> MeshOutput:
        return self.inner(**params)


def test_a_model_without_point_bases_gets_the_same_gauss_newton_model(procedural):
    truth = truth_of(procedural, seed=5)
    obs = observed(procedural, truth)
    params = off_truth(procedural, truth)
    procedural.clamp_(params)
    opaque = SceneSpec(OpaqueModel(procedural.model), procedural.image_size)
    assert_cost_is_the_stage_loss(opaque, obs, {name: value.clone() for name, value in params.items()})
    models = [LandmarkLeastSquares(spec, obs, params, SHAPE, SHAPE_WEIGHTS) for spec in (procedural, opaque)]
    assert models[0].linear and not models[1].linear  # the two Jacobian paths
    linear, generic = (problem.linearise(problem.pack(params)) for problem in models)
    assert torch.allclose(linear.hessian, generic.hessian, rtol=1e-4, atol=1e-6 * float(generic.hessian.abs().max()))
    assert torch.allclose(linear.gradient, generic.gradient, rtol=1e-4,
                          atol=1e-6 * float(generic.gradient.abs().max()))


def test_lm_recovers_pose_identity_and_expression_from_exact_landmarks(procedural):
    truth = truth_of(procedural, seed=1)
    obs = observed(procedural, truth)
    start = procedural.initial(3, obs.landmarks)
    result = Fitter(procedural, MeshRenderer(backend="torch"), lm_stages()).fit(obs)
    fitted = result.params
    assert not result.failed.any()
    assert (result.iterations["shape"] <= 30).all() and (result.iterations["shape"] > 1).all()
    assert (axis_angle_to_euler(fitted["pose"]) - axis_angle_to_euler(truth["pose"])).abs().max() < 0.2  # degrees
    for group in ("identity", "expression"):
        before = (start[group] - truth[group]).norm(dim=1)
        after = (fitted[group] - truth[group]).norm(dim=1)
        assert (after < 0.05 * before).all(), group


def test_lm_recovers_the_shape_from_exact_dense_landmarks(ict):
    truth = truth_of(ict, seed=2)
    obs = observed(ict, truth, dense=True)
    fitted = Fitter(ict, MeshRenderer(), lm_stages(shape_steps=40)).fit(obs).params
    start = ict.initial(3, obs.landmarks)

    def similarity_error(params: dict[str, torch.Tensor]) -> torch.Tensor:
        verts = ict.model(identity=params["identity"], expression=params["expression"]).verts
        true = ict.model(identity=truth["identity"], expression=truth["expression"]).verts
        return vertex_errors(verts, true, ict.model.face_region, align="similarity").median(dim=1).values * 1000

    before, after = similarity_error(start), similarity_error(fitted)
    assert (before > 3.0).all() and (after < 0.05).all()  # mm; measured 4.4-5.0 mm -> 0.0003 mm


def test_bounded_sliders_stay_in_their_bounds(procedural):
    truth = truth_of(procedural, seed=3)
    group = procedural.model.groups["expression"]
    lower, upper = torch.tensor(group.lower), torch.tensor(group.upper)
    truth["expression"][:, 0] = upper[0] + 0.5  # landmarks that only a slider past its bound explains
    obs = observed(procedural, truth)
    start = {**procedural.initial(3, obs.landmarks), "expression": torch.full((3, group.size), 2.0)}
    seen: list[float] = []
    stages = [Stage("shape", 25, SHAPE, SHAPE_WEIGHTS | {"prior": 1e-9}, solver="lm")]
    result = Fitter(procedural, MeshRenderer(backend="torch"), stages).fit(
        obs, init=start, on_step=lambda stage, step, loss: seen.append(loss))
    expression = result.params["expression"]
    assert ((expression >= lower) & (expression <= upper)).all()
    assert torch.allclose(expression[:, 0], upper[0].expand(3))  # held at the bound it pushes against
    assert 1 < len(seen) <= 25 and seen[-1] < 0.1 * seen[0]  # one callback per iteration, the cost going down


def test_a_photo_with_nan_landmarks_fails_alone(procedural):
    truth = truth_of(procedural, seed=4)
    obs = observed(procedural, truth)
    landmarks = obs.landmarks.clone()
    landmarks[1, 5] = math.nan
    bad = Observations(obs.image, landmarks, obs.confidence)
    fitter = Fitter(procedural, MeshRenderer(backend="torch"), lm_stages())
    result = fitter.fit(bad)
    assert result.failed.tolist() == [False, True, False]
    assert result.iterations["rigid"][1] == 0 and (result.iterations["rigid"][[0, 2]] > 0).all()
    assert torch.isfinite(result.params["pose"]).all()
    alone = fitter.fit(obs.select(torch.tensor([0, 2])))
    assert torch.allclose(result.losses["landmark"][[0, 2]], alone.losses["landmark"], rtol=1e-4, atol=1e-12)
    assert (alone.losses["landmark"] < 1e-8).all()


@pytest.mark.parametrize("quality", QUALITIES)
def test_each_quality_has_a_valid_schedule(procedural, quality):
    stages = schedule_for(quality, steps_scale=0.5)
    Fitter(procedural, MeshRenderer(backend="torch"), stages)  # refuses unknown groups
    assert stages and all(stage.steps >= 1 for stage in stages)
    kinds = [stage.solver for stage in stages]
    assert kinds[:2] == (["adam", "adam"] if quality == "best" else ["lm", "lm"])
    assert (set(kinds) == {"lm"}) == (quality == "fast")


def test_best_is_the_default_schedule():
    assert schedule_for("best", 0.5) == default_schedule(0.5)


def test_an_unknown_quality_or_solver_is_refused():
    with pytest.raises(ValueError, match="unknown fitting quality 'fastest'"):
        schedule_for("fastest")
    with pytest.raises(ValueError, match="unknown solver"):
        Stage("rigid", 10, ["pose"], solver="newton")


@pytest.mark.parametrize("weights, groups", [({"landmark": 1.0, "photometric": 0.1}, ["pose"]),
                                             ({"landmark": 1.0}, ["pose", "sh"])])
def test_an_lm_stage_refuses_terms_and_groups_it_cannot_fit(weights, groups):
    with pytest.raises(ValueError, match="'lm' solver fits the landmark terms"):
        Stage("x", 10, groups, weights, solver="lm")


def jacobian_problem(spec: SceneSpec, weights: dict[str, float]) -> tuple[LandmarkLeastSquares, torch.Tensor]:
    """A random shape problem of 3 photos with a sliding contour and a trainable focal length, at a point off the
    truth: one photo's pose in Rodrigues' small-angle branch, opposing slider pairs tied (on and off their
    lower bound)."""
    truth = truth_of(spec, seed=6)
    obs = observed(spec, truth, dense="dense" in weights)
    params = off_truth(spec, truth)
    spec.clamp_(params)
    params["pose"][2] = torch.tensor([3e-4, -2e-4, 1e-4])
    params["log_focal"] = torch.tensor([[0.1], [-0.05], [0.0]])
    opposing = model_slider_pairs(spec.model)["expression"].opposing
    params["expression"][0, opposing[:, 1]] = params["expression"][0, opposing[:, 0]]
    params["expression"][1, opposing.flatten()] = 0.0
    dense_weights = dense_point_weights(spec.model) if "dense" in weights else None
    problem = LandmarkLeastSquares(spec, obs, params, SHAPE + ["log_focal"], weights, dense_weights,
                                   contour_candidates(spec.model))
    return problem, problem.pack(params)


def test_the_gauss_newton_model_is_jacfwds_of_the_residuals(ict):
    problem, x = jacobian_problem(ict, {"landmark": 1.0, "prior": 1e-3, "symmetry": 0.1})
    model = problem.linearise(x)  # (chooses the silhouette at x, which the residuals then keep)
    # a shift shared by the photos, which do not interact, gives each photo's own (R, P) Jacobian
    J = jacfwd(lambda shift: problem.residuals(x + shift))(torch.zeros(problem.size))  # (B, R, P)
    r = problem.residuals(x)
    hessian = (J.transpose(1, 2) @ J).double()
    gradient = (J.transpose(1, 2) @ r[..., None])[..., 0].double()
    assert torch.allclose(model.hessian, hessian, rtol=1e-4, atol=1e-6 * float(hessian.abs().max()))
    assert torch.allclose(model.gradient, gradient, rtol=1e-4, atol=1e-6 * float(gradient.abs().max()))


def test_the_dense_points_jacobian_is_jacfwds_of_their_errors(ict):
    problem, x = jacobian_problem(ict, {"landmark": 1.0, "dense": 1.0})
    rows = torch.arange(3)

    def errors(shift: torch.Tensor) -> torch.Tensor:
        _, points, camera = problem._scene(x + shift, rows)
        return problem._errors(camera.project(points), rows)

    value, J = problem._error_jacobian(x, rows)  # (B, 68 + 468, 2), (B, 68 + 468, 2, P)
    expected = jacfwd(errors)(torch.zeros(problem.size))
    assert torch.equal(value, errors(torch.zeros(problem.size)))
    assert torch.allclose(J, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))
