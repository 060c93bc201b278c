"""Per-photo test-time optimisation: the machinery behind ``reconstruct`` and the fitting system."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from f2p.fitting.optimizer import BatchedAdam
from f2p.fitting.schedule import (APPEARANCE_GROUPS, DEFAULT_LEARNING_RATES, DEFAULT_MODEL_LR, OPTIONAL_GROUPS, Stage,
                                  cosine_factor)
from f2p.fitting.solver import LandmarkLeastSquares, levenberg_marquardt
from f2p.perception.identity.base import FaceEmbedder
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import SceneOutput, face_triangles, render_scene, scene_colors
from f2p.scene.objective import FittingObjective, dense_point_weights
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec

log = logging.getLogger("f2p")

OnStep = Callable[[str, int, float], None]
"""Called as ``on_step(stage name, step, mean loss)`` after every optimisation step (progress bars, logs)."""

MAX_RETRIES = 3
"""Roll-backs (each halving the photo's step size) before a diverging photo is reported as failed."""
DIVERGENCE_FACTOR = 50.0
DIVERGENCE_FLOOR = 1e-3
"""A photo whose loss exceeds DIVERGENCE_FACTOR x max(its stage's best, DIVERGENCE_FLOOR) has diverged; the floor
keeps a photo that converged to almost zero loss from being flagged for ordinary noise."""
SNAPSHOT_EVERY = 10
"""Photos' last good state (for roll-backs) is saved every this many steps."""


@dataclass
class FitResult:
    """Outcome of fitting a batch of photos.

    Attributes:
        params: {group: (B, K)} final (detached) parameters at full crop resolution.
        losses: {term: (B,)} final unweighted loss terms, evaluated at full resolution.
        failed: (B,) bool, photos whose optimisation diverged even after retries.
        retries: (B,) long, roll-backs per photo.
        stage_seconds: wall time per stage.
        scene: the final parameters' full-resolution render (every triangle), from which ``losses`` were computed
            (without a render, ``render`` None, when the fitter's ``final_render`` is off).
        iterations: {stage name: (B,) long} iterations per photo of each ``lm`` stage (an ``adam`` stage runs its
            ``steps`` for every photo).
    """

    params: dict[str, Tensor]
    losses: dict[str, Tensor]
    failed: Tensor
    retries: Tensor
    stage_seconds: dict[str, float] = field(default_factory=dict)
    scene: SceneOutput | None = None
    iterations: dict[str, Tensor] = field(default_factory=dict)


class Fitter:
    """Optimises scene parameters of a batch of photos through a staged schedule.

    Args:
        spec: scene specification (model, crop size).
        renderer: mesh renderer used by stages with photometric or identity terms.
        stages: the schedule.
        embedder: identity network for the identity term, or None.
        learning_rates: per-group Adam step sizes overriding ``DEFAULT_LEARNING_RATES``.
        sliding_contour: match the observed face outline (jaw and dense face-oval points) to the model's current
            silhouette instead of fixed vertices (``FittingObjective``), in every stage: for photos whose
            detector marks the visible outline.
        final_render: render the final parameters at full resolution even when no stage renders (the pictures and
            the identity metric of an export reuse that render, ``FitResult.scene``; its photometric loss is
            reported); False leaves a schedule without render stages render-free: its final scene has the
            projected landmarks only and its losses no photometric term. A schedule that renders always ends
            with a render.

    Stages with ``solver="lm"`` run Levenberg-Marquardt (``fitting.solver``) on their landmark terms; the others
    run ``BatchedAdam`` with roll-backs. An Adam stage that trains only colour and light rasterizes once and
    re-shades that rasterization every step (``MeshRenderer.reshade``; a soft renderer renders every step).

    Raises:
        ValueError: a stage names a group that neither the scene nor the model defines (``Stage.unknown_groups``).
    """

    def __init__(self, spec: SceneSpec, renderer: MeshRenderer, stages: list[Stage],
                 embedder: FaceEmbedder | None = None, learning_rates: dict[str, float] | None = None,
                 sliding_contour: bool = False, final_render: bool = True) -> None:
        defined = list(spec.sizes())
        for stage in stages:
            unknown = stage.unknown_groups(defined)
            if unknown:
                raise ValueError(f"stage {stage.name!r}: no parameter group(s) {unknown} in model {spec.model.name!r} "
                                 f"or its scene; valid groups: {defined} (and, where the scene has them, "
                                 f"{list(OPTIONAL_GROUPS)})")
        self.spec = spec
        self.renderer = renderer
        self.stages = stages
        self.objective = FittingObjective(spec, embedder, sliding_contour).to(spec.model.device)
        self.learning_rates = {**DEFAULT_LEARNING_RATES, **(learning_rates or {})}
        self.stage_faces = face_triangles(spec.model)
        self.final_render = final_render or any(stage.needs_render for stage in stages)

    def _scene(self, stage_spec: SceneSpec, params: dict[str, Tensor], render: bool, dense: bool) -> SceneOutput:
        """The scene of a stage step: only the face's triangles are rendered (the losses are masked to the face);
        dense landmarks are projected when the stage and the observations use them."""
        return render_scene(stage_spec, params, self.renderer if render else None, self.stage_faces, dense)

    def _reshaded(self, stage_spec: SceneSpec, fixed: SceneOutput, params: dict[str, Tensor]) -> SceneOutput:
        """The scene of a step that moves only colour and light (``APPEARANCE_GROUPS``): ``fixed``'s geometry and
        rasterization (rendered once for the stage) shaded with the current colours and light
        (``MeshRenderer.reshade``), at a fraction of a full render's cost."""
        mesh = fixed.mesh
        if mesh.albedo is not None:  # a model's albedo space: its albedo from the current parameters
            mesh = replace(mesh, albedo=self.spec.model(**{g: params[g] for g in self.spec.model.groups}).albedo)
        colors = scene_colors(stage_spec, params, mesh)
        image = self.renderer.reshade(fixed.render, self.stage_faces, colors, stage_spec.lighting(params))
        return replace(fixed, mesh=mesh, colors=colors, render=replace(fixed.render, image=image))

    def total(self, terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
        """(B,) weighted sum of the terms."""
        return sum(weights.get(name, 0.0) * value for name, value in terms.items())

    def fit(self, obs: Observations, init: dict[str, Tensor] | None = None,
            on_step: OnStep | None = None) -> FitResult:
        """Fit every photo of ``obs``.

        Args:
            obs: observations at crop resolution (B photos).
            init: starting parameters (e.g. a regressor's prediction), or None to start from the mean face
                placed over the observed landmarks.
            on_step: called as ``on_step(stage name, step, mean loss)`` after every step, or every iteration of an
                ``lm`` stage, which may stop before its ``steps`` (progress bars).
        """
        B = obs.batch_size
        start = self.spec.initial(B, obs.landmarks) if init is None else init
        params = {name: value.detach().clone().requires_grad_(True) for name, value in start.items()}
        failed = torch.zeros(B, dtype=torch.bool, device=obs.image.device)
        retries = torch.zeros(B, dtype=torch.long, device=obs.image.device)
        result = FitResult(params={}, losses={}, failed=failed, retries=retries)
        for stage in self.stages:
            self._run_stage(stage, params, obs, result, on_step)
        with torch.no_grad():
            scene = render_scene(self.spec, params, self.renderer if self.final_render else None,
                                 dense=obs.dense is not None)
            wanted = {term for stage in self.stages for term, weight in stage.weights.items() if weight > 0}
            result.losses = self.objective.terms(params, scene, obs, wanted | {"landmark", "photometric"}, set(params))
        result.params = {name: value.detach() for name, value in params.items()}
        result.scene = scene
        return result

    def _run_stage(self, stage: Stage, params: dict[str, Tensor], obs: Observations, result: FitResult,
                   on_step: OnStep | None) -> None:
        began = time.perf_counter()
        trainable = [g for g in stage.groups if g in params]
        H, W = self.spec.image_size
        stage_spec = replace(self.spec, image_size=(max(1, round(H * stage.resolution_scale)),
                                                    max(1, round(W * stage.resolution_scale))))
        stage_obs = obs.rescaled(stage.resolution_scale)
        if stage.solver == "lm":
            self._solve_stage(stage, stage_spec, trainable, params, stage_obs, result, on_step)
        else:
            self._adam_stage(stage, stage_spec, trainable, params, stage_obs, result, on_step)
        result.stage_seconds[stage.name] = time.perf_counter() - began

    def _solve_stage(self, stage: Stage, stage_spec: SceneSpec, trainable: list[str], params: dict[str, Tensor],
                     stage_obs: Observations, result: FitResult, on_step: OnStep | None) -> None:
        """Levenberg-Marquardt on the stage's landmark terms; photos whose cost is not finite fail."""
        uses_dense = stage_obs.dense is not None and stage.weights.get("dense", 0.0) > 0
        problem = LandmarkLeastSquares(stage_spec, stage_obs, params, trainable, stage.weights,
                                       dense_point_weights(self.spec.model) if uses_dense else None,
                                       self.objective.contour)

        def report(iteration: int, cost: Tensor) -> None:
            if on_step is not None:
                on_step(stage.name, iteration, float(cost[~result.failed].mean()))

        solution = levenberg_marquardt(problem, problem.pack(params), stage.steps, ~result.failed, report)
        with torch.no_grad():
            for g, value in problem.unpack(solution.x).items():
                params[g].copy_(value)
        if solution.failed.any():
            log.warning("%d photo(s) have a non-finite landmark cost in stage %r and are reported as failed",
                        int(solution.failed.sum()), stage.name)
        result.failed |= solution.failed
        result.iterations[stage.name] = solution.iterations

    def _adam_stage(self, stage: Stage, stage_spec: SceneSpec, trainable: list[str], params: dict[str, Tensor],
                    stage_obs: Observations, result: FitResult, on_step: OnStep | None) -> None:
        """Adam on the stage's terms; diverging photos are rolled back with smaller steps, then fail."""
        lrs = {g: self.learning_rates.get(g, DEFAULT_MODEL_LR) * stage.lr_scale for g in trainable}
        optimizer = BatchedAdam({g: params[g] for g in trainable}, lrs)
        optimizer.step_scale[result.failed] = 0.0
        good = {g: params[g].detach().clone() for g in trainable}
        best = torch.full((stage_obs.batch_size,), math.inf, device=stage_obs.image.device)
        dense = stage_obs.dense is not None and stage.weights.get("dense", 0.0) > 0
        fixed = None  # the geometry's render, when the stage moves only colour and light (a hard renderer)
        if stage.needs_render and set(trainable) <= set(APPEARANCE_GROUPS) and not self.renderer.soft:
            with torch.no_grad():
                fixed = self._scene(stage_spec, params, render=True, dense=dense)
        for step in range(stage.steps):
            scene = (self._scene(stage_spec, params, render=stage.needs_render, dense=dense) if fixed is None
                     else self._reshaded(stage_spec, fixed, params))
            terms = self.objective.terms(params, scene, stage_obs, set(stage.weights), set(trainable))
            total = self.total(terms, stage.weights)
            bad = ~torch.isfinite(total) | (total > DIVERGENCE_FACTOR * best.clamp_min(DIVERGENCE_FLOOR))
            bad &= ~result.failed
            optimizer.zero_grad()
            torch.where(bad, torch.zeros_like(total), total).sum().backward()
            optimizer.step(cosine_factor(step, stage.steps))
            if bad.any():
                self._roll_back(bad, params, good, optimizer, result)
            self.spec.clamp_(params)
            with torch.no_grad():
                best = torch.minimum(best, torch.where(bad, best, total.detach()))
                if step % SNAPSHOT_EVERY == 0:
                    ok = torch.isfinite(total) & ~bad
                    for g in trainable:
                        good[g][ok] = params[g][ok]
            if on_step is not None:
                on_step(stage.name, step, float(total.detach().mean()))

    @staticmethod
    @torch.no_grad()
    def _roll_back(bad: Tensor, params: dict[str, Tensor], good: dict[str, Tensor], optimizer: BatchedAdam,
                   result: FitResult) -> None:
        """Restore diverged photos to their last good state with half the step; give up after MAX_RETRIES."""
        for g, snapshot in good.items():
            params[g][bad] = snapshot[bad]
        optimizer.reset(bad)
        optimizer.step_scale[bad] *= 0.5
        result.retries[bad] += 1
        gave_up = bad & (result.retries > MAX_RETRIES)
        if gave_up.any():
            result.failed |= gave_up
            optimizer.step_scale[gave_up] = 0.0
            log.warning("%d photo(s) diverged after %d retries and are reported as failed", int(gave_up.sum()),
                        MAX_RETRIES)
