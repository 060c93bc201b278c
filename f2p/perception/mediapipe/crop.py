"""Bilinear crops of a ROI (``roi.Roi``) into a model's input image, as MediaPipe's image-to-tensor step does.

One sampling step maps each crop pixel centre to the photo (see the ``roi`` module for the conventions) and reads
the photo bilinearly, like MediaPipe's ``ImageToTensorCalculator`` (OpenCV ``warpPerspective``, ``INTER_LINEAR``).
Outside the photo the crop is black (``BORDER_ZERO``, the face detector's letterbox) or repeats the nearest edge
pixel (``BORDER_REPLICATE``, MediaPipe's default, used for the landmark models).

Unlike MediaPipe, which meets camera frames of about the models' scale, a crop that shrinks the photo by 2 or more
reads a box-filtered level of it (``ImagePyramid``): bilinear reads of a 4000 x 3000 photo into BlazeFace's 128 px
input would see one pixel in 30 of every row and alias the rest.
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


class ImagePyramid:
    """A photo and its halvings (2 x 2 box filter), each built on first use: what ``crop_roi`` reads from.

    Args:
        image: (3, H, W) RGB in [0, 1].
    """

    def __init__(self, image: Tensor) -> None:
        self._levels = [image.detach().to("cpu", torch.float32)]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the photo."""
        return tuple(self._levels[0].shape[1:])

    def level(self, shrink: float) -> tuple[Tensor, int]:
        """The coarsest level whose pixels are at most ``shrink`` photo pixels wide, and that width (a power of 2):
        photo pixel ``p`` (f2p pixels) is at ``(p + 0.5) / width - 0.5`` in it (a halving drops an odd last row or
        column)."""
        index = 0
        while 2 ** (index + 1) <= shrink and min(self._levels[index].shape[1:]) >= 2:
            if len(self._levels) == index + 1:
                self._levels.append(F.avg_pool2d(self._levels[index][None], 2)[0])
            index += 1
        return self._levels[index], 2 ** index


def crop_roi(image: ImagePyramid, roi: Roi, size: int, border: Border = "replicate", flip: bool = False) -> Tensor:
    """The ROI of a photo resampled to a square image.

    Args:
        image: the photo's ``ImagePyramid`` (built once per photo: it keeps the halvings for the next crop).
        roi: the region, in the pixels of ``image``.
        size: side S of the crop in pixels.
        border: how pixels outside the photo are filled.
        flip: mirror the crop left-right (MediaPipe's ``FLIP_HORIZONTALLY`` of the iris pipeline): crop column j
            shows ROI column S - 1 - j.

    Returns:
        (3, S, S) crop, float32.
    """
    photo, width = image.level(roi.size / size)
    _, H, W = photo.shape
    steps = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    if flip:
        u = 1.0 - u
    pixels = roi.to_image(torch.stack([u, v], dim=-1))  # (S, S, 2) photo pixels
    grid = (pixels + 0.5) / (width * pixels.new_tensor([W, H])) * 2.0 - 1.0  # grid_sample's, align_corners=False
    return F.grid_sample(photo[None], grid[None], mode="bilinear", padding_mode=_PADDING_MODES[border],
                         align_corners=False)[0]


def model_input(crop: Tensor, low: float, high: float) -> np.ndarray:
    """(3, S, S) crop in [0, 1] -> (1, S, S, 3) float32 array with values in [low, high], a LiteRT model's input."""
    scaled = crop * (high - low) + low
    return np.ascontiguousarray(scaled.permute(1, 2, 0)[None].numpy(), dtype=np.float32)
