"""Cameras in f2p's conventions: OpenCV frame, intrinsics in pixels, pixel centres at integers.

A camera maps world (= model space) points to the camera frame, ``X_cam = R @ X + t``, and from
there to *screen space*: ``(u, v, Z)`` with ``(u, v)`` in f2p pixels (the centre of the top-left
pixel is (0, 0)) and ``Z`` the camera depth in metres. Rasterizer backends consume screen space,
so they never see a camera.

- ``PinholeCamera``: ``u = fx X / Z + cx``, ``v = fy Y / Z + cy``; barycentrics are interpolated
  perspective-correctly.
- ``OrthographicCamera``: ``u = s X + cx``, ``v = s Y + cy`` with ``s`` in pixels per metre; affine
  barycentrics. A weak-perspective camera is an orthographic one with ``s = f / Z_mean``
  (``OrthographicCamera.weak_perspective``).

For both, geometry must lie in front of the camera (``Z > 0``): the rasterizers drop triangles
with a vertex at ``Z <= MIN_DEPTH``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.conventions import MODEL_TO_OPENCV
from f2p.render.rasterize.fragments import MIN_DEPTH  # the rasterizers' near plane; projection divides by at least it

DEFAULT_FOV_DEG = 12.0
"""Field of view across the image width of ``default_camera`` and of a fitted scene at ``log_focal = 0``
(``scene.params.SceneSpec``): a portrait lens, the focal length 1066 px at 224 px."""

DEFAULT_DISTANCE = 1.0
"""Metres from the camera to the model origin in ``default_camera``: at 12 degrees the frame spans
0.21 m, a face from chin to forehead."""


def _check_batch(name: str, value: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(value.shape) != shape:
        raise ValueError(f"camera {name} must have shape {shape}, got {tuple(value.shape)}")


def _check_image_size(image_size: tuple[int, int]) -> None:
    if len(image_size) != 2 or any(int(s) != s or s <= 0 for s in image_size):
        raise ValueError(f"image_size must be (H, W) positive integers, got {image_size}")


def _check_points(points: Tensor, batch_size: int) -> None:
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[0] != batch_size:
        raise ValueError(f"points must have shape ({batch_size}, N, 3), got {tuple(points.shape)}")


class _Extrinsics:
    """World-to-camera transform shared by every camera (fields R (B, 3, 3), t (B, 3))."""

    R: Tensor
    t: Tensor
    image_size: tuple[int, int]
    is_perspective: bool

    @property
    def batch_size(self) -> int:
        return self.R.shape[0]

    def _check_extrinsics(self) -> None:
        if self.R.ndim != 3 or self.R.shape[1:] != (3, 3):
            raise ValueError(f"camera R must have shape (B, 3, 3), got {tuple(self.R.shape)}")
        _check_batch("t", self.t, (self.batch_size, 3))
        _check_image_size(self.image_size)

    def to_camera(self, points: Tensor) -> Tensor:
        """(B, N, 3) world points -> (B, N, 3) camera-frame points ``R @ X + t``."""
        _check_points(points, self.batch_size)
        return points @ self.R.transpose(1, 2) + self.t[:, None, :]

    def screen_from_camera(self, points_cam: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_screen(self, points: Tensor) -> Tensor:
        """(B, N, 3) world points -> (B, N, 3) screen space ``(u, v, Z)``: pixels and camera depth."""
        return self.screen_from_camera(self.to_camera(points))

    def project(self, points: Tensor) -> Tensor:
        """(B, N, 3) world points -> (B, N, 2) pixel coordinates ``(u, v)``."""
        return self.to_screen(points)[..., :2]


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class PinholeCamera(_Extrinsics):
    """Pinhole camera, OpenCV convention.

    Attributes:
        fx, fy: (B,) focal lengths in pixels.
        cx, cy: (B,) principal point in f2p pixels (image centre: ``((W - 1) / 2, (H - 1) / 2)``).
        R: (B, 3, 3) world-to-camera rotation.
        t: (B, 3) world-to-camera translation (metres).
        image_size: (H, W) in pixels.
    """

    fx: Tensor
    fy: Tensor
    cx: Tensor
    cy: Tensor
    R: Tensor
    t: Tensor
    image_size: tuple[int, int]
    is_perspective = True

    def __post_init__(self) -> None:
        self._check_extrinsics()
        for name in ("fx", "fy", "cx", "cy"):
            _check_batch(name, getattr(self, name), (self.batch_size,))

    def screen_from_camera(self, points_cam: Tensor) -> Tensor:
        """(B, N, 3) camera-frame points -> (B, N, 3) ``(fx X / Z + cx, fy Y / Z + cy, Z)``."""
        X, Y, Z = points_cam.unbind(-1)
        Z_safe = torch.where(Z.abs() > MIN_DEPTH, Z, torch.full_like(Z, MIN_DEPTH))
        u = self.fx[:, None] * X / Z_safe + self.cx[:, None]
        v = self.fy[:, None] * Y / Z_safe + self.cy[:, None]
        return torch.stack([u, v, Z], -1)


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class OrthographicCamera(_Extrinsics):
    """Orthographic (scaled) camera, OpenCV axes: ``u = scale X + cx``, ``v = scale Y + cy``.

    Attributes:
        scale: (B,) pixels per metre.
        cx, cy: (B,) image position of the camera axis in f2p pixels.
        R: (B, 3, 3) world-to-camera rotation.
        t: (B, 3) world-to-camera translation (metres); ``t_z`` only orders depth and must keep the
            geometry at ``Z > 0``.
        image_size: (H, W) in pixels.
    """

    scale: Tensor
    cx: Tensor
    cy: Tensor
    R: Tensor
    t: Tensor
    image_size: tuple[int, int]
    is_perspective = False

    def __post_init__(self) -> None:
        self._check_extrinsics()
        for name in ("scale", "cx", "cy"):
            _check_batch(name, getattr(self, name), (self.batch_size,))

    @classmethod
    def weak_perspective(cls, focal: Tensor, depth: Tensor, cx: Tensor, cy: Tensor, R: Tensor, t: Tensor,
                         image_size: tuple[int, int]) -> OrthographicCamera:
        """Weak perspective: a pinhole of focal length ``focal`` (B,) px with every point at ``depth`` (B,) m."""
        return cls(scale=focal / depth, cx=cx, cy=cy, R=R, t=t, image_size=image_size)

    def screen_from_camera(self, points_cam: Tensor) -> Tensor:
        """(B, N, 3) camera-frame points -> (B, N, 3) ``(s X + cx, s Y + cy, Z)``."""
        X, Y, Z = points_cam.unbind(-1)
        u = self.scale[:, None] * X + self.cx[:, None]
        v = self.scale[:, None] * Y + self.cy[:, None]
        return torch.stack([u, v, Z], -1)


Camera = PinholeCamera | OrthographicCamera


def default_focal_px(image_size: tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length (pixels) giving ``fov_deg`` across the width of ``image_size`` (H, W)."""
    return 0.5 * image_size[1] / math.tan(math.radians(fov_deg) / 2)


def default_camera(batch_size: int, image_size: tuple[int, int], focal_px: float | None = None,
                   distance: float = DEFAULT_DISTANCE, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> PinholeCamera:
    """A frontal pinhole camera looking at the model origin from ``distance`` metres along model +z.

    ``R = MODEL_TO_OPENCV`` (no head rotation), ``t = (0, 0, distance)``, principal point at the
    image centre, square pixels with ``focal_px`` (default ``default_focal_px(image_size)``, a
    12-degree field of view across the width: at 224 px, f = 1066 px and the frame spans 0.21 m at 1 m).
    """
    _check_image_size(image_size)
    H, W = image_size
    focal = default_focal_px(image_size) if focal_px is None else focal_px

    def full(value: float) -> Tensor:
        return torch.full((batch_size,), float(value), device=device, dtype=dtype)

    R = MODEL_TO_OPENCV.to(device=device, dtype=dtype).expand(batch_size, 3, 3).clone()
    t = torch.tensor([0.0, 0.0, distance], device=device, dtype=dtype).expand(batch_size, 3).clone()
    return PinholeCamera(fx=full(focal), fy=full(focal), cx=full((W - 1) / 2), cy=full((H - 1) / 2), R=R, t=t,
                         image_size=(H, W))
