"""The staged fitting schedule: which groups move, which losses count, for how many steps."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from f2p.quality import QUALITIES
from f2p.scene.params import LIGHT, SMOOTH_COLOR, VERTEX_COLOR

LOSS_TERMS = ("landmark", "dense", "photometric", "identity", "prior", "symmetry", "bounds", "smoothness")
"""``dense`` (the 468 dense landmarks) counts only for photos that have them (``Observations.dense``);
``symmetry`` is the slider-pair prior (``losses.priors.slider_pair_prior``: mirror pairs move together, opposite
movements are not both on)."""
SOLVERS = ("adam", "lm")
"""How a stage optimises: ``adam`` (``BatchedAdam``, any terms) or ``lm`` (Levenberg-Marquardt,
``fitting.solver``, the landmark terms ``LM_TERMS`` only; ``steps`` is then its iteration limit)."""
LM_TERMS = ("landmark", "dense", "prior", "symmetry", "bounds")
"""The terms an ``lm`` stage can weight: those with a residual form (the bounds by projection)."""
APPEARANCE_GROUPS = ("albedo", LIGHT, SMOOTH_COLOR, VERTEX_COLOR)
"""Groups that do not move the landmarks, which an ``lm`` stage cannot train."""
SHAPE_GROUPS = ("pose", "translation", "identity", "expression", "jaw_pose")
"""What the shape stages move (``jaw_pose`` only where the model has one)."""

DEFAULT_LEARNING_RATES: dict[str, float] = {
    "pose": 0.02,
    "translation": 0.005,
    "log_focal": 0.01,
    "sh": 0.02,
    "smooth_color": 0.01,
    "vertex_color": 0.01,
    "identity": 0.05,
    "expression": 0.03,
    "albedo": 0.05,
}
"""Adam step sizes per group; model groups not listed use ``DEFAULT_MODEL_LR``."""
DEFAULT_MODEL_LR = 0.03
FINAL_LR_FRACTION = 0.05
"""Step sizes decay along a cosine from 1 to this fraction: over each fitting stage, and over a regressor's run."""
OPTIONAL_GROUPS = ("albedo", "jaw_pose", SMOOTH_COLOR, VERTEX_COLOR)
"""Groups a stage may name for any model, trained only where the scene has them: an albedo space (BFM, the
procedural model), FLAME's jaw, and the colour groups of models without albedo (ICT, SFM, FLAME). They let one
schedule (``default_schedule``) serve every model; any other name the scene lacks is an error
(``Stage.unknown_groups``)."""


def cosine_factor(step: int, steps: int) -> float:
    """Learning-rate factor at ``step`` of ``steps``: 1 at the start, ``FINAL_LR_FRACTION`` at the end."""
    progress = step / max(steps - 1, 1)
    return FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass
class Stage:
    """One stage of the schedule.

    Attributes:
        name: shown in logs and progress bars.
        steps: optimisation steps.
        groups: trainable groups: scene groups ("pose", "translation", "log_focal", "sh", ...) and model groups
            ("identity", "expression", ...); of ``OPTIONAL_GROUPS``, those the scene lacks are skipped, any other
            name the scene lacks is refused by the ``Fitter``.
        weights: {loss term: weight}; terms from ``LOSS_TERMS``, missing terms are off.
        lr_scale: multiplies every group's step size.
        resolution_scale: render at this fraction of the crop size (coarse-to-fine), 1 = full.
        solver: one of ``SOLVERS``; an ``lm`` stage weights only ``LM_TERMS``, trains no ``APPEARANCE_GROUPS``,
            and runs at most ``steps`` iterations (each photo stops when its cost no longer changes).
    """

    name: str
    steps: int
    groups: list[str]
    weights: dict[str, float] = field(default_factory=lambda: {"landmark": 1.0})
    lr_scale: float = 1.0
    resolution_scale: float = 1.0
    solver: str = "adam"

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"stage {self.name!r}: unknown loss terms {sorted(unknown)}; use {LOSS_TERMS}")
        if self.steps < 0 or not 0 < self.resolution_scale <= 1:
            raise ValueError(f"stage {self.name!r}: steps must be >= 0 and resolution_scale in (0, 1]")
        if self.solver not in SOLVERS:
            raise ValueError(f"stage {self.name!r}: unknown solver {self.solver!r}; use one of {SOLVERS}")
        if self.solver == "lm":
            terms = sorted(term for term, weight in self.weights.items() if weight > 0 and term not in LM_TERMS)
            appearance = sorted(set(self.groups) & set(APPEARANCE_GROUPS))
            if terms or appearance:
                raise ValueError(f"stage {self.name!r}: the 'lm' solver fits the landmark terms {LM_TERMS} with "
                                 f"geometry groups only; got terms {terms} and appearance groups {appearance}: "
                                 f"use solver='adam' for them")

    @property
    def needs_render(self) -> bool:
        return any(self.weights.get(term, 0.0) > 0 for term in ("photometric", "identity"))

    def unknown_groups(self, defined: Iterable[str]) -> list[str]:
        """The sorted names of ``groups`` that are neither in ``defined`` (a scene's groups,
        ``SceneSpec.sizes()``) nor in ``OPTIONAL_GROUPS``: typos, or groups of another model."""
        return sorted(set(self.groups) - set(defined) - set(OPTIONAL_GROUPS))


