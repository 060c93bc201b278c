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

from f2p.render.rotations import axis_angle_to_quaternion, quaternion_multiply, quaternion_to_axis_angle
from f2p.scene.params import POSE, TRANSLATION


def rolled(params: dict[str, Tensor], rotation: Tensor) -> dict[str, Tensor]:
    """``params`` ({group: (B, K)}) seen through a camera rolled by ``rotation`` (B, 2, 2) (module docstring)."""
    # MODEL_TO_OPENCV flips y and z, so MODEL_TO_OPENCV @ Rz(angle) @ MODEL_TO_OPENCV is Rz(-angle) in model space:
    # the head turns by -angle about the optical axis, composed as quaternions (cheaper than through matrices).
    half = -0.5 * torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0])  # (B,)
    zero = torch.zeros_like(half)
    roll = torch.stack([half.cos(), zero, zero, half.sin()], -1)  # (B, 4)
    pose = quaternion_to_axis_angle(quaternion_multiply(roll, axis_angle_to_quaternion(params[POSE])))
    translation = params[TRANSLATION]
    xy = (rotation @ translation[:, :2, None])[..., 0]
    return {**params, POSE: pose, TRANSLATION: torch.cat([xy, translation[:, 2:]], dim=1)}
