"""One identity for several views of a face: a joint Levenberg-Marquardt solve over the views' landmarks.

The views (keyframes of a clip) are B photos of one person: each has its own pose, translation and expression
(``x_b``, the per-view groups), all share one identity ``s``. The joint cost is a landmark stage's
(``LandmarkLeastSquares``) summed over the views with the identity's prior counted once:

    C(s, x_1..x_B) = sum_b cost_b(s, x_b) - (B - 1) |p_s * s|^2,

``p_s`` the identity's prior residual per unit (``LandmarkLeastSquares.prior``): the MAP estimate of one face seen
B times, where a mean of B single-view fits shrinks every view's identity towards the mean face under the full
prior and averages views that each explain their own landmark noise with the shape.

Each iteration linearises every view (``LandmarkLeastSquares.linearise``: its (P, P) Gauss-Newton matrix and
gradient with the identity's columns first), assembles the joint system, whose matrix is block-arrow shaped (the
identity block summed over the views, one block per view, coupled only through the identity), and solves it by
the Schur complement on the identity: per view ``C_b^-1`` (P - K, P - K), then one (K, K) system. Damping is
Marquardt's (``mu diag``) with Nielsen's rule on the joint cost, as in ``fitting.solver.levenberg_marquardt``;
bounded per-view sliders at a bound that the gradient pushes outwards are pinned for the step and every trial is
projected into the bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.fitting.schedule import Stage
from f2p.fitting.solver import (DIAGONAL_FLOOR, INITIAL_DAMPING, MAX_DAMPING, RELATIVE_TOLERANCE,
                                LandmarkLeastSquares)
from f2p.morphable.contour import ContourCandidates
from f2p.scene.objective import dense_point_weights
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec


@dataclass(frozen=True)
class SharedFit:
    """Outcome of ``fit_shared_identity`` for B views.

    Attributes:
        params: {group: (B, K)} every view's parameters; the shared group's rows are all the joint identity.
        cost: (B,) each view's landmark-stage cost at the end, its identity prior included.
        joint_cost: the joint cost C at the start and at the end (module docstring).
        iterations: linear solves made.
    """

    params: dict[str, Tensor]
    cost: Tensor
    joint_cost: tuple[float, float]
    iterations: int


def fit_shared_identity(spec: SceneSpec, obs: Observations, params: dict[str, Tensor], stage: Stage,
                        shared: str, max_iterations: int, contour: ContourCandidates | None = None) -> SharedFit:
    """Solve one ``shared`` group for all views of ``obs`` jointly with each view's own groups of ``stage``.

    Args:
        spec: the scene (its image size is the observations').
        obs: the B views' observations.
        params: {group: (B, K)} starting parameters (e.g. independent fits of the views); the shared group starts
            at its mean over the views.
        stage: an ``lm`` landmark stage: its weights and trainable groups (which must include ``shared``).
        shared: the group the views share (``identity``).
        max_iterations: linear solves at most.
        contour: the model's ``contour_candidates`` when the outline points slide along the silhouette (as in the
            views' own fits, ``Fitter(sliding_contour=True)``), else None for fixed points.

    Raises:
        ValueError: ``shared`` is not one of the stage's groups, or the stage is not a Levenberg-Marquardt one.
    """
    if stage.solver != "lm" or shared not in stage.groups:
        raise ValueError(f"the joint solve needs an 'lm' stage that trains {shared!r}; stage {stage.name!r} is "
                         f"{stage.solver!r} with groups {stage.groups}")
    B = obs.batch_size
    groups = [shared] + [g for g in stage.groups if g in params and g != shared]
    start = {**params, shared: params[shared].mean(0, keepdim=True).expand(B, -1)}
    uses_dense = obs.dense is not None and stage.weights.get("dense", 0.0) > 0
    problem = LandmarkLeastSquares(spec, obs, start, groups, stage.weights,
                                   dense_point_weights(spec.model) if uses_dense else None, contour)
    K = params[shared].shape[1]
    prior_sq = problem.prior[:K].double() ** 2  # (K,) the identity's prior, counted B times by the views' costs

    def total(views: Tensor, x: Tensor) -> Tensor:
        return views.double().sum() - (B - 1) * (prior_sq * x[0, :K].double() ** 2).sum()

    def joint(x: Tensor) -> tuple[Tensor, Tensor]:
        views = problem.cost(x)
        return views, total(views, x)

    x = problem.project(problem.pack(start))
    views, cost = joint(x)
    first = float(cost)
    mu, nu, iterations = INITIAL_DAMPING, 2.0, 0
    model = None
    while iterations < max_iterations and mu < MAX_DAMPING and math.isfinite(float(cost)):
        if model is None:
            model = problem.linearise(x)
            if model.cost is not None:  # a sliding contour chose its silhouette vertices again at x
                views, cost = model.cost, total(model.cost, x)
        delta, predicted = _joint_step(model.hessian, model.gradient, prior_sq, mu, x.double(),
                                       problem.lower.double(), problem.upper.double())
        iterations += 1
        trial = problem.project(x + delta.to(x.dtype))
        trial_views, trial_cost = joint(trial)
        actual = float(cost - trial_cost)
        if math.isfinite(actual) and actual > 0 and predicted > 0:
            gain = actual / predicted
            mu, nu = mu * max(1 / 3, 1 - (2 * gain - 1) ** 3), 2.0
            x, views, cost, model = trial, trial_views, trial_cost, None
            if actual <= RELATIVE_TOLERANCE * abs(float(cost) + actual):
                break
        else:
            mu, nu = mu * nu, nu * 2
        if math.isfinite(predicted) and predicted <= RELATIVE_TOLERANCE * abs(float(cost)):
            break
    return SharedFit({**params, **problem.unpack(x)}, views, (first, float(cost)), iterations)


def _joint_step(hessian: Tensor, gradient: Tensor, prior_sq: Tensor, mu: float, x: Tensor, lower: Tensor,
                upper: Tensor) -> tuple[Tensor, float]:
    """The damped Gauss-Newton step of the joint problem (module docstring), by the Schur complement.

    Args:
        hessian: (B, P, P) each view's ``J^T J`` (identity columns first, K of them); gradient: (B, P) ``J^T r``;
            prior_sq: (K,) the identity's squared prior residual per unit; mu: damping; x: (B, P) parameters;
            lower, upper: (P,) bounds. All float64.

    Returns:
        delta: (B, P) the step, its identity columns equal in every row; predicted: the decrease of the joint
        cost its Gauss-Newton model predicts (NaN where a system could not be factored).
    """
    B, P = x.shape
    K = prior_sq.shape[0]
    pinned = ((x <= lower) & (gradient > 0)) | ((x >= upper) & (gradient < 0))  # (B, P), never the identity
    keep = (~pinned).double()
    H = hessian * keep[:, :, None] * keep[:, None, :] + torch.diag_embed(pinned.double())
    g = gradient * keep
    A = H[:, :K, :K].sum(0) - (B - 1) * torch.diag(prior_sq)  # (K, K) the identity block, one prior
    g_a = g[:, :K].sum(0) - (B - 1) * prior_sq * x[0, :K]  # (K,)
    coupling, C, g_c = H[:, :K, K:], H[:, K:, K:], g[:, K:]  # (B, K, P-K), (B, P-K, P-K), (B, P-K)
    A_damped = A + mu * torch.diag(_scaling(A.diagonal()))
    C_damped = C + mu * torch.diag_embed(_scaling(C.diagonal(dim1=1, dim2=2)))
    factor, info = torch.linalg.cholesky_ex(C_damped)
    if bool(info.any()):
        return torch.zeros_like(x), math.nan
    solved = torch.cholesky_solve(torch.cat([coupling.transpose(1, 2), g_c[..., None]], 2), factor)
    X, y = solved[..., :K], solved[..., K]  # C^-1 B^T (B, P-K, K), C^-1 g_c (B, P-K)
    schur = A_damped - (coupling @ X).sum(0)
    rhs = -(g_a - (coupling @ y[..., None])[..., 0].sum(0))
    factor_s, info_s = torch.linalg.cholesky_ex(schur)
    if int(info_s) != 0:
        return torch.zeros_like(x), math.nan
    delta_a = torch.cholesky_solve(rhs[:, None], factor_s)[:, 0]  # (K,)
    delta_c = -y - (X @ delta_a)  # (B, P-K)
    delta = torch.cat([delta_a.expand(B, K), delta_c], 1) * keep
    views = -2 * (delta * gradient).sum() - (delta * (hessian @ delta[..., None])[..., 0]).sum()
    prior = -2 * (delta_a * prior_sq * x[0, :K]).sum() - (delta_a * prior_sq * delta_a).sum()
    return delta, float(views - (B - 1) * prior)


def _scaling(diagonal: Tensor) -> Tensor:
    """(..., P) Marquardt scaling: the diagonal, floored at ``DIAGONAL_FLOOR`` of its largest entry (the
    solver's)."""
    return diagonal.clamp_min(DIAGONAL_FLOOR * diagonal.amax(-1, keepdim=True).clamp_min(1e-300))


__all__ = ["SharedFit", "fit_shared_identity"]
