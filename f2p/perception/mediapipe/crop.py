"""Bilinear crops of a ROI (``roi.Roi``) into a model's input image, as MediaPipe's image-to-tensor step does.

One sampling step maps each crop pixel centre to the photo (see the ``roi`` module for the conventions) and reads
the photo bilinearly, without antialiasing, like MediaPipe's ``ImageToTensorCalculator`` (OpenCV
``warpPerspective``, ``INTER_LINEAR``). Outside the photo the crop is black (``BORDER_ZERO``, the face detector's
letterbox) or repeats the nearest edge pixel (``BORDER_REPLICATE``, MediaPipe's default, used for the landmark
models).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from f2p.perception.mediapipe.roi import Roi

Border = Literal["zero", "replicate"]
_PADDING_MODES = {"zero": "zeros", "replicate": "border"}


def crop_roi(image: Tensor, roi: Roi, size: int, border: Border = "replicate", flip: bool = False) -> Tensor:
    """The ROI of a photo resampled to a square image.

    Args:
        image: (3, H, W) RGB in [0, 1].
        roi: the region, in the pixels of ``image``.
        size: side S of the crop in pixels.
        border: how pixels outside the photo are filled.
        flip: mirror the crop left-right (MediaPipe's ``FLIP_HORIZONTALLY`` of the iris pipeline): crop column j
            shows ROI column S - 1 - j.

    Returns:
        (3, S, S) crop, float32.
    """
    _, H, W = image.shape
    steps = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    if flip:
        u = 1.0 - u
    pixels = roi.to_image(torch.stack([u, v], dim=-1))  # (S, S, 2) photo pixels
    grid = (pixels + 0.5) / pixels.new_tensor([W, H]) * 2.0 - 1.0  # grid_sample coordinates, align_corners=False
    photo = image.detach().to("cpu", torch.float32)[None]
    return F.grid_sample(photo, grid[None], mode="bilinear", padding_mode=_PADDING_MODES[border],
                         align_corners=False)[0]


def model_input(crop: Tensor, low: float, high: float) -> np.ndarray:
    """(3, S, S) crop in [0, 1] -> (1, S, S, 3) float32 array with values in [low, high], a LiteRT model's input."""
    scaled = crop * (high - low) + low
    return np.ascontiguousarray(scaled.permute(1, 2, 0)[None].numpy(), dtype=np.float32)
