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
        dense: (B, 468, 2) dense landmarks (MediaPipe's face-mesh points, ``face_mesh``) in crop pixels, or None.
        dense_confidence: (B, 468) their weights in [0, 1] (0 for a photo without dense points), or None.
        dense_weight: (B,) weight of each photo's dense term relative to the stage's weight: how much its dense points
            are worth against its 68 by the measured accuracy of their detectors
            (``perception.combined.dense_weight``), or None for 1 (dense and 68 points equally accurate).
    """

    image: Tensor
    landmarks: Tensor
    confidence: Tensor
    face_mask: Tensor | None = None
    embedding: Tensor | None = None
    dense: Tensor | None = None
    dense_confidence: Tensor | None = None
    dense_weight: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.image.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])

    def select(self, index: Tensor) -> Observations:
        """Rows ``index`` (long (N,)) of every field."""
        return Observations(*(None if f is None else f[index] for f in
                              (self.image, self.landmarks, self.confidence, self.face_mask, self.embedding,
                               self.dense, self.dense_confidence, self.dense_weight)))

    def rescaled(self, scale: float) -> Observations:
        """Images and masks resized by ``scale`` (area filter), landmarks mapped with the pixel-centre rule."""
        if scale == 1.0:
            return self
        H, W = self.image_size
        size = (max(1, round(H * scale)), max(1, round(W * scale)))
        scale = self.landmarks.new_tensor([size[1] / W, size[0] / H])

        def pixels(points: Tensor | None) -> Tensor | None:  # the pixel-centre rule x' = (x + 0.5) * s - 0.5
            return None if points is None else (points + 0.5) * scale - 0.5

        mask = None if self.face_mask is None else F.interpolate(self.face_mask, size=size, mode="area")
        return replace(self, image=F.interpolate(self.image, size=size, mode="area"), landmarks=pixels(self.landmarks),
                       face_mask=mask, dense=pixels(self.dense))
