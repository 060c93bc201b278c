"""Square, rotated regions of interest (MediaPipe's ``NormalizedRect``) in f2p pixels, and how MediaPipe builds them.

Coordinates. MediaPipe normalises positions by the image size with the image edges at 0 and 1; f2p puts the centre
of the top-left pixel at (0, 0). A ROI here has its centre in f2p pixels and its side in pixels, and maps ROI
coordinates ``(u, v)`` in [0, 1] (the ROI's edges at 0 and 1, u along its x axis) to the photo point
``centre + R(rotation) @ ((u - 0.5) * size, (v - 0.5) * size)``, which is MediaPipe's mapping
(``GetRotatedSubRectToRectTransformMatrix`` in mediapipe/calculators/tensor/image_to_tensor_utils.cc and
``LandmarkProjectionCalculator``) shifted by half a pixel at both ends. Pixel ``(i, j)`` of an S x S crop is
sampled at ``(u, v) = ((j + 0.5) / S, (i + 0.5) / S)``, and a point a model returns at ``x`` crop pixels (edges at 0
and S, MediaPipe's ``TensorsToLandmarksCalculator``) is at ``u = x / S``. MediaPipe mirrors model outputs the same
way (``x -> S - x``, tflite_tensors_to_landmarks_calculator.cc), and the Face Mesh model agrees: on a crop and on
its mirror image its points give ``x + x_mirrored`` = 191.8 crop pixels on average over five shared photos (192 for
edges at 0 and S, 191 for pixel centres at integers). MediaPipe's OpenCV CPU path instead samples crop pixel j at
``u = j / S``, half a crop pixel off.

Rotation is in radians with MediaPipe's sign: image y points down, so a positive rotation turns the ROI's x axis
from image-right towards image-down (clockwise as seen on screen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from f2p.perception.landmark_metrics import points_box


@dataclass(frozen=True)
class Roi:
    """A square region of a photo.

    Attributes:
        centre_x, centre_y: its centre in f2p pixels.
        size: its side in pixels.
        rotation: radians (see the module docstring).
    """

    centre_x: float
    centre_y: float
    size: float
    rotation: float = 0.0

    def to_image(self, points: Tensor) -> Tensor:
        """(..., 2) ROI coordinates (u, v), [0, 1] across the ROI -> (..., 2) photo pixels."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        rotation = points.new_tensor([[cos, -sin], [sin, cos]])
        offsets = (points - 0.5) * self.size
        return offsets @ rotation.T + points.new_tensor([self.centre_x, self.centre_y])


def whole_image_roi(height: int, width: int) -> Roi:
    """The upright square that letterboxes a (H, W) image: its centre, its longer side (MediaPipe's ``PadRoi`` with
    ``keep_aspect_ratio: true`` on the whole image)."""
    return Roi((width - 1) / 2, (height - 1) / 2, float(max(height, width)))


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped into [-pi, pi) (``NormalizeRadians`` of detections_to_rects_calculator.cc)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_between(start: Tensor, end: Tensor, target: float = 0.0) -> float:
    """The ROI rotation that turns the (2,) pixel points ``start`` -> ``end`` to the angle ``target`` (radians):
    ``DetectionsToRectsCalculator::ComputeRotation``, ``target - atan2(-(y1 - y0), x1 - x0)``."""
    dx, dy = (end - start).tolist()
    return normalize_radians(target - math.atan2(-dy, dx))


def square_roi(box: Tensor, rotation: float, scale: float) -> Roi:
    """A box turned into a ROI as ``DetectionsToRectsCalculator`` + ``RectTransformationCalculator`` with
    ``square_long: true`` do: centred on the box, side = ``scale`` x the box's longer side, rotated by ``rotation``.

    Args:
        box: (4,) x0, y0, x1, y1 in pixels, axis-aligned in the photo.
        rotation: radians.
        scale: ``scale_x`` = ``scale_y`` of the transformation.
    """
    x0, y0, x1, y1 = box.tolist()
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale, rotation)


def points_roi(points: Tensor, start: int, end: int, scale: float) -> Roi:
    """The ROI of a set of landmarks (``LandmarksToDetectionCalculator`` then ``square_roi``): their axis-aligned
    box, rotated so that ``points[start]`` -> ``points[end]`` is level, scaled by ``scale``.

    Args:
        points: (N, 2) pixels.
        start, end: indices into ``points`` of the rotation vector.
        scale: see ``square_roi``.
    """
    return square_roi(points_box(points), rotation_between(points[start], points[end]), scale)