SYMMETRY_WEIGHT = 1e-4
"""Weight of the slider-pair prior (``symmetry``) in the stages that fit expression (ICT, 3 faces at 160 px,
``tests/test_slider_pairs.py``'s cases, ``fast`` stages): a symmetric smile under 1 px landmark noise comes back
with a mean L/R difference of 0.036 instead of 0.071 (slider RMSE 0.071 instead of 0.089), and a one-sided smile
(0.9 / 0) the landmarks show keeps 0.72-0.77 of L/R difference (0.84-0.87 without the prior); 3e-4 gives 0.021
but keeps only 0.57-0.65, 1e-3 0.37-0.46."""


def default_schedule(steps_scale: float = 1.0) -> list[Stage]:
    """Rigid pose on landmarks; shape and expression on landmarks; shape from shading at half resolution, then at
    full resolution with smaller steps (with the model's albedo, or for models without one the smooth colour field
    of ``scene.color_basis``, and the light; free per-vertex colours stay off so that they cannot absorb the
    shading); finally free per-vertex colours for models without an albedo space. The same stages serve every
    model: the groups a model lacks are all in ``OPTIONAL_GROUPS``.

    The landmark loss is in units of the face size squared (about 1e-4 for a 2 px error on a 150 px face) and
    the photometric loss in colour distance (about 0.05), hence the small photometric and identity weights: larger
    ones pull the fit off the landmarks wherever the model cannot explain the photo's appearance. The shading
    stages weaken the prior fourfold: the shading constrains the shape far better than the landmarks do. The
    identity term (half the cost of a step on a CPU) joins at full resolution, where the identity network sees
    the render as sharp as the photo.

    Args:
        steps_scale: multiplies every stage's step count (``--steps`` of ``reconstruct``).
    """

    def steps(n: int) -> int:
        return max(1, round(n * steps_scale))

    shape = list(SHAPE_GROUPS)
    shading = {"landmark": 1.0, "dense": 1.0, "photometric": 0.02, "prior": 5e-5, "symmetry": SYMMETRY_WEIGHT,
               "bounds": 1.0}
    return [
        Stage("rigid", steps(200), ["pose", "translation"], {"landmark": 1.0, "dense": 1.0}),
        Stage("shape", steps(200), shape, {"landmark": 1.0, "dense": 1.0, "prior": 2e-4, "symmetry": SYMMETRY_WEIGHT,
                                           "bounds": 1.0}),
        Stage("shading", steps(300), shape + ["albedo", "smooth_color", "sh"], shading, resolution_scale=0.5),
        Stage("detail", steps(100), shape + ["albedo", "smooth_color", "sh"], shading | {"identity": 0.005},
              lr_scale=0.3),
        Stage("colour", steps(30), ["vertex_color", "sh"], {"photometric": 1.0, "prior": 2e-4, "smoothness": 1.0},
              resolution_scale=0.5),
    ]


DEFAULT_TOTAL_STEPS = sum(stage.steps for stage in default_schedule())
"""Optimisation steps per photo of the default schedule over all stages (``reconstruct --steps``)."""


LM_RIGID_ITERATIONS = 20
LM_SHAPE_ITERATIONS = 40
"""Iteration limits of the Levenberg-Marquardt landmark stages; photos stop earlier once converged (measured on
``evaluate --synthetic 20 --dense``: 6 rigid and 5.5 shape iterations on average, 10 and 7 at most, with the
solver's ``RELATIVE_TOLERANCE`` at 1e-5; at today's 1e-3, 3.9 and 4.6 on the shared photos)."""
LM_DENSE_WEIGHT = 3.0
LM_PRIOR_WEIGHT = 5e-5
"""Weights of the Levenberg-Marquardt stages (landmark weight 1). They reach the optimum of their objective,
where the prior matters more than after ``default_schedule``'s 200 Adam steps. Similarity-aligned median error of
``evaluate --synthetic 20 --dense``, exact / 1 px noise: prior 2e-4 (that schedule's) 1.23 / 1.41 mm, 5e-5
0.78 / 1.27 mm; weighing the 468 dense points 3x as well (their errors are independent there, about 7x the 68
points' information; a detector's are correlated, hence not 7x) 0.58 / 1.05 mm (0.54 / 1.02 mm on seed 1; prior
2e-5 0.37 / 1.14 mm, 1e-4 0.69 / 1.01 mm). Without dense points 5e-5 gives 1.34 / 1.99 mm, 2e-4 1.67 / 1.93 mm.
At the crop's ~100 px face these weights are a MAP estimate's for about 0.6-1.1 px of independent noise per
coordinate; stronger priors (the detectors' measured ~2 px) or equal weights per point fit the shared photos worse
(README, "How the fit works")."""


