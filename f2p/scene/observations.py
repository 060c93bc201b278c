"""What a photo tells the fit: the cropped image, its landmarks, masks and identity embedding."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Observations:
    """A batch of observed photos in crop coordinates.

    Attributes:
        image: (B, 3, H, W) crop in [0, 1].
        landmarks: (B, 68, 2) landmarks in crop pixels.
        confidence: (B, 68) landmark weights in [0, 1].
        face_mask: (B, 1, H, W) skin-region weights, or None for everywhere.
        embedding: (B, D) identity embedding of the photo, or None.
    """

    image: Tensor
    landmarks: Tensor
    confidence: Tensor
    face_mask: Tensor | None = None
    embedding: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.image.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])

    def select(self, index: Tensor) -> Observations:
        """Rows ``index`` (long (N,)) of every field."""
        return Observations(*(None if f is None else f[index] for f in
                              (self.image, self.landmarks, self.confidence, self.face_mask, self.embedding)))

    def rescaled(self, scale: float) -> Observations:
        """Images and masks resized by ``scale`` (area filter), landmarks mapped with the pixel-centre rule."""
        if scale == 1.0:
            return self
        H, W = self.image_size
        size = (max(1, round(H * scale)), max(1, round(W * scale)))
        sx, sy = size[1] / W, size[0] / H
        landmarks = self.landmarks.clone()
        landmarks[..., 0] = (landmarks[..., 0] + 0.5) * sx - 0.5
        landmarks[..., 1] = (landmarks[..., 1] + 0.5) * sy - 0.5
        mask = None if self.face_mask is None else F.interpolate(self.face_mask, size=size, mode="area")
        return replace(self, image=F.interpolate(self.image, size=size, mode="area"), landmarks=landmarks,
                       face_mask=mask)
