"""Face detection results, the landmark-detector interface, and photo-level detection with typed failures.

Coordinates are f2p pixels (0-based, centre of the top-left pixel at (0, 0)) of the photo as loaded by
``load_image`` (upright after EXIF orientation). Large photos are downscaled for detection and the results mapped
back with the pixel-centre rule ``x_photo = (x_small + 0.5) * W / w_small - 0.5``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from f2p.perception.detector_options import DETECTION_MAX_SIDE
from f2p.perception.image_io import ImageReadError, load_image


@dataclass(frozen=True)
class FaceDetection:
    """One face in a photo.

    Attributes:
        box: (4,) x0, y0, x1, y1, the outer edges of the face box in pixels (a box over pixel columns 10 to 19 has
            x0 = 9.5 and x1 = 19.5).
        score: the face detector's confidence on its own scale (dlib HOG: SVM margin, about 0 to 3;
            dlib mmod and SFD: a probability-like value).
        landmarks: (68, 2) iBUG-68 points in pixels.
        landmark_confidence: (68,) per-point confidence in [0, 1]; all ones for detectors that give none (dlib).
        detector: name of the detector that produced it (``LandmarkDetector.name``).
        dense_landmarks: (478, 2) MediaPipe face-mesh points in pixels (468 mesh points, then the subject's right
            and left irises, see ``f2p.face_mesh``), or None for detectors without a dense mesh.
        dense_confidence: (478,) per-point confidence in [0, 1] of ``dense_landmarks``, None with them.
    """

    box: Tensor
    score: float
    landmarks: Tensor
    landmark_confidence: Tensor
    detector: str
    dense_landmarks: Tensor | None = None
    dense_confidence: Tensor | None = None

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        x0, y0, x1, y1 = self.box.tolist()
        return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)

    def rescaled(self, scale_x: float, scale_y: float) -> FaceDetection:
        """The detection in an image resized by (scale_x, scale_y), with the pixel-centre rule."""
        scale = torch.tensor([scale_x, scale_y], dtype=self.landmarks.dtype)

        def resize(points: Tensor) -> Tensor:  # (..., 2) pixels
            return (points + 0.5) * scale - 0.5

        return replace(self, box=resize(self.box.view(2, 2)).view(4), landmarks=resize(self.landmarks),
                       dense_landmarks=None if self.dense_landmarks is None else resize(self.dense_landmarks))


@runtime_checkable
class LandmarkDetector(Protocol):
    """Finds faces and their 68 landmarks in one image."""

    name: str

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces in its pixel coordinates, largest box first (empty if none)."""
        ...


@dataclass(frozen=True)
class PhotoFaces:
    """The faces found in one photo.

    Attributes:
        path: the photo file.
        image_size: (H, W) of the upright photo.
        faces: detections, largest box first; never empty.
    """

    path: str
    image_size: tuple[int, int]
    faces: tuple[FaceDetection, ...]


@dataclass(frozen=True)
class DetectionFailure:
    """Why a photo gave no face: ``kind`` is "unreadable" (see ``ImageReadError``) or "no_face"."""

    path: str
    kind: Literal["unreadable", "no_face"]
    reason: str

    @property
    def message(self) -> str:
        """One line ``"path: reason"``."""
        return f"{self.path}: {self.reason}"


def largest_first(faces: list[FaceDetection]) -> list[FaceDetection]:
    """Faces ordered by box area, largest first (the order every ``LandmarkDetector`` returns)."""
    return sorted(faces, key=lambda face: face.area, reverse=True)


def to_uint8_hwc(image: Tensor) -> np.ndarray:
    """(3, H, W) image in [0, 1] -> (H, W, 3) contiguous uint8 numpy array, the input of dlib and face-alignment."""
    scaled = image.detach().clamp(0, 1).mul_(255).round_()  # in place on clamp's copy: two temporaries fewer
    return scaled.to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def detect_faces(image: Tensor, detector: LandmarkDetector, max_side: int = DETECTION_MAX_SIDE) -> list[FaceDetection]:
    """Detect faces, downscaling first when the longest side exceeds ``max_side``.

    Args:
        image: (3, H, W) RGB in [0, 1].
        detector: any ``LandmarkDetector``.
        max_side: longest side used for detection (antialiased bilinear downscale).

    Returns:
        Detections in the pixel coordinates of ``image``, largest box first.
    """
    _, H, W = image.shape
    factor = max(H, W) / max_side
    if factor <= 1.0:
        return detector.detect(image)
    size = (max(1, round(H / factor)), max(1, round(W / factor)))
    small = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return [face.rescaled(W / size[1], H / size[0]) for face in detector.detect(small.clamp(0, 1))]


def detect_photo(path: str | os.PathLike, detector: LandmarkDetector, all_faces: bool = False,
                 max_side: int = DETECTION_MAX_SIDE) -> PhotoFaces | DetectionFailure:
    """Load a photo and detect its faces; problems come back as a ``DetectionFailure``, never as an exception.

    Args:
        path: photo file.
        detector: any ``LandmarkDetector``.
        all_faces: keep every face (largest first) instead of only the largest.
        max_side: see ``detect_faces``.
    """
    try:
        image = load_image(path)
    except ImageReadError as error:
        return DetectionFailure(str(path), "unreadable", error.reason)
    faces = detect_faces(image, detector, max_side)
    if not faces:
        return DetectionFailure(str(path), "no_face", f"no face found (detector {detector.name})")
    return PhotoFaces(str(path), (image.shape[1], image.shape[2]), tuple(faces if all_faces else faces[:1]))
