"""iBUG-68 landmarks given as one vertex index each (BFM keypoints, rig manifests), and a check that a
loaded model lies in f2p's model frame.

An index of ``NO_LANDMARK`` (-1) marks a landmark the model has no vertex for: it is embedded at
vertex 0 with confidence 0, so landmark losses ignore it and photometric fitting still works.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from f2p import conventions as C
from f2p.morphable.base import ModelFileError

NO_LANDMARK = -1

MIN_OUTER_EYE_SPAN = 0.03
MAX_OUTER_EYE_SPAN = 0.3
"""Plausible distance (metres) between the outer eye corners 36 and 45; a human's is about 0.09 m.
The wide range admits stylised game heads and still catches a units mistake (a factor of 10 or more)."""

_FRAME_LANDMARKS = (C.RIGHT_EYE_OUTER, C.LEFT_EYE_OUTER, C.NOSE_TIP, C.MOUTH_RIGHT, C.MOUTH_LEFT)


def read_index_file(path: str | os.PathLike) -> np.ndarray:
    """Read (N,) int64 vertex indices from ``.npy`` or text (integers separated by whitespace or commas,
    ``#`` starts a comment)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "index file not found")
    if path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise ModelFileError(path, f"not a readable .npy file ({error})") from None
        if values.dtype.kind not in "iu" or values.ndim != 1:
            raise ModelFileError(path, f"expected a 1-D array of integer indices, got {values.dtype} {values.shape}")
        return values.astype(np.int64)
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    try:
        return np.array([int(token) for token in re.split(r"[\s,]+", text.strip()) if token], dtype=np.int64)
    except ValueError as error:
        raise ModelFileError(path, f"indices must be integers ({error})") from None


def read_landmark_indices(path: str | os.PathLike) -> np.ndarray:
    """Read 68 vertex indices (0-based, ``NO_LANDMARK`` = none) with ``read_index_file``. Returns (68,)
    int64; range checks are left to ``vertex_landmarks``, which knows the vertex count."""
    values = read_index_file(path)
    if values.shape != (C.NUM_LANDMARKS,):
        raise ModelFileError(path, f"expected {C.NUM_LANDMARKS} landmark indices, got {len(values)}")
    return values


def vertex_landmarks(indices: np.ndarray, num_vertices: int, source: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn (68,) vertex indices (``NO_LANDMARK`` = none) into a landmark embedding.

    Returns:
        vertices: (68, 1) int64, missing landmarks at vertex 0.
        weights: (68, 1) float32 ones.
        confidence: (68,) float32, 1 where a vertex is given, 0 where it is missing.

    Warns (``UserWarning``) when landmarks are missing: landmark losses will ignore them.
    """
    indices = np.asarray(indices)
    if indices.shape != (C.NUM_LANDMARKS,) or indices.dtype.kind not in "iu":
        raise ModelFileError(source, f"landmarks must be {C.NUM_LANDMARKS} integer vertex indices, "
                                     f"got shape {indices.shape} dtype {indices.dtype}")
    bad = (indices < NO_LANDMARK) | (indices >= num_vertices)
    if bad.any():
        raise ModelFileError(source, f"landmark vertex indices must lie in [0, {num_vertices}) or be {NO_LANDMARK}; "
                                     f"landmark {int(np.argmax(bad))} is {int(indices[bad][0])}")
    present = indices != NO_LANDMARK
    if not present.all():
        warnings.warn(f"{source}: {int((~present).sum())} of {C.NUM_LANDMARKS} landmarks have no vertex; they get "
                      "confidence 0 and landmark losses ignore them (photometric fitting still works)", stacklevel=2)
    vertices = np.where(present, indices, 0).astype(np.int64)[:, None]
    return vertices, np.ones((C.NUM_LANDMARKS, 1), np.float32), present.astype(np.float32)


def check_frame(mean: np.ndarray, landmark_vertices: np.ndarray, landmark_weights: np.ndarray,
                landmark_confidence: np.ndarray, source: object) -> None:
    """Raise ``ModelFileError`` when the (V, 3) mean shape is clearly not in f2p's model frame.

    Uses the outer eye corners, nose tip and mouth corners (skipped unless all five have confidence
    > 0): the subject's right eye must be at smaller x than the left, the eyes above the mouth (y up),
    the nose tip in front of the eyes (z towards the viewer), and the eye corners
    ``MIN_OUTER_EYE_SPAN`` to ``MAX_OUTER_EYE_SPAN`` metres apart (units).
    """
    if not np.all(landmark_confidence[list(_FRAME_LANDMARKS)] > 0):
        return
    points = (mean[landmark_vertices] * landmark_weights[..., None]).sum(axis=1)  # (68, 3)
    right_eye, left_eye = points[C.RIGHT_EYE_OUTER], points[C.LEFT_EYE_OUTER]
    eyes = (right_eye + left_eye) / 2
    mouth = (points[C.MOUTH_RIGHT] + points[C.MOUTH_LEFT]) / 2
    span = float(left_eye[0] - right_eye[0])
    if span <= 0:
        raise ModelFileError(source, "the subject's right eye (landmark 36) is not at smaller x than the left eye (45): "
                                     "the model is mirrored or turned; f2p's model space has x towards the subject's left")
    if not MIN_OUTER_EYE_SPAN <= span <= MAX_OUTER_EYE_SPAN:
        raise ModelFileError(source, f"the outer eye corners are {span:.4g} m apart, expected {MIN_OUTER_EYE_SPAN} to "
                                     f"{MAX_OUTER_EYE_SPAN} m: are the units right?")
    if eyes[1] <= mouth[1]:
        raise ModelFileError(source, "the eyes are not above the mouth: f2p's model space has y up")
    if points[C.NOSE_TIP][2] <= eyes[2]:
        raise ModelFileError(source, "the nose tip is not in front of the eyes: f2p's model space has z towards the viewer")
