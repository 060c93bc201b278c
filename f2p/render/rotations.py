"""Differentiable rotations: axis-angle, rotation matrices, head-pose Euler angles in degrees.

Head pose follows ``f2p.conventions``: ``R_head = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` in model space
(x towards the subject's left, y up, z towards the viewer) and the extrinsic rotation of an OpenCV
camera looking at the face is ``R = MODEL_TO_OPENCV @ R_head``. Angles are given as
``(yaw, pitch, roll)`` in degrees, in that order.

Every function takes a leading batch shape ``(...)`` and is differentiable everywhere, including the
zero rotation (small angles use Taylor series, selected with ``torch.where`` on safe inputs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.conventions import MODEL_TO_OPENCV

SMALL_ANGLE_SQ = 1e-6
"""Squared angle (rad^2) below which Rodrigues' coefficients use their Taylor series."""

YAW, PITCH, ROLL = 0, 1, 2
"""Column of each angle in a (..., 3) yaw-pitch-roll tensor."""


def _check_vectors(name: str, value: Tensor) -> None:
    if value.ndim < 1 or value.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {tuple(value.shape)}")


def _check_matrices(name: str, value: Tensor) -> None:
    if value.ndim < 2 or value.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {tuple(value.shape)}")


def skew(v: Tensor) -> Tensor:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices ``[v]_x`` with ``[v]_x @ w = v x w``."""
    _check_vectors("v", v)
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1), torch.stack([-y, x, zero], -1))
    return torch.stack(rows, -2)


def _rodrigues_coefficients(axis_angle: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(..., 3) axis-angle -> (...,) ``small`` (Taylor series in use), ``theta^2`` where not small (1 where small),
    ``a = sin(theta) / theta`` and ``b = (1 - cos(theta)) / theta^2``."""
    theta_sq = (axis_angle * axis_angle).sum(-1)
    small = theta_sq < SMALL_ANGLE_SQ
    theta_sq_safe = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = theta_sq_safe.sqrt()
    a = torch.where(small, 1.0 - theta_sq / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(theta)) / theta_sq_safe)
    return small, theta_sq_safe, a, b


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula: (..., 3) axis * angle (radians) -> (..., 3, 3) rotation matrices.

    ``R = I + a [w]_x + b [w]_x^2`` with ``a = sin(theta) / theta``, ``b = (1 - cos(theta)) / theta^2``
    and ``theta = |w|``.
    """
    _check_vectors("axis_angle", axis_angle)
    _, _, a, b = _rodrigues_coefficients(axis_angle)
    K = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(K)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def axis_angle_to_matrix_jacobian(axis_angle: Tensor) -> Tensor:
    """(..., 3) axis-angle -> (..., 3, 3, 3) derivatives ``dR / dw_k`` of ``axis_angle_to_matrix`` at
    ``[..., k, :, :]``.

    The product rule on Rodrigues' formula, with ``E_k = [e_k]_x``:
    ``dR / dw_k = 2 w_k (a' [w]_x + b' [w]_x^2) + a E_k + b (E_k [w]_x + [w]_x E_k)``, ``a'`` and ``b'`` the
    derivatives of ``a`` and ``b`` in ``theta^2`` (of their Taylor series at small angles, as autograd sees them).
    """
    _check_vectors("axis_angle", axis_angle)
    small, theta_sq_safe, a, b = _rodrigues_coefficients(axis_angle)
    theta = theta_sq_safe.sqrt()
    sin, cos = torch.sin(theta), torch.cos(theta)
    da = torch.where(small, torch.full_like(a, -1.0 / 6.0), (theta * cos - sin) / (2.0 * theta * theta_sq_safe))
    db = torch.where(small, torch.full_like(b, -1.0 / 24.0),
                     (theta * sin - 2.0 * (1.0 - cos)) / (2.0 * theta_sq_safe * theta_sq_safe))
    K = skew(axis_angle)[..., None, :, :]  # (..., 1, 3, 3)
    E = skew(torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device))  # (3, 3, 3): E[k] = [e_k]_x
    w = axis_angle[..., :, None, None]  # (..., 3, 1, 1)
    return (2.0 * w * (da[..., None, None, None] * K + db[..., None, None, None] * (K @ K))
            + a[..., None, None, None] * E + b[..., None, None, None] * (E @ K + K @ E))


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z) with w >= 0.

    Shepperd's method: of the four algebraically equal formulas, each element uses the one whose
    divisor (twice the largest of |w|, |x|, |y|, |z|) is best conditioned.
    """
    _check_matrices("R", R)
    m = R.unbind(-1)  # columns
    m00, m10, m20 = m[0].unbind(-1)
    m01, m11, m21 = m[1].unbind(-1)
    m02, m12, m22 = m[2].unbind(-1)
    # 4 * (w^2, x^2, y^2, z^2)
    four_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = four_sq.argmax(-1, keepdim=True)
    twice_abs = four_sq.clamp(min=0.0).gather(-1, best).sqrt()  # 2 * |largest component|, >= 1
    # Row k holds 4 * q_k * (w, x, y, z); dividing by 4 |q_k| gives q up to sign.
    candidates = torch.stack([
        torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, four_sq[..., 3]], -1),
    ], -2)
    index = best[..., None].expand(*best.shape[:-1], 1, 4)
    q = candidates.gather(-2, index).squeeze(-2) / (2.0 * twice_abs)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quaternion(axis_angle: Tensor) -> Tensor:
    """(..., 3) axis * angle (radians) -> (..., 4) unit quaternions (w, x, y, z), ``(cos(theta / 2),
    sin(theta / 2) / theta * v)`` (its Taylor series at small angles)."""
    _check_vectors("axis_angle", axis_angle)
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta_sq < SMALL_ANGLE_SQ
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    factor = torch.where(small, 0.5 - theta_sq / 48.0, torch.sin(0.5 * theta) / theta)
    w = torch.where(small, 1.0 - theta_sq / 8.0, torch.cos(0.5 * theta))
    return torch.cat([w, axis_angle * factor], -1)


