"""Neural refinement of a render: a small U-Net over the render's buffers produces the refined portrait.

The refiner never sees the photo. Its input is the raw shaded render, albedo, normals and coverage mask
(``BUFFER_CHANNELS``), all functions of the parameters, so whatever the refined portrait explains, the parameters
explain. With ``hint_fraction > 0`` it also gets a sparse random sample of photo pixels (a Bernoulli mask keeping that
fraction of the pixels, redrawn every call, plus the mask itself: ``HINT_CHANNELS``): enough to learn colour and
lighting corrections, too sparse to copy the photo.

The output is ``refined = raw + mask * delta``: a correction of the rendered face only. It starts as the identity
(the last convolution is zero-initialised) and never paints outside the render's coverage, so silhouettes and
landmarks stay with the explicit mesh.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from f2p.render.renderer import RenderOutput

BUFFER_CHANNELS = 10
"""Raw image (3) + albedo (3) + camera-frame normals (3) + mask (1)."""
HINT_CHANNELS = 4
"""Sampled photo colours (3) + the sampling mask (1)."""
GROUPS = 4
"""Group-norm groups (batch-size independent, so DDP needs no synchronised statistics)."""


def render_buffers(render: RenderOutput) -> Tensor:
    """(B, BUFFER_CHANNELS, H, W) stack of a render's image, albedo, normals and mask."""
    return torch.cat([render.image, render.albedo, render.normals, render.mask], dim=1)


def photo_hints(photo: Tensor, fraction: float) -> Tensor:
    """(B, 3, H, W) photo -> (B, HINT_CHANNELS, H, W): a random ``fraction`` of its pixels and their mask."""
    B, _, H, W = photo.shape
    keep = (torch.rand(B, 1, H, W, device=photo.device) < fraction).to(photo.dtype)
    return torch.cat([photo * keep, keep], dim=1)


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(GROUPS, out_channels), nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(GROUPS, out_channels), nn.SiLU())


class UNetRefiner(nn.Module):
    """Render buffers -> refined portrait (see module docstring).

    Args:
        channels: feature channels at full resolution, doubled at each level (a multiple of ``GROUPS``).
        depth: number of 2x downsamplings; H and W must be divisible by ``2 ** depth``.
        hint_fraction: fraction of photo pixels given as hints, 0 for none.
    """

    def __init__(self, channels: int = 16, depth: int = 3, hint_fraction: float = 0.0) -> None:
        super().__init__()
        if channels % GROUPS or depth < 1 or not 0.0 <= hint_fraction < 1.0:
            raise ValueError(f"need channels divisible by {GROUPS}, depth >= 1 and hint_fraction in [0, 1); got "
                             f"{channels}, {depth}, {hint_fraction}")
        self.depth = depth
        self.hint_fraction = hint_fraction
        in_channels = BUFFER_CHANNELS + (HINT_CHANNELS if hint_fraction > 0 else 0)
        widths = [channels * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, widths[0])] +
                                  [_block(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(widths[0], 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, render: RenderOutput, photo: Tensor | None = None) -> Tensor:
        """A render (and the photo, needed only with hints) -> (B, 3, H, W) refined portrait."""
        H, W = render.image.shape[-2:]
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(f"image size {(H, W)} must be divisible by 2 ** depth = {2**self.depth}")
        x = render_buffers(render)
        if self.hint_fraction > 0:
            if photo is None:
                raise ValueError("this refiner takes photo hints: give the photo")
            x = torch.cat([x, photo_hints(photo, self.hint_fraction)], dim=1)
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block in self.up:
            skips.pop()
            x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False),
                                 skips[-1]], dim=1))
        return render.image + render.mask * self.out(x)
