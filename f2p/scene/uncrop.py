"""Map a camera that renders a similarity-aligned crop back to the original photo's pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.render.cameras import PinholeCamera


def uncrop_camera(camera: PinholeCamera, crop_to_photo: Tensor, photo_size: tuple[int, int]) -> PinholeCamera:
    """The pinhole camera that renders, in photo pixels, what ``camera`` renders in the crop.

    The crop-to-photo map ``u_photo = s * Rot(phi) @ u_crop + b`` is a similarity, so it is exact to scale the
    focal length by ``s``, move the principal point with the map and turn the camera about its optical axis
    by ``phi`` (``R' = Rz(phi) @ R``, ``t' = Rz(phi) @ t``).

    Args:
        camera: camera of the crop (fx == fy, zero skew).
        crop_to_photo: (B, 2, 3) similarity matrices from crop pixels to photo pixels.
        photo_size: (H, W) of the photo.
    """
    linear, offset = crop_to_photo[:, :, :2], crop_to_photo[:, :, 2]  # (B, 2, 2), (B, 2)
    scale = torch.linalg.det(linear).clamp_min(1e-12).sqrt()  # (B,)
    rot2 = linear / scale[:, None, None]  # (B, 2, 2) rotation in the image plane (x right, y down)
    B = rot2.shape[0]
    rot3 = torch.zeros(B, 3, 3, dtype=rot2.dtype, device=rot2.device)
    rot3[:, :2, :2] = rot2
    rot3[:, 2, 2] = 1.0
    principal = torch.stack([camera.cx, camera.cy], dim=1)  # (B, 2)
    new_principal = (linear @ principal[..., None])[..., 0] + offset
    return PinholeCamera(fx=camera.fx * scale, fy=camera.fy * scale, cx=new_principal[:, 0], cy=new_principal[:, 1],
                         R=rot3 @ camera.R, t=(rot3 @ camera.t[..., None])[..., 0], image_size=photo_size)