def quaternion_multiply(a: Tensor, b: Tensor) -> Tensor:
    """(..., 4) quaternions (w, x, y, z) -> (..., 4) Hamilton product ``a b``: the rotation ``b``, then ``a``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3) axis-angle with angle in [0, pi]."""
    if q.ndim < 1 or q.shape[-1] != 4:
        raise ValueError(f"q must have shape (..., 4), got {tuple(q.shape)}")
    q = torch.where(q[..., :1] < 0, -q, q)
    w, xyz = q[..., 0], q[..., 1:]
    sin_half_sq = (xyz * xyz).sum(-1)
    small = sin_half_sq < SMALL_ANGLE_SQ
    sin_half = torch.where(small, torch.ones_like(sin_half_sq), sin_half_sq).sqrt()
    half = torch.atan2(sin_half, w)
    # angle / sin(half) = 2 atan(s / w) / s, whose Taylor series in s = sin(half) is 2 / w - 2 s^2 / (3 w^3).
    factor = torch.where(small, 2.0 / w - 2.0 * sin_half_sq / (3.0 * w**3), 2.0 * half / sin_half)
    return xyz * factor[..., None]


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis * angle, angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def _axis_rotation(angle: Tensor, axis: int) -> Tensor:
    """(...,) angles (radians) -> (..., 3, 3) rotations about model axis 0 (x), 1 (y) or 2 (z)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == 1:
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def euler_to_matrix(yaw_pitch_roll_deg: Tensor) -> Tensor:
    """(..., 3) (yaw, pitch, roll) in degrees -> (..., 3, 3) ``R_head = Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
    _check_vectors("yaw_pitch_roll_deg", yaw_pitch_roll_deg)
    radians = torch.deg2rad(yaw_pitch_roll_deg)
    return (_axis_rotation(radians[..., ROLL], 2) @ _axis_rotation(radians[..., YAW], 1)
            @ _axis_rotation(radians[..., PITCH], 0))


def matrix_to_euler(R: Tensor) -> Tensor:
    """(..., 3, 3) ``R_head`` -> (..., 3) (yaw, pitch, roll) in degrees, the inverse of ``euler_to_matrix``.

    Yaw lies in [-90, 90]; pitch and roll in (-180, 180]. At yaw = +-90 (gimbal lock) pitch and roll
    are not separable and the split returned is arbitrary but still reproduces ``R``.
    """
    _check_matrices("R", R)
    # R = Rz(r) Ry(y) Rx(p): R[2,0] = -sin y, R[2,1] = cos y sin p, R[2,2] = cos y cos p,
    # R[1,0] = sin r cos y, R[0,0] = cos r cos y.
    yaw = torch.atan2(-R[..., 2, 0], torch.hypot(R[..., 0, 0], R[..., 1, 0]))
    pitch = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    roll = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    return torch.rad2deg(torch.stack([yaw, pitch, roll], -1))


def euler_to_axis_angle(yaw_pitch_roll_deg: Tensor) -> Tensor:
    """(..., 3) (yaw, pitch, roll) degrees -> (..., 3) head-pose axis-angle."""
    return matrix_to_axis_angle(euler_to_matrix(yaw_pitch_roll_deg))


def axis_angle_to_euler(axis_angle: Tensor) -> Tensor:
    """(..., 3) head-pose axis-angle -> (..., 3) (yaw, pitch, roll) degrees."""
    return matrix_to_euler(axis_angle_to_matrix(axis_angle))


def head_pose_extrinsics(pose_aa: Tensor, translation: Tensor) -> tuple[Tensor, Tensor]:
    """Head pose -> OpenCV extrinsics.

    Args:
        pose_aa: (B, 3) head rotation ``R_head`` as axis-angle (radians), in model space.
        translation: (B, 3) position of the model origin in the camera frame (metres).

    Returns:
        R: (B, 3, 3) ``MODEL_TO_OPENCV @ R_head``.
        t: (B, 3) ``translation``.
    """
    if pose_aa.ndim != 2 or pose_aa.shape[1] != 3:
        raise ValueError(f"pose_aa must have shape (B, 3), got {tuple(pose_aa.shape)}")
    if translation.shape != pose_aa.shape:
        raise ValueError(f"translation must have shape {tuple(pose_aa.shape)} like pose_aa, "
                         f"got {tuple(translation.shape)}")
    flip = MODEL_TO_OPENCV.to(device=pose_aa.device, dtype=pose_aa.dtype)
    return flip @ axis_angle_to_matrix(pose_aa), translation

