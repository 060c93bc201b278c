"""Face detection results, the landmark-detector interface, and photo-level detection with typed failures.

Coordinates are f2p pixels (0-based, centre of the top-left pixel at (0, 0)) of the photo as loaded by
``load_image`` (upright after EXIF orientation). MediaPipe's detectors (``LandmarkDetector.full_resolution``) read
photos at their own size and search small faces on tiles themselves (``f2p.perception.mediapipe.tiles``). For the
others (dlib, FAN), large photos are downscaled for detection and the results mapped back with the pixel-centre
rule ``x_photo = (x_small + 0.5) * W / w_small - 0.5``.

Second look (downscaling detectors): a photo larger than the detection size loses detail in the downscale, and a
face of a few per cent of its side (a person far away in a wide shot or a video frame) becomes too small for the
detectors. When such a photo gives no face, ``detect_faces`` runs the detector again on five overlapping tiles, each
``TILE_FRACTION`` of the photo's side (the four corners and the centre), downscaled less, and keeps each face once
(the copy seen nearest its tile's centre, whose surroundings the landmark models saw whole). Photos at or under the
detection size get no second look: upsampling adds no detail. It costs nothing when a face is found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from f2p.perception.detector_options import DETECTION_MAX_SIDE, TILE_FRACTION
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

    def shifted(self, dx: float, dy: float) -> FaceDetection:
        """The detection in an image whose origin is (dx, dy) pixels up and left of this one's (a tile's
        detection in its photo)."""
        offset = torch.tensor([dx, dy], dtype=self.landmarks.dtype)
        return replace(self, box=self.box + offset.repeat(2), landmarks=self.landmarks + offset,
                       dense_landmarks=None if self.dense_landmarks is None else self.dense_landmarks + offset)


@runtime_checkable
class LandmarkDetector(Protocol):
    """Finds faces and their 68 landmarks in one image."""

    name: str
    full_resolution: bool
    """True: ``detect_faces`` hands the detector photos at their own size (it scales them itself); False: photos
    larger than the detection size are downscaled for it, with a second look on tiles."""

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
    """Detect faces: with a ``full_resolution`` detector in the photo as it is; otherwise downscaling first when the
    longest side exceeds ``max_side``, and when such an image gives none, looking again at overlapping tiles
    (``second_look_tiles``, see the module docstring).

    Args:
        image: (3, H, W) RGB in [0, 1].
        detector: any ``LandmarkDetector``.
        max_side: longest side used for detection (antialiased bilinear downscale), of the image and of each tile.

    Returns:
        Detections in the pixel coordinates of ``image``, largest box first.
    """
    if detector.full_resolution:
        return detector.detect(image)
    faces = detect_downscaled(image, detector, max_side)
    _, H, W = image.shape
    if faces or max(H, W) <= max_side:
        return faces
    seen = []  # (distance of the box centre from its tile's centre in tile sides, detection in photo pixels)
    for x0, y0, x1, y1 in second_look_tiles(H, W):
        centre = torch.tensor([(x1 - x0) / 2, (y1 - y0) / 2])
        for face in detect_downscaled(image[:, y0:y1, x0:x1].contiguous(), detector, max_side):
            off_centre = float(((face.box.view(2, 2).mean(0) - centre) / centre.mul(2)).abs().max())
            seen.append((off_centre, face.shifted(x0, y0)))
    kept: list[FaceDetection] = []
    for _, face in sorted(seen, key=lambda item: item[0]):
        if all(float(box_iou(face.box, other.box)) < DUPLICATE_IOU for other in kept):
            kept.append(face)
    return largest_first(kept)


DUPLICATE_IOU = 0.3
"""Two detections of the second look whose boxes overlap by more than this (intersection over union) are one face."""


def second_look_tiles(H: int, W: int) -> list[tuple[int, int, int, int]]:
    """The tiles of the second look in an (H, W) image: (x0, y0, x1, y1) pixel bounds (end exclusive) of the four
    corner tiles and the centre one, each ``TILE_FRACTION`` of the image's height and width."""
    th, tw = max(1, round(H * TILE_FRACTION)), max(1, round(W * TILE_FRACTION))
    starts = [(x, y) for y in (0, H - th) for x in (0, W - tw)] + [((W - tw) // 2, (H - th) // 2)]
    return [(x, y, x + tw, y + th) for x, y in starts]


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """(..., 4) boxes x0, y0, x1, y1 -> (...) intersection over union."""
    lo, hi = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    intersection = (hi - lo).clamp_min(0).prod(-1)
    area = lambda box: (box[..., 2:] - box[..., :2]).clamp_min(0).prod(-1)  # noqa: E731
    return intersection / (area(a) + area(b) - intersection).clamp_min(1e-8)


def detect_downscaled(image: Tensor, detector: LandmarkDetector, max_side: int) -> list[FaceDetection]:
    """``detector`` on ``image``, downscaled first when its longest side exceeds ``max_side``, the detections mapped
    back to ``image``'s pixels: one pass, without ``detect_faces``' second look."""
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
