"""One photo made ready for fitting: loaded, landmarked, aligned to a crop, masked.

Shared by ``reconstruct``, the fitting data module and the regressor's photo data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from f2p.errors import PathError
from f2p.perception.annotations import AnnotationError, read_annotation, read_face_set
from f2p.perception.crop import CROP_SIZE, crop_faces
from f2p.perception.detection import LandmarkDetector, detect_faces
from f2p.perception.image_io import ImageReadError, load_image
from f2p.perception.masks import face_region_mask

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MASK_SOFTNESS = 1.5  # pixels of soft edge on the face-region mask


class PhotoError(PathError):
    """A photo that cannot be fitted (unreadable, no face, no landmarks for it)."""


@dataclass(frozen=True)
class PhotoSample:
    """A photo aligned for fitting (single item, no batch dimension).

    Attributes:
        path: the photo file.
        photo: (3, H, W) the upright photo in [0, 1].
        landmarks: (68, 2) landmarks in photo pixels; confidence: (68,).
        source: where the landmarks came from (detector name or annotation file).
        crop: (3, S, S) aligned crop; crop_landmarks: (68, 2) in crop pixels.
        to_photo: (2, 3) crop pixels -> photo pixels.
        face_mask: (1, S, S) soft skin-region mask of the crop.
    """

    path: str
    photo: Tensor
    landmarks: Tensor
    confidence: Tensor
    source: str
    crop: Tensor
    crop_landmarks: Tensor
    to_photo: Tensor
    face_mask: Tensor


def find_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted, de-duplicated list of image paths.

    Files are kept whatever their suffix, and missing paths too, so that a bad input is reported in the results
    rather than skipped; folders contribute files with an image suffix.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                    found[child] = None
        else:
            found[path] = None
    return list(found)


class LandmarkFile:
    """Landmarks given by the user instead of a detector.

    Either one annotation file (``.pts``, ``.mat``, ``.npy``, ``.json``, ``.txt``) used for a single photo, or an
    ``annotations.json`` face-set file whose entries are matched to photos by file name.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.by_name: dict[str, Tensor] | None = None
        self.single: Tensor | None = None
        if self.path.name == "annotations.json":
            entries = read_face_set(self.path.parent)
            self.by_name = {Path(key).name: entry.annotation.points for key, entry in entries.items()
                            if entry.annotation.points is not None and len(entry.annotation.points) == 68}
        else:
            self.single = read_annotation(self.path).points

    def landmarks_for(self, photo: Path) -> Tensor:
        """(68, 2) landmarks of ``photo`` in photo pixels; ``PhotoError`` if the file has none for it."""
        if self.single is not None:
            return self.single
        points = self.by_name.get(photo.name)
        if points is None:
            raise PhotoError(photo, f"no 68-point landmarks for this photo in {self.path}")
        return points


def load_sample(path: str | os.PathLike, detector: LandmarkDetector | None, landmark_file: LandmarkFile | None = None,
                crop_size: int = CROP_SIZE) -> PhotoSample:
    """Load, landmark (detector or file), crop and mask one photo.

    Raises:
        PhotoError: unreadable file, no face, or no landmarks for it in ``landmark_file``.
    """
    path = Path(path)
    if landmark_file is None and detector is None:
        raise ValueError("load_sample needs a detector or a landmark file")
    try:
        photo = load_image(path)
    except ImageReadError as error:
        raise PhotoError(path, error.reason) from None
    if landmark_file is not None:
        landmarks = landmark_file.landmarks_for(path).float()
        confidence, source = torch.ones(68), str(landmark_file.path.name)
    else:
        faces = detect_faces(photo, detector)
        if not faces:
            raise PhotoError(path, f"no face found (detector {detector.name})")
        face = faces[0]
        landmarks, confidence, source = face.landmarks.float(), face.landmark_confidence.float(), face.detector
    return align_sample(path, photo, landmarks, confidence, source, crop_size)


def align_sample(path: str | os.PathLike, photo: Tensor, landmarks: Tensor, confidence: Tensor, source: str,
                 crop_size: int = CROP_SIZE) -> PhotoSample:
    """Crop and mask a loaded photo whose (68, 2) landmarks (photo pixels) and (68,) confidence are known."""
    crop = crop_faces(photo[None], landmarks[None], size=crop_size)
    crop_landmarks = crop.to_crop(landmarks[None])[0]
    mask = face_region_mask(crop_landmarks[None], crop_size, crop_size, softness=MASK_SOFTNESS)[0]
    return PhotoSample(str(path), photo, landmarks, confidence, source, crop.images[0].clamp(0, 1), crop_landmarks,
                       crop.inverse[0], mask)


__all__ = ["AnnotationError", "LandmarkFile", "PhotoError", "PhotoSample", "align_sample", "find_images", "load_sample"]
