"""Canonical face crops: a similarity transform from landmarks to a fixed 5-point template, applied with the
differentiable warp of ``f2p.perception.align``, with the transform and its inverse kept to map results back.

Template. The five points (eye centres, nose tip, mouth corners; image left first) of the widely used ArcFace
112 x 112 alignment template, in pixel-edge units of that square (pixel centre + 0.5, divided by 112). The square is
then padded by ``margin`` of its side on every side and scaled to ``size``: margin 0 frames the face from the brows
to the chin like ArcFace; the default 0.25 also keeps the forehead, jaw line and ears for model fitting.
68-point landmarks are reduced to these five points (eye centres = mean of each eye's six points).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.conventions import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, NUM_LANDMARKS, RIGHT_EYE
from f2p.perception.align import apply_affine, invert_affine, similarity_transform, warp_image
from f2p.perception.crop_size import CROP_SIZE

ARCFACE_SIZE = 112.0
ARCFACE_TEMPLATE = (
    (38.2946, 51.6963),  # eye centre, image left (subject's right)
    (73.5318, 51.5014),  # eye centre, image right
    (56.0252, 71.7366),  # nose tip
    (41.5493, 92.3655),  # mouth corner, image left
    (70.7299, 92.2041),  # mouth corner, image right
)
"""ArcFace (InsightFace) 5-point template in pixels of a 112 x 112 crop."""

CROP_MARGIN = 0.25


def five_points(landmarks: Tensor) -> Tensor:
    """(B, 68, 2) iBUG landmarks -> (B, 5, 2) eye centres, nose tip, mouth corners (image left first);
    (B, 5, 2) input is returned unchanged."""
    if landmarks.shape[-2] == 5:
        return landmarks
    if landmarks.shape[-2] != NUM_LANDMARKS:
        raise ValueError(f"expected (B, 68, 2) or (B, 5, 2) landmarks, got {tuple(landmarks.shape)}")
    return torch.stack([
        landmarks[:, list(RIGHT_EYE)].mean(1),
        landmarks[:, list(LEFT_EYE)].mean(1),
        landmarks[:, NOSE_TIP],
        landmarks[:, MOUTH_RIGHT],
        landmarks[:, MOUTH_LEFT],
    ], dim=1)


def crop_template(size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> Tensor:
    """(5, 2) template points in pixels of a ``size`` x ``size`` crop padded by ``margin`` (see module docstring)."""
    unit = (torch.tensor(ARCFACE_TEMPLATE) + 0.5) / ARCFACE_SIZE  # pixel-edge units of the ArcFace square
    return ((unit - 0.5) / (1.0 + 2.0 * margin) + 0.5) * size - 0.5


def crop_matrix(landmarks: Tensor, size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> Tensor:
    """(B, 68 or 5, 2) photo landmarks -> (B, 2, 3) similarity mapping photo pixels to crop pixels."""
    points = five_points(landmarks)
    template = crop_template(size, margin).to(points)
    return similarity_transform(points, template.expand_as(points))


@dataclass(frozen=True)
class FaceCrop:
    """Aligned face crops and the transforms between photo and crop pixels.

    Attributes:
        images: (B, C, S, S) crops.
        matrix: (B, 2, 3) photo pixels -> crop pixels.
        inverse: (B, 2, 3) crop pixels -> photo pixels.
    """

    images: Tensor
    matrix: Tensor
    inverse: Tensor

    def to_crop(self, points: Tensor) -> Tensor:
        """(B, N, 2) photo pixels -> crop pixels."""
        return apply_affine(self.matrix, points)

    def to_photo(self, points: Tensor) -> Tensor:
        """(B, N, 2) crop pixels -> photo pixels."""
        return apply_affine(self.inverse, points)


def crop_faces(images: Tensor, landmarks: Tensor, size: int = CROP_SIZE, margin: float = CROP_MARGIN,
               padding_mode: str = "zeros") -> FaceCrop:
    """Crop and align faces; differentiable in images and landmarks.

    Args:
        images: (B, C, H, W) photos.
        landmarks: (B, 68, 2) or (B, 5, 2) their landmarks in photo pixels.
        size: crop side S in pixels.
        margin: padding of the ArcFace framing, as a fraction of its side, on each side.
        padding_mode: outside the photo: "zeros" (black), "border" or "reflection".

    Returns:
        ``FaceCrop`` with (B, C, S, S) images.
    """
    B = images.shape[0]
    if landmarks.shape[0] != B:
        raise ValueError(f"images and landmarks disagree on the batch size: {B} and {landmarks.shape[0]}")
    matrix = crop_matrix(landmarks.to(images.dtype), size, margin)
    return FaceCrop(warp_image(images, matrix, (size, size), padding_mode), matrix, invert_affine(matrix))
