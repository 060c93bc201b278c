"""One photo made ready for fitting: loaded, landmarked, aligned to a crop, masked.

Shared by ``reconstruct``, the fitting data module and the regressor's photo data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from f2p.errors import PathError
from f2p.face_mesh import NUM_MESH_POINTS
from f2p.naming import path_key
from f2p.perception.annotations import AnnotationError, is_face_set, read_annotation, read_face_set_file
from f2p.perception.crop import CROP_SIZE, crop_faces
from f2p.perception.detection import LandmarkDetector, detect_faces
from f2p.perception.image_io import ImageReadError, load_image
from f2p.perception.masks import face_region_mask
from f2p.perception.plausible import implausible_landmarks

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
        dense: (468, 2) MediaPipe face-mesh points in photo pixels (``face_mesh``) when the detector gives them,
            else None; dense_confidence: (468,); crop_dense: (468, 2) in crop pixels.
        faces_found: faces the detector found in the photo; the sample is the largest (1 for given landmarks).
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
    dense: Tensor | None = None
    dense_confidence: Tensor | None = None
    crop_dense: Tensor | None = None
    faces_found: int = 1


class LandmarkFile:
    """Landmarks given by the user instead of a detector, each matched to its own photo.

    Either one annotation file (``.pts``, ``.mat``, ``.npy``, ``.json``, ``.txt``), which holds the landmarks of one
    photo: the photo of the same stem (``img.pts`` for ``img.jpg``), or the run's only photo; or an
    annotations file in the face-set layout (``annotations.json``, or any JSON object of that layout) whose entries
    are matched to photos by file name. A photo the file has no
    landmarks for fails alone (``PhotoError``), never takes another photo's.

    Args:
        path: the landmark file.
        photos: the run's photos (decides which photo a single annotation file belongs to).
    """

    def __init__(self, path: str | os.PathLike, photos: Sequence[Path] = ()) -> None:
        self.path = Path(path)
        self.by_name: dict[str, Tensor] | None = None
        self.single: Tensor | None = None
        self.owner: str | None = None
        if is_face_set(self.path):
            entries = read_face_set_file(self.path)
            self.by_name = {Path(key).name: entry.annotation.points for key, entry in entries.items()
                            if entry.annotation.points is not None and len(entry.annotation.points) == 68}
        else:
            self.single = read_annotation(self.path).points
            same_stem = [photo for photo in photos if Path(photo).stem == self.path.stem]
            owners = same_stem or (list(photos) if len(photos) == 1 else [])
            self.owner = path_key(owners[0]) if len(owners) == 1 else None

    def landmarks_for(self, photo: Path) -> Tensor:
        """(68, 2) landmarks of ``photo`` in photo pixels; ``PhotoError`` if the file has none for it."""
        if self.single is not None:
            if self.owner != path_key(photo):
                raise PhotoError(photo, f"no landmarks for this photo: {self.path} holds one photo's landmarks "
                                        f"(the photo named {self.path.stem}.*, or the only photo of a run)")
            return self.single
        points = self.by_name.get(photo.name)
        if points is None:
            raise PhotoError(photo, f"no 68-point landmarks for this photo in {self.path}")
        return points


def load_sample(path: str | os.PathLike, detector: LandmarkDetector | None, landmark_file: LandmarkFile | None = None,
                crop_size: int = CROP_SIZE, mask: bool = True) -> PhotoSample:
    """Load, landmark (detector or file), crop and mask one photo (``mask``: as ``align_sample``'s).

    Raises:
        PhotoError: unreadable file, no face, no landmarks for it in ``landmark_file``, or landmarks no face could
            have (``perception.plausible``).
    """
    path = Path(path)
    if landmark_file is None and detector is None:
        raise ValueError("load_sample needs a detector or a landmark file")
    try:
        photo = load_image(path)
    except ImageReadError as error:
        raise PhotoError(path, error.reason) from None
    if landmark_file is None:
        return detect_sample(path, photo, detector, crop_size, mask)
    found = FaceLandmarks(landmark_file.landmarks_for(path).float(), torch.ones(68), str(landmark_file.path.name))
    check_landmarks(path, photo, found)
    return align_sample(path, photo, found.landmarks, found.confidence, found.source, crop_size, mask=mask)


@dataclass(frozen=True)
class FaceLandmarks:
    """The landmarks of one face in photo pixels: (68, 2) points, (68,) confidence, their source (detector name),
    and (468, 2) dense points with (468,) confidences when the detector gives them; ``faces``: how many faces the
    detector found (these are the largest's)."""

    landmarks: Tensor
    confidence: Tensor
    source: str
    dense: tuple[Tensor, Tensor] | None = None
    faces: int = 1


def detect_landmarks(path: str | os.PathLike, photo: Tensor, detector: LandmarkDetector) -> FaceLandmarks:
    """The checked landmarks of the largest face ``detector`` finds in a loaded (3, H, W) ``photo`` (a video
    frame, ``path`` naming it).

    Raises:
        PhotoError: no face, or landmarks no face could have.
    """
    faces = detect_faces(photo, detector)
    if not faces:
        raise PhotoError(path, f"no face found (detector {detector.name})")
    face = faces[0]
    dense = None
    if face.dense_landmarks is not None:
        dense = (face.dense_landmarks[:NUM_MESH_POINTS].float(), face.dense_confidence[:NUM_MESH_POINTS].float())
    found = FaceLandmarks(face.landmarks.float(), face.landmark_confidence.float(), face.detector, dense, len(faces))
    check_landmarks(path, photo, found)
    return found


def check_landmarks(path: str | os.PathLike, photo: Tensor, found: FaceLandmarks) -> None:
    """``PhotoError`` when ``found`` are landmarks no face in ``photo`` could have (``perception.plausible``)."""
    problem = implausible_landmarks(found.landmarks, tuple(photo.shape[-2:]))
    if problem:
        raise PhotoError(path, f"{problem} (from {found.source})")


def detect_sample(path: str | os.PathLike, photo: Tensor, detector: LandmarkDetector,
                  crop_size: int = CROP_SIZE, mask: bool = True) -> PhotoSample:
    """``detect_landmarks`` of a loaded photo, aligned (``align_sample``, with its ``mask``)."""
    found = detect_landmarks(path, photo, detector)
    return align_sample(path, photo, found.landmarks, found.confidence, found.source, crop_size, found.dense, mask,
                        found.faces)


def align_sample(path: str | os.PathLike, photo: Tensor, landmarks: Tensor, confidence: Tensor, source: str,
                 crop_size: int = CROP_SIZE, dense: tuple[Tensor, Tensor] | None = None,
                 mask: bool = True, faces_found: int = 1) -> PhotoSample:
    """Crop and mask a loaded photo whose (68, 2) landmarks (photo pixels) and (68,) confidence are known, with
    its (468, 2) dense points and (468,) confidences when ``dense`` gives them. ``mask=False`` leaves the
    face-region mask at 1 everywhere, for runs that render nothing (``pipeline.run_renders``: the
    landmark-only ``fast`` schedule without pictures or the identity metric), as the soft mask costs more than the
    crop. ``faces_found``: how many faces the detector found in the photo (``PhotoSample.faces_found``)."""
    crop = crop_faces(photo[None], landmarks[None], size=crop_size)
    crop_landmarks = crop.to_crop(landmarks[None])[0]
    face_mask = (face_region_mask(crop_landmarks[None], crop_size, crop_size, softness=MASK_SOFTNESS)[0] if mask
                 else torch.ones(1, crop_size, crop_size))
    points, point_confidence = dense if dense is not None else (None, None)
    crop_dense = None if points is None else crop.to_crop(points[None])[0]
    return PhotoSample(str(path), photo, landmarks, confidence, source, crop.images[0].clamp(0, 1), crop_landmarks,
                       crop.inverse[0], face_mask, points, point_confidence, crop_dense, faces_found)


class PhotoLoader:
    """Photo file -> ``PhotoSample``, with landmarks from a detector or from a landmark file.

    The landmark file is read at once (a bad file fails before any photo is fitted); the detector is created on
    first use, so that a loader can be sent to data-loader worker processes before any model is loaded.

    Args:
        landmarks: a detector name ("auto", "fan", "dlib", ...: ``perception.detectors``) or the path of a landmark
            file (see ``LandmarkFile``).
        crop_size: side of the aligned crop.
        device: torch device of the detector.
        photos: the run's photos (see ``LandmarkFile``).
        mask: make each crop's face-region mask (``align_sample``); False for a run that renders nothing.

    Raises:
        AnnotationError, OSError: an unreadable landmark file.
    """

    def __init__(self, landmarks: str = "auto", crop_size: int = CROP_SIZE, device: str = "cpu",
                 photos: Sequence[Path] = (), mask: bool = True) -> None:
        from f2p.perception.detectors import DETECTOR_NAMES

        self.crop_size = crop_size
        self.device = device
        self.mask = mask
        self.detector_name = landmarks if landmarks in DETECTOR_NAMES else None
        self.landmark_file = None if self.detector_name else LandmarkFile(landmarks, photos)
        self._detector: LandmarkDetector | None = None

    def __call__(self, path: str | os.PathLike) -> PhotoSample:
        """The photo at ``path``, aligned; ``PhotoError`` when it cannot be fitted."""
        if self.detector_name is not None and self._detector is None:
            from f2p.perception.detectors import create_detector

            self._detector = create_detector(self.detector_name, device=self.device)
        return load_sample(path, self._detector, self.landmark_file, self.crop_size, self.mask)


__all__ = ["AnnotationError", "LandmarkFile", "PhotoError", "PhotoLoader", "PhotoSample", "align_sample",
           "FaceLandmarks", "check_landmarks", "detect_landmarks", "detect_sample", "load_sample"]
