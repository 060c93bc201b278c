"""Head pose for evaluation: rotations from params.json and from AFLW2000-3D, and angle errors.

Everything is compared as ``R_head`` of ``f2p.conventions`` (model space; ``R_camera = MODEL_TO_OPENCV @ R_head``)
and reported as f2p's (yaw, pitch, roll) in degrees.

AFLW2000-3D ``Pose_Para`` (pitch, yaw, roll in radians) come from the MATLAB fitting of Zhu et al. (3DDFA), which
projects BFM vertices (x towards the subject's left, y up, z towards the viewer, like f2p's model space) as
``f * R @ X + t`` with ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` built from the transposed (clockwise) elementary
rotations, then flips image y. In f2p's terms that is ``R_head = euler_to_matrix(yaw, pitch, roll).T``: for small
angles f2p's yaw, pitch and roll are the negated AFLW2000-3D angles, for large ones they differ more (other order).
Checked on the shared photos: aflw2000_image00475 (Pose_Para pitch +40.0, yaw +65.6, roll +20.0 degrees) turns its
nose to the image left and its face up, i.e. negative f2p yaw and pitch; the rotation that best aligns the mean ICT
landmarks with the file's 3D landmarks ``pt3d_68`` (image frame, depth towards the viewer) is 1.2 degrees from this
mapping's, against 49 degrees for simply negating the three angles in f2p's order.
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.conventions import MODEL_TO_OPENCV
from f2p.render.rotations import euler_to_matrix, matrix_to_axis_angle, matrix_to_euler

POSE_ANGLES = ("yaw", "pitch", "roll")


def head_rotation_from_camera(R_camera: Tensor) -> Tensor:
    """(..., 3, 3) extrinsic rotation of params.json's photo camera -> (..., 3, 3) ``R_head`` in the photo frame.

    The photo camera includes the in-plane turn of the aligned crop, so this (unlike params.json's ``pose``,
    which is relative to the crop) is the head pose relative to the photo.
    """
    return MODEL_TO_OPENCV.to(R_camera) @ R_camera  # MODEL_TO_OPENCV is its own inverse


def aflw2000_head_rotation(pitch_yaw_roll_deg: Tensor) -> Tensor:
    """(..., 3) AFLW2000-3D ``Pose_Para[:3]`` in degrees (pitch, yaw, roll order) -> (..., 3, 3) ``R_head``."""
    pitch, yaw, roll = pitch_yaw_roll_deg.unbind(-1)
    return euler_to_matrix(torch.stack([yaw, pitch, roll], dim=-1)).transpose(-1, -2)


def wrap_degrees(angles: Tensor) -> Tensor:
    """Angles in degrees -> the same angles in [-180, 180)."""
    return torch.remainder(angles + 180.0, 360.0) - 180.0


def euler_errors(prediction: Tensor, target: Tensor) -> Tensor:
    """(..., 3) and (..., 3) (yaw, pitch, roll) degrees -> (..., 3) absolute differences, wrapped (359 vs 1 is 2)."""
    return wrap_degrees(prediction - target).abs()


def geodesic_degrees(R_a: Tensor, R_b: Tensor) -> Tensor:
    """(..., 3, 3) rotations -> (...) angle of the rotation between them, degrees in [0, 180].

    Taken from the relative rotation's quaternion, which is exact at 0 (the arccos of its trace is not: in float32
    it reads equal rotations as up to 0.05 degrees apart)."""
    return matrix_to_axis_angle(R_a @ R_b.transpose(-1, -2)).norm(dim=-1).rad2deg()


def pose_errors(R_prediction: Tensor, R_target: Tensor) -> dict[str, Tensor]:
    """Errors between (..., 3, 3) head rotations: {"yaw", "pitch", "roll": per-angle absolute error of f2p's Euler
    angles, "geodesic": rotation angle between them}, all (...) in degrees."""
    errors = euler_errors(matrix_to_euler(R_prediction), matrix_to_euler(R_target))
    return {**{name: errors[..., i] for i, name in enumerate(POSE_ANGLES)},
            "geodesic": geodesic_degrees(R_prediction, R_target)}
