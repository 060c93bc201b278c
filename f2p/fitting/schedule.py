"""The staged fitting schedule: which groups move, which losses count, for how many steps."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from f2p.scene.params import SMOOTH_COLOR, VERTEX_COLOR

LOSS_TERMS = ("landmark", "photometric", "identity", "prior", "bounds", "smoothness")

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
    """

    name: str
    steps: int
    groups: list[str]
    weights: dict[str, float] = field(default_factory=lambda: {"landmark": 1.0})
    lr_scale: float = 1.0
    resolution_scale: float = 1.0

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"stage {self.name!r}: unknown loss terms {sorted(unknown)}; use {LOSS_TERMS}")
        if self.steps < 0 or not 0 < self.resolution_scale <= 1:
            raise ValueError(f"stage {self.name!r}: steps must be >= 0 and resolution_scale in (0, 1]")

    @property
    def needs_render(self) -> bool:
        return any(self.weights.get(term, 0.0) > 0 for term in ("photometric", "identity"))

    def unknown_groups(self, defined: Iterable[str]) -> list[str]:
        """The sorted names of ``groups`` that are neither in ``defined`` (a scene's groups,
        ``SceneSpec.sizes()``) nor in ``OPTIONAL_GROUPS``: typos, or groups of another model."""
        return sorted(set(self.groups) - set(defined) - set(OPTIONAL_GROUPS))


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

    shape = ["pose", "translation", "identity", "expression", "jaw_pose"]
    shading = {"landmark": 1.0, "photometric": 0.02, "prior": 5e-5, "bounds": 1.0}
    return [
        Stage("rigid", steps(200), ["pose", "translation"], {"landmark": 1.0}),
        Stage("shape", steps(200), shape, {"landmark": 1.0, "prior": 2e-4, "bounds": 1.0}),
        Stage("shading", steps(300), shape + ["albedo", "smooth_color", "sh"], shading, resolution_scale=0.5),
        Stage("detail", steps(100), shape + ["albedo", "smooth_color", "sh"], shading | {"identity": 0.005},
              lr_scale=0.3),
        Stage("colour", steps(30), ["vertex_color", "sh"], {"photometric": 1.0, "prior": 2e-4, "smoothness": 1.0},
              resolution_scale=0.5),
    ]


DEFAULT_TOTAL_STEPS = sum(stage.steps for stage in default_schedule())
"""Optimisation steps per photo of the default schedule over all stages (``reconstruct --steps``)."""
