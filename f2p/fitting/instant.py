"""``--quality instant``: the shipped landmark network's one-pass answer (``systems.landmark_weights``), then a
few Levenberg-Marquardt iterations of the fit's own shape stage from it, so that the answer explains the detected
landmarks it was predicted from. No render; milliseconds per photo.

Why the iterations: the network is trained on synthetic landmarks with a detector noise measured on f2p renders,
and on photos it answers with a face whose points lie about twice as far from the detections as a fit's (on the
24 shared photos, the brows 3.3 % of the face size above them and the mouth 0.8 % below, in the mean). Starting
from its answer, two iterations of the shape stage close that gap (README, "Shipped network"); ``--steps 0``
keeps the network's answer alone.
"""

from __future__ import annotations

from dataclasses import replace

from f2p.fitting.schedule import Stage, landmark_stages, schedule_for, total_steps
from f2p.quality import INSTANT

INSTANT_ITERATIONS = 2
"""Levenberg-Marquardt iterations after the network's answer (``instant_stages``)."""


def instant_stages(steps_scale: float = 1.0) -> list[Stage]:
    """The stages of ``--quality instant`` after the network's answer: the shape stage of ``landmark_stages`` (same
    groups and weights) cut to ``INSTANT_ITERATIONS`` iterations.

    Args:
        steps_scale: multiplies the iteration limit; a scale that rounds to 0 iterations leaves no stage (the
            network's answer alone).
    """
    iterations = round(INSTANT_ITERATIONS * steps_scale)
    return [replace(landmark_stages()[-1], steps=iterations)] if iterations > 0 else []


def quality_steps(quality: str) -> int:
    """Default steps per photo of ``--quality QUALITY`` as ``reconstruct --steps`` counts them: the schedule's
    (``schedule.total_steps``), or ``INSTANT_ITERATIONS`` for ``instant``."""
    return INSTANT_ITERATIONS if quality == INSTANT else total_steps(quality)


def quality_stages(quality: str, steps: int) -> list[Stage]:
    """The stages of ``--quality QUALITY --steps STEPS``, each scaled by ``steps / quality_steps(quality)``
    (``instant``: those after the network's answer, none for ``--steps 0``)."""
    scale = steps / quality_steps(quality)
    return instant_stages(scale) if quality == INSTANT else schedule_for(quality, scale)
