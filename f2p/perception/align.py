"""Similarity transforms between point sets and differentiable warps of images with them (kornia)."""

from __future__ import annotations

import torch
from kornia.geometry.transform import warp_affine
from torch import Tensor


def similarity_transform(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama's closed form, differentiable with respect to both point sets.

    Args:
        src: (B, N, 2) source points (pixels).
        dst: (B, N, 2) target points.
        weights: (B, N) non-negative point weights, or None for equal weights.

    Returns:
        (B, 2, 3) affine matrices M with ``dst ~= M[:, :, :2] @ src + M[:, :, 2]``.
    """
    B, N, _ = src.shape
    if dst.shape != src.shape:
        raise ValueError(f"src and dst must have the same shape (B, N, 2), got {tuple(src.shape)} and {tuple(dst.shape)}")
    w = src.new_ones(B, N) if weights is None else weights
    w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)  # (B, N)
    mu_src = (w[..., None] * src).sum(1)  # (B, 2)
    mu_dst = (w[..., None] * dst).sum(1)
    xs, xd = src - mu_src[:, None], dst - mu_dst[:, None]
    # 2D similarity as a complex number a + ib: minimises sum w |a*xs - xd|^2.
    var = (w * (xs**2).sum(-1)).sum(1).clamp_min(1e-12)  # (B,)
    a = (w * (xs[..., 0] * xd[..., 0] + xs[..., 1] * xd[..., 1])).sum(1) / var
    b = (w * (xs[..., 0] * xd[..., 1] - xs[..., 1] * xd[..., 0])).sum(1) / var
    linear = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], dim=1)  # (B, 2, 2)
    translation = mu_dst - (linear @ mu_src[..., None])[..., 0]
    return torch.cat([linear, translation[..., None]], dim=2)


def invert_affine(matrix: Tensor) -> Tensor:
    """Invert (B, 2, 3) affine matrices."""
    linear, translation = matrix[:, :, :2], matrix[:, :, 2:]
    inverse = torch.linalg.inv(linear)
    return torch.cat([inverse, -inverse @ translation], dim=2)


def apply_affine(matrix: Tensor, points: Tensor) -> Tensor:
    """Apply (B, 2, 3) affine matrices to (B, N, 2) points."""
    return points @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]


def warp_image(images: Tensor, matrix: Tensor, size: tuple[int, int], padding_mode: str = "border") -> Tensor:
    """Warp (B, C, H, W) images with (B, 2, 3) matrices mapping source pixels to output pixels.

    Pixel convention of f2p (centre of the top-left pixel at (0, 0)), which is kornia's with
    ``align_corners=True``. Bilinear and differentiable in both image and matrix.

    Returns:
        (B, C, size[0], size[1]) warped images.
    """
    return warp_affine(images, matrix, dsize=size, mode="bilinear", padding_mode=padding_mode, align_corners=True)
