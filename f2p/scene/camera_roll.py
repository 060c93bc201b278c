"""An image rotated about its principal point is the same scene seen by a camera rolled about its optical axis.

``rolled(params, rotation)`` gives the parameters whose projections are those of ``params`` rotated by ``rotation``
(2x2, pixel coordinates x right, y down) about the principal point: the camera-frame rotation ``Rz`` with that 2x2
block turns the head pose into ``MODEL_TO_OPENCV @ Rz @ MODEL_TO_OPENCV @ R_head`` and the translation into
``Rz @ t``; identity, expression and focal length stay. Exact for f2p's pinhole cameras (principal point at the
image centre, square pixels).
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.conventions import MODEL_TO_OPENCV
from f2p.render.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from f2p.scene.params import POSE, TRANSLATION


def rolled(params: dict[str, Tensor], rotation: Tensor) -> dict[str, Tensor]:
    """``params`` ({group: (B, K)}) seen through a camera rolled by ``rotation`` (B, 2, 2) (module docstring)."""
    B = rotation.shape[0]
    roll = torch.eye(3, device=rotation.device, dtype=rotation.dtype).repeat(B, 1, 1)
    roll[:, :2, :2] = rotation
    flip = MODEL_TO_OPENCV.to(rotation)
    pose = matrix_to_axis_angle(flip @ roll @ flip @ axis_angle_to_matrix(params[POSE]))
    return {**params, POSE: pose, TRANSLATION: (roll @ params[TRANSLATION][..., None])[..., 0]}
