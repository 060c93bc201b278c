"""Masked, robust photometric loss between a render and a photo."""

from __future__ import annotations

from torch import Tensor


def photometric_loss(render: Tensor, target: Tensor, mask: Tensor, eps: float = 1e-3) -> Tensor:
    """Masked mean of the per-pixel colour distance (a robust L2,1 norm, as in Deep3DFaceRecon).

    ``loss_b = sum_p m_bp * sqrt(||render_bp - target_bp||^2 + eps^2) / sum_p m_bp``

    Args:
        render: (B, 3, H, W) rendered image in [0, 1].
        target: (B, 3, H, W) photo in [0, 1].
        mask: (B, 1, H, W) weights in [0, 1] (render coverage x face-region mask x robust weights).
        eps: smoothing of the norm at zero (keeps the gradient finite).

    Returns:
        (B,) loss per image; zero where the mask is empty.
    """
    B, C, H, W = render.shape
    if target.shape != render.shape or mask.shape != (B, 1, H, W):
        raise ValueError(f"expected render/target (B, 3, H, W) and mask (B, 1, H, W), got {tuple(render.shape)}, "
                         f"{tuple(target.shape)}, {tuple(mask.shape)}")
    dist = ((render - target) ** 2).sum(1, keepdim=True).add(eps**2).sqrt()  # (B, 1, H, W)
    return (mask * dist).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)
