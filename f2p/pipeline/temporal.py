"""Per-frame curves of a clip: bridging frames without a face, and temporal smoothing.

Bridging: a frame where no face was found gets, per column, the straight line between the nearest frames before
and after it that have one (``numpy.interp`` over frame indices); frames before the first or after the last found
frame keep that frame's values. Rotations are bridged as unit quaternions, linearly per component and
renormalised (nlerp, close to slerp for the small steps between frames), after flipping each found quaternion
into the hemisphere of the previous one (q and -q are the same rotation). Bridged frames are never taken for
observations: the clip's ``found`` mask says which frames they are.

Smoothing: a zero-phase Gaussian filter along time (``scipy.ndimage.gaussian_filter1d``, ``mode="nearest"``):
each frame becomes the Gaussian-weighted mean of its neighbours, with standard deviation ``sigma`` frames,
truncated at 4 sigma. Zero phase (the kernel is symmetric) means no lag: a movement is smoothed but not
delayed, which an offline clip allows (a causal filter such as One-Euro is for live streams). Its -3 dB cut-off
is ``0.133 / sigma`` cycles per frame: at 30 fps, sigma 1 frame keeps movements below about 4 Hz (a blink lasts
0.1 to 0.4 s) and removes frame-to-frame jitter. Quaternions are smoothed per component, then renormalised.
``sigma = 0`` turns smoothing off.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

TRUNCATE_SIGMAS = 4.0


def bridge(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N, C) per-frame values, rows of frames without a face ignored -> (N, C) float64 with those rows
    interpolated from the found frames (module docstring).

    Raises:
        ValueError: no frame is found.
    """
    found = np.asarray(found, dtype=bool)
    if not found.any():
        raise ValueError("no frame to bridge from: no face was found in any frame")
    values = np.asarray(values, dtype=np.float64)
    frames = np.arange(len(values))
    known = frames[found]
    return np.stack([np.interp(frames, known, column[found]) for column in values.T], axis=1)


def continuous_quaternions(quaternions: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions with each found one flipped into the hemisphere of the previous found one."""
    result = np.array(quaternions, dtype=np.float64)
    previous = None
    for i in np.flatnonzero(found):
        if previous is not None and result[i] @ previous < 0:
            result[i] = -result[i]
        previous = result[i]
    return result


def normalised(quaternions: np.ndarray) -> np.ndarray:
    return quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)


def bridge_rotations(quaternions: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (any component order) -> (N, 4) continuous ones, bridged by nlerp."""
    return normalised(bridge(continuous_quaternions(quaternions, found), found))


def smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """(N, C) values -> (N, C) after the zero-phase Gaussian filter of ``sigma`` frames (``values`` when 0)."""
    if sigma < 0:
        raise ValueError(f"the smoothing strength must be >= 0 frames, got {sigma}")
    values = np.asarray(values, dtype=np.float64)
    if sigma == 0 or len(values) < 2:
        return values
    return gaussian_filter1d(values, sigma, axis=0, mode="nearest", truncate=TRUNCATE_SIGMAS)


def smooth_rotations(quaternions: np.ndarray, sigma: float) -> np.ndarray:
    """(N, 4) continuous unit quaternions -> (N, 4) smoothed per component and renormalised."""
    return normalised(smooth(quaternions, sigma))
