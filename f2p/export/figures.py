"""Pictures a person judges a fit by: the render over the photo and a photo | render | overlay strip, optionally
followed by untextured views of the fitted shape."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

DETECTED_COLOR = (40, 220, 60)  # green
FITTED_COLOR = (230, 40, 40)  # red
OVERLAY_ALPHA = 0.6
PANEL_SIZE = 320
SHAPE_BACKGROUND = 0.12
"""Grey level behind the shape views (dark, so that the white captions read)."""
CAPTION_COLOR = (255, 255, 255)
PNG_COMPRESS_LEVEL = 1
"""zlib level of every PNG f2p writes (overlay.png, fit.png, head.glb's texture): 2.5-4x faster to write than PIL's
default 6 (overlay.png of a 1280 x 720 photo 42 instead of 116 ms, fit.png 25-28 instead of 79-82 ms, head.glb's
512 x 512 texture 17 instead of 58 ms) for files 10-30 % larger, the same pixels."""
PNG_COMPRESS_TYPE = zlib.Z_RLE
"""zlib strategy of those PNGs: run-length matches only, 4-6 % faster than the default strategy at level 1 and as
small (the 8 benchmark photos: overlay.png 286 instead of 301 kB, the texture 214 instead of 241 kB, fit.png 388
instead of 387 kB), the same pixels."""


def save_png(image: Image.Image, handle: BinaryIO) -> None:
    """Write ``image`` to the binary ``handle`` as a PNG with f2p's settings (``PNG_COMPRESS_LEVEL``,
    ``PNG_COMPRESS_TYPE``)."""
    image.save(handle, format="PNG", compress_level=PNG_COMPRESS_LEVEL, compress_type=PNG_COMPRESS_TYPE)


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class ShapeView:
    """One untextured view of a fitted mesh: ``caption``, ``image`` (3, H, W) in [0, 1] and coverage ``mask``
    (1, H, W), at the size of the photo crop."""

    caption: str
    image: Tensor
    mask: Tensor


def to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) float tensor in [0, 1] -> RGB PIL image."""
    levels = image.detach().clamp(0, 1).mul(255.0).add_(0.5).to(torch.uint8)  # rounded, as + 0.5 then truncated
    return Image.fromarray(levels.permute(1, 2, 0).contiguous().cpu().numpy(), mode="RGB")


def blend(photo: Tensor, render: Tensor, mask: Tensor, alpha: float = OVERLAY_ALPHA) -> Tensor:
    """(3, H, W) photo and render, (1, H, W) coverage -> (3, H, W) render blended over the photo."""
    return torch.lerp(photo, render, alpha * mask)  # photo (1 - w) + render w in one pass


def overlay(photo: Tensor, render: Tensor, mask: Tensor, alpha: float = OVERLAY_ALPHA) -> Tensor:
    """The (3, H, W) photo with a (3, h, w) render and its (1, h, w) coverage, made at a smaller size of the same
    aspect, blended over it: ``blend`` of the photo and the render resized to the photo (bilinear, half-pixel
    centres, as ``F.interpolate(align_corners=False)``), computed only in the window of the photo the coverage can
    reach (the render of a face covers a part of a large photo; the rest of the photo is untouched)."""
    _, H, W = photo.shape
    _, h, w = render.shape
    covered = mask[0] > 0
    rows, cols = covered.any(1).nonzero()[:, 0], covered.any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return photo.clone()
    sy, sx = H / h, W / w  # photo pixels per render pixel
    # a render pixel reaches photo pixels within one render pixel of its centre (bilinear weights)
    y0, y1 = max(0, math.floor((int(rows[0]) - 0.5) * sy)), min(H, math.ceil((int(rows[-1]) + 1.5) * sy))
    x0, x1 = max(0, math.floor((int(cols[0]) - 0.5) * sx)), min(W, math.ceil((int(cols[-1]) + 1.5) * sx))
    ys = ((torch.arange(y0, y1, dtype=torch.float32) + 0.5) / sy - 0.5).clamp(0, h - 1)  # render rows sampled
    xs = ((torch.arange(x0, x1, dtype=torch.float32) + 0.5) / sx - 0.5).clamp(0, w - 1)
    grid = torch.stack(torch.meshgrid((xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1, indexing="xy"), -1)
    layers = torch.nn.functional.grid_sample(torch.cat([render, mask])[None], grid[None].to(render), mode="bilinear",
                                             padding_mode="border", align_corners=False)[0]
    out = photo.clone()
    out[:, y0:y1, x0:x1] = blend(photo[:, y0:y1, x0:x1], layers[:3], layers[3:], alpha)
    return out


def draw_landmarks(image: Image.Image, points: np.ndarray, color: tuple[int, int, int], scale: float = 1.0) -> None:
    """Draw (68, 2) pixel points (f2p convention) as dots, scaled by ``scale``, in place."""
    draw = ImageDraw.Draw(image)
    radius = max(1.5, image.width / 160)
    for x, y in points:
        cx, cy = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=color)


def side_by_side(crop: Tensor, render: Tensor, mask: Tensor, detected: np.ndarray, fitted: np.ndarray,
                 shape_views: Sequence[ShapeView] = ()) -> Image.Image:
    """photo | render | overlay with detected (green) and fitted (red) landmarks [| shape views], each panel
    PANEL_SIZE wide.

    Args:
        crop: (3, H, W) aligned photo crop; render: (3, H, W) its render; mask: (1, H, W) coverage.
        detected, fitted: (68, 2) landmarks in crop pixels.
        shape_views: views of the fitted mesh drawn after the overlay, over ``SHAPE_BACKGROUND``.
    """
    _, H, W = crop.shape
    scale = PANEL_SIZE / W
    size = (PANEL_SIZE, round(H * scale))
    panels = [to_pil(crop), to_pil(render * mask + crop * (1 - mask) * 0.15), to_pil(blend(crop, render, mask))]
    panels += [to_pil(view.image * view.mask + SHAPE_BACKGROUND * (1 - view.mask)) for view in shape_views]
    panels = [p.resize(size, Image.Resampling.BICUBIC) for p in panels]
    draw_landmarks(panels[2], detected, DETECTED_COLOR, scale)
    draw_landmarks(panels[2], fitted, FITTED_COLOR, scale)
    figure = Image.new("RGB", (size[0] * len(panels), size[1]), (255, 255, 255))
    for i, panel in enumerate(panels):
        figure.paste(panel, (i * size[0], 0))
    caption = ImageDraw.Draw(figure)
    captions = ("photo", "render", "overlay: green detected, red fitted", *(view.caption for view in shape_views))
    for i, text in enumerate(captions):
        caption.text((i * size[0] + 6, 4), text, fill=CAPTION_COLOR)
    return figure
