"""Is this a face's 68 landmarks? Checks a landmark set before anything is fitted to it.

Detectors and landmark files can hand over sets no face could make: all points at one pixel, points scaled by
1e12 or thousands of pixels outside the photo, a line, a mirrored (upside-down in y) set. Fitting them gives a
confident, meaningless result, or crashes the batch. ``implausible_landmarks`` says why a set is refused, in one
line, or returns "" for a usable set. It accepts any in-plane rotation (an upside-down photo of an upright face is
a face) and any expression.
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.conventions import CHIN, LEFT_EYE, LEFT_EYE_OUTER, NOSE_TIP, NUM_LANDMARKS, OUTER_LIPS, RIGHT_EYE, RIGHT_EYE_OUTER

MIN_SPREAD_PX = 3.0
"""Smallest RMS distance of the points from their centroid: below this the face is a few pixels wide."""
OUTSIDE_MARGIN = 0.5
"""Points may lie this fraction of the photo's longer side outside the photo (faces cut by the border)."""
MIN_THICKNESS = 0.15
"""Smallest ratio of the minor to the major axis of the point cloud (a face is not a line)."""
NOSE_RANGE = (0.0, 1.1)
CHIN_MIN = 0.9
"""Along the axis from the eyes' centre to the mouth's centre (0 at the eyes, 1 at the mouth): the nose tip lies
within NOSE_RANGE and the chin beyond CHIN_MIN."""
EYE_MOUTH_RATIO = (0.3, 4.0)
"""Allowed ratio of the outer-eye-corner distance to the eyes-to-mouth distance."""


def implausible_landmarks(points: Tensor, image_size: tuple[int, int]) -> str:
    """Why ``points`` cannot be a face's iBUG-68 landmarks in an image of ``image_size``, or "" if they can.

    Args:
        points: (68, 2) landmarks in f2p pixels.
        image_size: (H, W) of the photo.
    """
    if points.shape != (NUM_LANDMARKS, 2):
        return f"landmarks of shape {tuple(points.shape)}, expected ({NUM_LANDMARKS}, 2)"
    p = points.double()
    if not torch.isfinite(p).all():
        return "landmarks that are not finite numbers"
    H, W = image_size
    margin = OUTSIDE_MARGIN * max(H, W)
    low, high = p.min(0).values, p.max(0).values
    if (low < -margin).any() or high[0] > W - 1 + margin or high[1] > H - 1 + margin:
        return (f"landmarks outside the {W}x{H} photo (x {low[0]:.0f}..{high[0]:.0f}, "
                f"y {low[1]:.0f}..{high[1]:.0f} px)")
    centred = p - p.mean(0)
    spread = centred.pow(2).sum(1).mean().sqrt()
    if spread < MIN_SPREAD_PX:
        return f"landmarks within {spread:.1f} px of one point: no face that small can be fitted"
    axes = torch.linalg.svdvals(centred)  # (2,) major, minor
    if axes[1] < MIN_THICKNESS * axes[0]:
        return "landmarks (nearly) on a line"
    return _layout_problem(p)


def _layout_problem(p: Tensor) -> str:
    """Why the parts of the (68, 2) set are not arranged as a face's are, or ""."""
    eyes = (p[list(RIGHT_EYE)].mean(0) + p[list(LEFT_EYE)].mean(0)) / 2
    mouth = p[list(OUTER_LIPS)].mean(0)
    down = mouth - eyes  # the face's own "down", whatever the photo's rotation
    length = down.norm()
    if length < 1e-6:
        return "landmarks whose eyes and mouth coincide"
    along = ((p - eyes) @ down) / length**2  # 0 at the eyes, 1 at the mouth
    if not NOSE_RANGE[0] < along[NOSE_TIP] < NOSE_RANGE[1] or along[CHIN] < CHIN_MIN:
        return "landmarks not arranged as a face (nose or chin out of place)"
    across = p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]
    ratio = across.norm() / length
    if not EYE_MOUTH_RATIO[0] < ratio < EYE_MOUTH_RATIO[1]:
        return f"landmarks not arranged as a face (eye width {ratio:.2f} x the eyes-to-mouth distance)"
    # image coordinates (y down): the subject's right eye (image left) -> left eye, turned clockwise, points down
    # to the mouth; a mirrored set turns the other way. Rotations keep the sign.
    if across[0] * down[1] - across[1] * down[0] <= 0:
        return "landmarks mirrored (the face's left and right, or up and down, are swapped)"
    return ""