def landmark_stages(steps_scale: float = 1.0) -> list[Stage]:
    """The Levenberg-Marquardt landmark stages: rigid pose, then shape and expression with the pose, on the 68 and
    (where observed) the dense landmarks.

    Args:
        steps_scale: multiplies the iteration limits.
    """

    def steps(n: int) -> int:
        return max(1, round(n * steps_scale))

    landmarks = {"landmark": 1.0, "dense": LM_DENSE_WEIGHT}
    return [
        Stage("rigid", steps(LM_RIGID_ITERATIONS), ["pose", "translation"], landmarks, solver="lm"),
        Stage("shape", steps(LM_SHAPE_ITERATIONS), list(SHAPE_GROUPS),
              landmarks | {"prior": LM_PRIOR_WEIGHT, "symmetry": SYMMETRY_WEIGHT, "bounds": 1.0}, solver="lm"),
    ]


DEFAULT_APPEARANCE_STEPS = 30
DEFAULT_APPEARANCE_RESOLUTION = 0.25
"""The ``default`` quality's one render stage: light and colour (smooth colour field or albedo) on the photo, the
shape left as the Levenberg-Marquardt stages fitted it. On a CPU a full render step costs about the same at any
resolution (the rasterizer's per-triangle work dominates: about 11 ms per photo at 224 px, one thread), whether
the shape moves or not; with the shape fixed the ``Fitter`` rasterizes once and re-shades
(``MeshRenderer.reshade``): 30 steps take 0.09 s per photo instead of 0.52 s (``benchmarks/fit.py``, load 3).
On the 24 shared photos (cosine of dlib embeddings of render and photo, mean) the
stage takes the render's likeness from 0.845 (``fast``, no colour fit) to 0.872 (30 steps; 0.873 with 60), the
150-step shading stage it replaces, which moved the shape too, to 0.881; the fitted landmarks are the same to
0.01 % NME68 (3.00 %). On the synthetic faces that shading stage bought 0.98 instead of 1.05 mm with 1 px noise
and lost 0.64 instead of 0.58 mm exact, and it bends the shape when cut short (50 steps: 1.21 mm with noise,
50 steps at twice the step size 1.33 / 1.55 mm): no shape here, so ``default``'s shape is ``fast``'s."""


def schedule_for(quality: str, steps_scale: float = 1.0) -> list[Stage]:
    """The schedule of a quality level (``QUALITIES``).

    - ``fast``: ``landmark_stages`` alone (Levenberg-Marquardt on the 68 and dense landmarks, no render).
    - ``default``: ``landmark_stages``, then one short appearance stage (albedo or smooth colour and light on the
      photo, ``DEFAULT_APPEARANCE_STEPS`` Adam steps at quarter resolution; the shape stays, no identity term).
    - ``best``: ``default_schedule`` (Adam throughout: landmark stages, shading and detail with the identity
      term, per-vertex colour).

    Args:
        quality: one of ``QUALITIES``.
        steps_scale: multiplies every stage's step count (the iteration limit of the ``lm`` stages).

    Raises:
        ValueError: an unknown quality.
    """
    if quality not in QUALITIES:
        raise ValueError(f"unknown fitting quality {quality!r}; use one of {QUALITIES}")
    if quality == "best":
        return default_schedule(steps_scale)
    stages = landmark_stages(steps_scale)
    if quality == "fast":
        return stages
    return stages + [Stage("shading", max(1, round(DEFAULT_APPEARANCE_STEPS * steps_scale)),
                           ["albedo", "smooth_color", "sh"], {"photometric": 0.02, "prior": LM_PRIOR_WEIGHT},
                           resolution_scale=DEFAULT_APPEARANCE_RESOLUTION)]


def total_steps(quality: str) -> int:
    """Optimisation steps (``lm`` stages: iteration limits) per photo of ``schedule_for(quality)`` over all
    stages: what ``reconstruct --steps`` is measured against."""
    return sum(stage.steps for stage in schedule_for(quality))
