"""Levenberg-Marquardt for the landmark stages: tens of damped Gauss-Newton iterations instead of hundreds of Adam
steps, batched over photos, each photo with its own damping.

A landmark stage's objective (``FittingObjective.terms`` with the terms ``LM_TERMS``) is a sum of squares
``cost_b = sum_i r_bi(x_b)^2`` over a photo's trainable parameters ``x_b`` (P,), the stage's groups flattened in
order (``LandmarkLeastSquares``):

- 68 landmarks: ``r = sqrt(lambda_lm * w_l / sum_l w_l) * (projected_l - observed_l) / face_size`` with
  ``w = confidence x model landmark_confidence x jaw_weights(pose)``, the weights of the objective;
- 468 dense landmarks (photos that have them): the Geman-McClure term at ``DENSE_SIGMA``,
  ``r = sqrt(lambda_dense * w_l / sum_l w_l * rho(d_l^2) / d_l^2) * d_l`` with ``d_l`` the error in face sizes and
  ``rho(s) = sigma^2 s / (s + sigma^2)``; its steps are iteratively reweighted least squares (IRLS): each
  linearisation weights a point by ``rho'(d^2) = sigma^4 / (d^2 + sigma^2)^2``, which gives the exact gradient;
- prior: ``r = sqrt(lambda_prior / K_g) * x / prior_std`` for each trainable group g with a prior (K_g components);
- symmetry: ``r = sqrt(lambda_symmetry) * slider_pair_residuals`` of each trainable group with slider pairs
  (L/R differences and opposing-pair overlaps; Jacobian ``slider_pair_jacobian``);
- bounds: bounded sliders are kept inside their bounds (active-set steps), where the bound penalty is zero.

With a sliding contour (``contour``), the outline points' model points are the silhouette vertices chosen at the
linearisation point (``morphable.contour``), fixed within the step; the cost is re-evaluated under a new choice.

Jacobians are analytic where the model allows (``LandmarkLeastSquares``). A step
``(J^T J + mu diag(J^T J)) delta = -J^T r`` is accepted only where it lowers that photo's cost; the damping ``mu``
follows Nielsen's rule (down with a good gain ratio, up on a rejected step). A photo stops on a small relative
change of its cost; one whose cost is not finite at the start fails.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import jacfwd

from f2p.conventions import MODEL_TO_OPENCV
from f2p.fitting.schedule import LM_TERMS
from f2p.losses.landmark import face_size
from f2p.losses.priors import slider_pair_jacobian, slider_pair_residuals
from f2p.morphable.base import LinearMorphableModel
from f2p.morphable.contour import (ContourCandidates, candidate_points, choose_silhouette, chosen_vertices,
                                   vertex_points)
from f2p.morphable.dense import landmark_points, point_bases
from f2p.render.cameras import PinholeCamera
from f2p.render.rasterize.fragments import MIN_DEPTH
from f2p.render.rotations import axis_angle_to_matrix_jacobian
from f2p.scene.compose import scene_camera
from f2p.scene.objective import DENSE_SIGMA, landmark_weights, model_slider_pairs
from f2p.scene.observations import Observations
from f2p.scene.params import LOG_FOCAL, POSE, TRANSLATION, SceneSpec

INITIAL_DAMPING = 1e-3
"""Starting ``mu``, relative to the diagonal of ``J^T J`` (Marquardt's scaling)."""
MAX_DAMPING = 1e10
"""A photo whose damping passes this makes no more progress and stops."""
RELATIVE_TOLERANCE = 1e-3
"""A photo stops once an accepted step, or the step its model predicts, lowers its cost by less than this
fraction. Measured (``--quality fast``, 8 shared photos in one batch, one thread): 1e-3 instead of 1e-5 takes
the rigid and shape stages from 5.75 and 7.25 iterations per photo to 3.9 and 4.6 (0.021 -> 0.013 s per photo)
with the same fits: NME68 2.92 % on the shared photos (visible contour 2.19 instead of 2.18 %), 0.73 / 1.14 mm
on ``evaluate --synthetic 20`` exact / 1 px noise (1e-2: 3.1 and 3.3 iterations, 0.71 / 1.14 mm, NME68 2.92 %);
SFM's synthetic faces 0.64 / 0.86 mm (0.64 / 0.87 mm at 1e-5)."""
BOUND_PASSES = 4
"""Solves per step at most: each pins the components the previous one carried past a bound."""
DIAGONAL_FLOOR = 1e-12
"""Floor of the Marquardt scaling diag(J^T J) relative to its largest entry (components nothing constrains)."""
CONTOUR_UPDATES = 6
"""Linearisations of a photo at which a sliding contour chooses its silhouette vertices again; later ones keep
the last choice, so that a choice flipping between neighbouring vertices cannot keep the photo from converging."""
MIN_FACE_SIZE = 1e-8
"""Face-size floor of the landmark losses (``landmark_loss``, ``robust_landmark_loss``)."""

CAMERA_GROUPS = (POSE, TRANSLATION, LOG_FOCAL)
"""The scene groups that move the projected points, differentiated analytically (``_camera_columns``)."""

OnIteration = Callable[[int, Tensor], None]
"""Called as ``on_iteration(iteration, cost)`` with the (B,) costs after every iteration."""


@dataclass(frozen=True)
class Linearisation:
    """A batch of photos' Gauss-Newton model around their parameters, float64.

    Attributes:
        hessian: (B, P, P) ``J^T J`` of the IRLS-weighted residuals (the prior's included).
        gradient: (B, P) ``J^T r``, half the cost's gradient.
        cost: (B,) the cost at the linearisation point when linearising changed the objective (a sliding
            contour chose new silhouette vertices), else None.
    """

    hessian: Tensor
    gradient: Tensor
    cost: Tensor | None = None


class LandmarkLeastSquares:
    """A landmark stage's objective for B photos as a sum of squares of residuals (see the module docstring).

    The Jacobian of the projected points is analytic in the camera's groups (``CAMERA_GROUPS``: the pinhole
    projection's derivative, Rodrigues' for the pose) and, by the chain rule through d(pixel)/d(model-space point),
    in a linear model's shape groups, whose d(point)/d(coefficients) is their fixed point basis. The other groups
    (a non-linear model's, such as FLAME's) get d(point)/d(group) from one forward-mode ``jacfwd`` per
    linearisation; its tangents are shared by the batch's photos, which do not interact, so it gives every photo's
    own Jacobian.

    Args:
        spec: the stage's scene (its image size is that of ``obs``).
        obs: the photos' observations at the stage's resolution.
        params: {group: (B, K)} current parameters; the groups not in ``groups`` stay fixed at these values.
        groups: the trainable groups, in the order of the flat parameter vector; each must be in ``params``.
        weights: the stage's {term: weight}; terms outside ``LM_TERMS`` are refused.
        dense_point_weights: (468,) per-point weights of the dense term (the objective's), used when ``obs`` has
            dense landmarks and the stage weights them.
        contour: the model's ``contour_candidates`` to slide the outline points along the silhouette (chosen
            again at every linearisation, ``FittingObjective``'s ``sliding_contour``), or None for fixed points.

    Raises:
        ValueError: a weighted term the solver cannot express, or a group missing from ``params``.
    """

    def __init__(self, spec: SceneSpec, obs: Observations, params: dict[str, Tensor], groups: list[str],
                 weights: dict[str, float], dense_point_weights: Tensor | None = None,
                 contour: ContourCandidates | None = None) -> None:
        unsupported = sorted(term for term, weight in weights.items() if weight > 0 and term not in LM_TERMS)
        if unsupported:
            raise ValueError(f"the Levenberg-Marquardt solver handles the terms {LM_TERMS} only, not {unsupported}")
        missing = [g for g in groups if g not in params]
        if missing:
            raise ValueError(f"trainable group(s) {missing} are not in the parameters")
        model = spec.model
        self.spec = spec
        self.groups = list(groups)
        self.sizes = [params[g].shape[1] for g in self.groups]
        geometry = (POSE, TRANSLATION, LOG_FOCAL, *model.groups)
        self.fixed = {g: params[g].detach() for g in geometry if g in params and g not in self.groups}
        linear = model.shape_group_names if isinstance(model, LinearMorphableModel) else ()
        self.linear = [g for g in self.groups if g in linear]  # through their point bases
        self.opaque = [g for g in self.groups if g not in linear and g not in CAMERA_GROUPS]  # through jacfwd
        self.landmarks = obs.landmarks
        self.scale = face_size(obs.landmarks).clamp_min(MIN_FACE_SIZE)  # (B,)
        self.landmark_weight = float(weights.get("landmark", 0.0))
        self.confidence = obs.confidence  # (B, 68)
        dense_weight = float(weights.get("dense", 0.0))
        self.use_dense = obs.dense is not None and dense_weight > 0
        self.dense = obs.dense if self.use_dense else None
        if self.use_dense:
            if dense_point_weights is None:
                raise ValueError("a stage with a dense term needs the dense point weights")
            w = obs.dense_confidence * dense_point_weights  # (B, 468)
            self.dense_weights = dense_weight * w / w.sum(1, keepdim=True).clamp_min(1e-8)
            if obs.dense_weight is not None:  # each photo's measured worth of its dense points
                self.dense_weights = self.dense_weights * obs.dense_weight[:, None]
        self.contour = contour
        if contour is not None:  # rows of the sliding points among the 68 (then 468) points, and their first choice
            dense_rows = contour.dense + 68 if self.use_dense else contour.dense[:0]
            self.sliding = len(contour.landmarks) + len(dense_rows)
            self.contour_rows = torch.cat([contour.landmarks, dense_rows])
            self.choice = self._choose({g: v.detach() for g, v in params.items()})  # (B, N) vertex indices
            self.updates = torch.zeros(len(self.scale), dtype=torch.long, device=self.scale.device)
        self.bases = {g: _point_basis(model, g, self.use_dense) for g in self.linear}
        prior_weight = float(weights.get("prior", 0.0))
        stds = spec.prior_stds()
        self.symmetry_weight = float(weights.get("symmetry", 0.0))
        self.pairs = {g: p for g, p in model_slider_pairs(model).items()
                      if g in self.groups and self.symmetry_weight > 0}
        self.stds = {g: stds[g].to(self.scale) for g in self.pairs}
        self.prior = torch.cat([self.scale.new_zeros(K) if prior_weight == 0
                                else (prior_weight / K) ** 0.5 / stds[g].expand(K).to(self.scale)
                                for g, K in zip(self.groups, self.sizes)])  # (P,) residual per unit parameter
        lower, upper = [], []
        for g, K in zip(self.groups, self.sizes):
            group = model.groups.get(g)
            bounded = group is not None and group.bounded
            lower.append(self.scale.new_tensor(group.lower) if bounded else self.scale.new_full((K,), -math.inf))
            upper.append(self.scale.new_tensor(group.upper) if bounded else self.scale.new_full((K,), math.inf))
        self.lower, self.upper = torch.cat(lower), torch.cat(upper)  # (P,)

    @property
    def size(self) -> int:
        """P, the length of a photo's parameter vector."""
        return sum(self.sizes)

    def pack(self, params: dict[str, Tensor]) -> Tensor:
        """{group: (B, K)} -> (B, P) flat trainable parameters."""
        return torch.cat([params[g].detach() for g in self.groups], dim=1)

    def unpack(self, x: Tensor) -> dict[str, Tensor]:
        """(B, P) -> {trainable group: (B, K)}."""
        return dict(zip(self.groups, x.split(self.sizes, dim=1)))

    def project(self, x: Tensor) -> Tensor:
        """(B, P) -> (B, P) clamped into the bounds of the bounded sliders."""
        return torch.maximum(torch.minimum(x, self.upper), self.lower)

    def residuals(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """(B', P) parameters of photos ``rows`` (long (B',), None for all) -> (B', R) residuals whose squares sum
        to the stage's weighted loss (at parameters inside the bounds), sliding points at their current choice."""
        rows = self._rows(rows)
        _, points, camera = self._scene(x, rows)
        errors = self._errors(camera.project(points), rows)  # (B', N, 2)
        return self._residuals(errors, self._landmark_weights(x, rows).sqrt()[..., None], x, rows)

    def _residuals(self, errors: Tensor, root_weights: Tensor, x: Tensor, rows: Tensor) -> Tensor:
        """``residuals`` from the (B', N, 2) ``errors`` of photos ``rows`` at ``x`` and the square roots of their
        68-point weights (B', 68, 1)."""
        parts = [errors[:, :68] * root_weights]
        if self.use_dense:  # sqrt(w rho(d^2) / d^2) d, with rho(s) / s = sigma^2 / (s + sigma^2)
            dense = errors[:, 68:]
            sq = dense.square().sum(-1, keepdim=True)
            parts.append(dense * (self.dense_weights[rows][..., None] * DENSE_SIGMA**2 / (sq + DENSE_SIGMA**2)).sqrt())
        return torch.cat([*(p.flatten(1) for p in parts), x * self.prior, self._symmetry(x)], dim=1)

    def cost(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """(B', P) -> (B',) the stage's weighted loss of photos ``rows``."""
        return self.residuals(x, rows).square().sum(1)

    def linearise(self, x: Tensor, rows: Tensor | None = None) -> Linearisation:
        """The Gauss-Newton model of photos ``rows`` (long (B',), None for all) at ``x`` (B', P): dense points
        weighted by the Geman-McClure IRLS weights at ``x``."""
        rows = self._rows(rows)
        B, P = x.shape
        chosen = self.contour is not None and bool((self.updates[rows] < CONTOUR_UPDATES).any())
        if chosen:  # the silhouette at x: the sliding points' vertices chosen again (the first CONTOUR_UPDATES times)
            update = self.updates[rows] < CONTOUR_UPDATES
            choice = self._choose({g: v[rows] for g, v in self.fixed.items()} | self.unpack(x))
            self.choice[rows] = torch.where(update[:, None], choice, self.choice[rows])
            self.updates[rows] += 1
        errors, J = self._error_jacobian(x, rows)  # (B', N, 2), (B', N, 2, P)
        a = self._landmark_weights(x, rows).sqrt()[..., None]  # (B', 68, 1)
        cost = self._residuals(errors, a, x, rows).square().sum(1) if chosen else None
        r_parts, J_parts = [errors[:, :68] * a], [J[:, :68] * a[..., None]]
        if self.use_dense:
            dense_errors = errors[:, 68:]
            sq = dense_errors.square().sum(-1, keepdim=True)  # (B', 468, 1)
            irls = self.dense_weights[rows][..., None].sqrt() * DENSE_SIGMA**2 / (sq + DENSE_SIGMA**2)
            r_parts.append(dense_errors * irls)  # sqrt(w rho'(d^2)) d
            J_parts.append(J[:, 68:] * irls[..., None])
        if self.pairs:
            r_parts.append(self._symmetry(x))
            J_parts.append(self._symmetry_jacobian(x))
        r = torch.cat([p.reshape(B, -1) for p in r_parts], dim=1)  # (B', R)
        J = torch.cat([p.reshape(B, -1, P) for p in J_parts], dim=1)  # (B', R, P)
        prior_sq = self.prior.double() ** 2  # the prior's rows of J are diag(prior)
        # products in float32 (the model is approximate anyway), the solve in float64
        hessian = (J.transpose(1, 2) @ J).double() + torch.diag_embed(prior_sq.expand(B, P))
        gradient = (J.transpose(1, 2) @ r[..., None])[..., 0].double() + prior_sq * x.double()
        return Linearisation(hessian, gradient, cost)

    def _symmetry(self, x: Tensor) -> Tensor:
        """(B', P) -> (B', R_s) residuals of the slider-pair prior (none without a symmetry weight)."""
        values = self.unpack(x)
        return torch.cat([x[:, :0]] + [self.symmetry_weight**0.5 * slider_pair_residuals(values[g], pairs, self.stds[g])
                                       for g, pairs in self.pairs.items()], dim=1)

    def _symmetry_jacobian(self, x: Tensor) -> Tensor:
        """(B', P) -> (B', R_s, P) the derivative of ``_symmetry``: each group's ``slider_pair_jacobian`` in its
        columns."""
        B, P = x.shape
        values, start, blocks = self.unpack(x), dict(zip(self.groups, itertools.accumulate([0, *self.sizes]))), []
        for g, pairs in self.pairs.items():
            block = self.symmetry_weight**0.5 * slider_pair_jacobian(values[g], pairs, self.stds[g])  # (B', R_g, K)
            blocks.append(nn.functional.pad(block, (start[g], P - start[g] - block.shape[2])))
        return torch.cat([x.new_zeros(B, 0, P), *blocks], dim=1)

    def _rows(self, rows: Tensor | None) -> Tensor:
        return torch.arange(self.scale.shape[0], device=self.scale.device) if rows is None else rows

    def _points(self, model_params: dict[str, Tensor], rows: Tensor | None = None) -> Tensor:
        """(B', N, 3) model-space points of the 68 then (when used) the 468 dense landmarks; with a sliding
        contour and ``rows`` given (long (B',)), the outline points at the vertices chosen for those photos."""
        points = landmark_points(self.spec.model, self.use_dense, **model_params)
        if self.contour is not None and rows is not None:
            sliding = vertex_points(self.spec.model, self.choice[rows][:, :self.sliding], **model_params)
            points = points.index_copy(1, self.contour_rows, sliding)
        return points

    def _choose(self, params: dict[str, Tensor]) -> Tensor:
        """(B', N) long: the vertex of each sliding point on the silhouette of the photos' scene ``params``."""
        model = self.spec.model
        model_params = {g: v for g, v in params.items() if g in model.groups}
        points = candidate_points(model, self.contour, **model_params)  # (B', N, C, 3)
        B, N, Cc, _ = points.shape
        camera = scene_camera(self.spec, params)
        projected = camera.project(points.reshape(B, N * Cc, 3)).reshape(B, N, Cc, 2)
        return chosen_vertices(self.contour, choose_silhouette(projected, camera.R, self.contour))

    def _scene(self, x: Tensor, rows: Tensor) -> tuple[dict[str, Tensor], Tensor, PinholeCamera]:
        """The scene parameters {group: (B', K)} of photos ``rows`` at ``x`` (B', P), their (B', N, 3) model-space
        points (``_points``) and their camera (``render_scene``'s)."""
        params = {g: v[rows] for g, v in self.fixed.items()} | self.unpack(x)
        points = self._points({g: v for g, v in params.items() if g in self.spec.model.groups}, rows)
        return params, points, scene_camera(self.spec, params)

    def _errors(self, pixels: Tensor, rows: Tensor) -> Tensor:
        """(B', N, 2) projected points of photos ``rows`` -> (B', N, 2) their errors in face sizes, the 68 then
        (when used) the 468 dense points."""
        observed = (self.landmarks[rows] if self.dense is None
                    else torch.cat([self.landmarks[rows], self.dense[rows]], 1))
        return (pixels - observed) / self.scale[rows][:, None, None]

    def _error_jacobian(self, x: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        """(B', N, 2) errors of photos ``rows`` at ``x`` (B', P) (``_errors``) and (B', N, 2, P) their derivative.

        With ``X = R p + t`` the camera-frame point of the model-space point ``p`` and ``u = f X_x / X_z + c_x``
        (likewise ``v``), d(error)/dX is ``f / (s X_z) [[1, 0, -X_x / X_z], [0, 1, -X_y / X_z]]`` (no depth term
        where ``|X_z| <= MIN_DEPTH``, which the projection holds at ``MIN_DEPTH``), ``s`` the face size; the groups'
        columns follow by the chain rule (``_camera_columns``, the point bases, ``jacfwd`` for the rest)."""
        params, points, camera = self._scene(x, rows)
        B, N, _ = points.shape
        cam = camera.to_camera(points)  # (B', N, 3)
        pixels = camera.screen_from_camera(cam)[..., :2]
        X, Y, Z = cam.unbind(-1)
        inside = Z.abs() > MIN_DEPTH
        Z_safe = torch.where(inside, Z, torch.full_like(Z, MIN_DEPTH))
        f = (camera.fx / self.scale[rows])[:, None] / Z_safe  # (B', N): d(error) / d(X_x)
        zero, depth = torch.zeros_like(f), torch.where(inside, -f / Z_safe, torch.zeros_like(f))
        J_cam = torch.stack([torch.stack([f, zero, depth * X], -1),
                             torch.stack([zero, f, depth * Y], -1)], -2)  # (B', N, 2, 3) d(error) / dX
        J_point = J_cam @ camera.R[:, None]  # (B', N, 2, 3) d(error) / dp
        columns = self._camera_columns(params, points, camera, pixels, J_cam, rows)
        for g, basis in self.bases.items():  # basis (N, 3, K)
            column = torch.einsum("bnij,njk->bnik", J_point, basis)  # (B', N, 2, K)
            if self.contour is not None:  # the sliding points' own vertices' basis rows, per photo
                moving = self.spec.model.basis(g)[:, self.choice[rows][:, :self.sliding]]  # (K, B', N_s, 3)
                column[:, self.contour_rows] = torch.einsum("bnij,kbnj->bnik", J_point[:, self.contour_rows], moving)
            columns[g] = column
        if self.opaque:  # d(point) / d(group) by jacfwd, a shift shared by the photos: (B', N, 3, P_opaque)
            sizes = [params[g].shape[1] for g in self.opaque]

            def points_of(shift: Tensor) -> Tensor:
                moved = params | {g: params[g] + d for g, d in zip(self.opaque, shift.split(sizes))}
                return self._points({g: v for g, v in moved.items() if g in self.spec.model.groups}, rows)

            J_opaque = torch.einsum("bnij,bnjk->bnik", J_point, jacfwd(points_of)(x.new_zeros(sum(sizes))))
            columns |= dict(zip(self.opaque, J_opaque.split(sizes, dim=3)))
        return self._errors(pixels, rows), torch.cat([columns[g] for g in self.groups], dim=3)

    def _camera_columns(self, params: dict[str, Tensor], points: Tensor, camera: PinholeCamera, pixels: Tensor,
                        J_cam: Tensor, rows: Tensor) -> dict[str, Tensor]:
        """{trainable camera group: (B', N, 2, K) d(error) / d(group)} from the model-space ``points`` (B', N, 3),
        their ``pixels`` (B', N, 2) and ``J_cam`` (B', N, 2, 3) d(error) / d(camera-frame point): the translation
        moves the camera-frame points one for one, the pose through ``dR / dw_k p`` (Rodrigues' derivative), the
        log focal length scales the pixels' offsets from the principal point."""
        columns = {}
        if POSE in self.groups:
            dR = MODEL_TO_OPENCV.to(points) @ axis_angle_to_matrix_jacobian(params[POSE])  # (B', 3 k, 3, 3)
            moved = torch.einsum("bkij,bnj->bnik", dR, points)  # (B', N, 3, 3 k) d(camera point) / dw_k
            columns[POSE] = J_cam @ moved
        if TRANSLATION in self.groups:
            columns[TRANSLATION] = J_cam
        if LOG_FOCAL in self.groups:  # d(u) / d(log f) = f X_x / X_z = u - c_x
            principal = torch.stack([camera.cx, camera.cy], -1)[:, None]  # (B', 1, 2)
            columns[LOG_FOCAL] = ((pixels - principal) / self.scale[rows][:, None, None])[..., None]
        return columns

    def _landmark_weights(self, x: Tensor, rows: Tensor) -> Tensor:
        """(B', 68) normalised 68-point weights at ``x``: the jaw fades with the pose (as in the objective)."""
        pose = self.unpack(x)[POSE] if POSE in self.groups else self.fixed[POSE][rows]
        w = landmark_weights(self.spec.model, self.confidence[rows], pose, self.contour)
        return self.landmark_weight * w / w.sum(1, keepdim=True).clamp_min(1e-8)


def _point_basis(model: LinearMorphableModel, group: str, dense: bool) -> Tensor:
    """(N, 3, K) model-space offsets of the 68 (then, with ``dense``, the 468 dense) points per unit of a linear
    model's shape group's coefficients: its bases restricted to the points (the model's 68-point bases, or
    ``morphable.dense.point_bases``)."""
    basis = point_bases(model)[1][group] if dense else getattr(model, f"landmark_basis_{group}")  # (K, N, 3)
    return basis.permute(1, 2, 0)


@dataclass(frozen=True)
class SolverResult:
    """Outcome of ``levenberg_marquardt``.

    Attributes:
        x: (B, P) final parameters (a photo's start where it failed or was inactive).
        cost: (B,) final cost.
        iterations: (B,) long, iterations (linear solves) per photo.
        converged: (B,) bool, photos that stopped on the tolerance before the iteration limit.
        failed: (B,) bool, photos whose cost was not finite at the start.
    """

    x: Tensor
    cost: Tensor
    iterations: Tensor
    converged: Tensor
    failed: Tensor


@torch.no_grad()
def levenberg_marquardt(problem: LandmarkLeastSquares, x0: Tensor, max_iterations: int,
                        active: Tensor | None = None, on_iteration: OnIteration | None = None) -> SolverResult:
    """Minimise ``problem``'s cost of every photo from ``x0`` (B, P), projected into the bounds.

    Args:
        problem: the least-squares problem of B photos.
        x0: (B, P) starting parameters.
        max_iterations: iterations at most (each photo: one linear solve per iteration).
        active: (B,) bool, photos to solve (None for all); the others keep ``x0`` and zero iterations.
        on_iteration: called after every iteration with the (B,) costs.
    """
    B, P = x0.shape
    device = x0.device
    active = torch.ones(B, dtype=torch.bool, device=device) if active is None else active.clone()
    x = torch.where(active[:, None], problem.project(x0), x0)
    cost = torch.full((B,), math.nan, device=device)
    if active.any():
        cost[active] = problem.cost(x[active], active.nonzero()[:, 0])
    failed = active & ~torch.isfinite(cost)
    done = ~active | failed
    converged = torch.zeros(B, dtype=torch.bool, device=device)
    iterations = torch.zeros(B, dtype=torch.long, device=device)
    mu = torch.full((B,), INITIAL_DAMPING, dtype=torch.float64, device=device)
    nu = torch.full((B,), 2.0, dtype=torch.float64, device=device)
    hessian = torch.zeros(B, P, P, dtype=torch.float64, device=device)
    gradient = torch.zeros(B, P, dtype=torch.float64, device=device)
    stale = ~done  # photos whose Gauss-Newton model must be (re)built at their x
    for iteration in range(max_iterations):
        if done.all():
            break
        rows = (stale & ~done).nonzero()[:, 0]
        if len(rows):
            model = problem.linearise(x[rows], rows)
            hessian[rows], gradient[rows] = model.hessian, model.gradient
            if model.cost is not None:
                cost[rows] = model.cost
        stale[:] = False
        rows = (~done).nonzero()[:, 0]
        delta, predicted = _damped_step(hessian[rows], gradient[rows], mu[rows], x[rows].double(),
                                        problem.lower.double(), problem.upper.double())
        trial = problem.project(x[rows] + delta.to(x.dtype))
        trial_cost = problem.cost(trial, rows)
        actual = cost[rows].double() - trial_cost.double()
        accept = torch.isfinite(trial_cost) & (actual > 0) & (predicted > 0)
        gain = actual / predicted.clamp_min(1e-300)
        mu[rows] = torch.where(accept, mu[rows] * (1 - (2 * gain - 1) ** 3).clamp_min(1 / 3), mu[rows] * nu[rows])
        nu[rows] = torch.where(accept, torch.full_like(nu[rows], 2.0), nu[rows] * 2)
        x[rows[accept]] = trial[accept]
        scale = cost[rows].double().abs().clamp_min(1e-30)
        small = (accept & (actual <= RELATIVE_TOLERANCE * scale)) | (predicted <= RELATIVE_TOLERANCE * scale)
        # (a system that could not be factored predicts NaN: its damping grows, it does not stop)
        cost[rows[accept]] = trial_cost[accept]
        stale[rows[accept]] = True
        iterations[rows] += 1
        stop = small | (mu[rows] > MAX_DAMPING)
        converged[rows[stop]] = True
        done[rows[stop]] = True
        if on_iteration is not None:
            on_iteration(iteration, cost)
    return SolverResult(x, cost, iterations, converged, failed)


def _damped_step(hessian: Tensor, gradient: Tensor, mu: Tensor, x: Tensor, lower: Tensor, upper: Tensor
                 ) -> tuple[Tensor, Tensor]:
    """Solve ``(H + mu diag(H)) delta = -g`` per photo inside the bounds (an active-set step): components at a
    bound that the gradient pushes outwards stay put; components the step would carry past a bound are pinned
    onto it and the rest solved again, up to ``BOUND_PASSES`` times.

    Args:
        hessian: (B, P, P) ``J^T J``; gradient: (B, P) ``J^T r``; mu: (B,) damping; x: (B, P) parameters;
            lower, upper: (P,) bounds (+-inf where unbounded). All float64.

    Returns:
        delta: (B, P) the step (zero where the system could not be factored); predicted: (B,) the decrease of the
        cost that the Gauss-Newton model predicts for it, ``-2 delta.g - delta.H.delta`` (NaN where the system
        could not be factored).
    """
    diagonal = hessian.diagonal(dim1=1, dim2=2)
    scaling = diagonal.clamp_min(DIAGONAL_FLOOR * diagonal.amax(1, keepdim=True).clamp_min(1e-300))
    pinned = ((x <= lower) & (gradient > 0)) | ((x >= upper) & (gradient < 0))  # (B, P)
    fixed = torch.zeros_like(gradient)  # the pinned components' steps
    ok = torch.ones_like(mu, dtype=torch.bool)
    for _ in range(BOUND_PASSES):
        keep = (~pinned).double()
        system = (hessian * keep[:, :, None] * keep[:, None, :]
                  + torch.diag_embed(mu[:, None] * scaling * keep + pinned.double()))
        rhs = -(gradient + (hessian @ fixed[..., None])[..., 0]) * keep
        factor, info = torch.linalg.cholesky_ex(system)
        ok = info == 0
        delta = fixed.clone()
        if ok.any():
            delta[ok] += torch.cholesky_solve(rhs[ok][..., None], factor[ok])[..., 0] * keep[ok]
        below, above = (x + delta < lower) & ~pinned, (x + delta > upper) & ~pinned
        if not (below | above).any():
            break
        fixed = torch.where(below, lower - x, torch.where(above, upper - x, fixed))
        pinned = pinned | below | above
    delta = torch.where(ok[:, None], delta, torch.zeros_like(delta))
    predicted = -2 * (delta * gradient).sum(1) - (delta * (hessian @ delta[..., None])[..., 0]).sum(1)
    return delta, torch.where(ok, predicted, torch.full_like(predicted, math.nan))
