"""FAN 2D landmarks (the ``face_alignment`` package, 2DFAN-4) with its SFD or BlazeFace face detector.

Weights. ``face_alignment`` downloads its weights on first use into torch hub's checkpoint folder
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). Offline, copy these files there
from a machine that has them (same names, nothing to unpack):

- ``2DFAN4-11f355bf06.pth.tar``  landmark network (https://www.adrianbulat.com/downloads/python-fan/)
- ``s3fd-619a316812.pth``        SFD face detector (same site), for ``face_detector="sfd"``
- ``blazeface.pth`` and ``anchors.npy``  BlazeFace (github.com/hollance/BlazeFace-PyTorch), for
  ``face_detector="blazeface"``

The exact names come from ``face_alignment``'s own URL tables (``fan_weight_files`` lists them for the installed
version). ``FanDetector`` never downloads unless ``allow_download=True``, and not even then while ``F2P_OFFLINE`` is
set (``f2p.morphable.download.downloads_disabled``): missing weights are then refused before ``face_alignment`` can
fetch them.

Coordinates: FAN's points and SFD's boxes are taken as ``face_alignment`` returns them. Its heatmap decoding
inherits a 1-based Lua convention, so its points may sit up to about 1 px off f2p's pixel centres; this was not
measurable here (no weights offline). The FAN landmark test reports the mean offset against the annotations.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from face_alignment import FaceAlignment, LandmarksType
from face_alignment.api import models_urls as fan_urls
from face_alignment.detection.blazeface.blazeface_detector import models_urls as blazeface_urls
from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls
from torch import Tensor

from f2p.morphable.download import OFFLINE_ENV, downloads_disabled
from f2p.perception.detection import FaceDetection, largest_first, to_uint8_hwc

FAN_NETWORK = "2DFAN-4"
FACE_DETECTOR_URLS: dict[str, tuple[str, ...]] = {
    "sfd": (sfd_urls["s3fd"],),
    "blazeface": (blazeface_urls["blazeface_weights"], blazeface_urls["blazeface_anchors"]),
}


class DetectorUnavailableError(RuntimeError):
    """A detector that cannot be built here (missing weights and downloads not allowed)."""


def checkpoint_dir() -> Path:
    """torch hub's checkpoint folder, where ``face_alignment`` looks for (and downloads) its weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_weight_files(face_detector: str = "sfd") -> list[Path]:
    """Paths of the files ``face_alignment`` loads for 2D FAN with ``face_detector`` ("sfd" or "blazeface")."""
    if face_detector not in FACE_DETECTOR_URLS:
        raise ValueError(f"face_detector must be one of {sorted(FACE_DETECTOR_URLS)}, got {face_detector!r}")
    urls = (fan_urls[FAN_NETWORK], *FACE_DETECTOR_URLS[face_detector])
    return [checkpoint_dir() / os.path.basename(urlparse(url).path) for url in urls]


def missing_fan_weights(face_detector: str = "sfd") -> list[Path]:
    """The files of ``fan_weight_files`` that are not on disk."""
    return [path for path in fan_weight_files(face_detector) if not path.is_file()]


def fan_weights_available(face_detector: str = "sfd") -> bool:
    """True when every FAN weight file is on disk, so ``FanDetector`` needs no download."""
    return not missing_fan_weights(face_detector)


def fan_detections(landmarks: list[np.ndarray] | None, scores: list[np.ndarray] | None,
                   boxes: list[np.ndarray] | None, flip_input: bool, name: str) -> list[FaceDetection]:
    """``FaceAlignment.get_landmarks_from_image`` results -> detections, largest box first.

    Args:
        landmarks: per face (68, 2) points, or None when no face was found.
        scores: per face (68,) heatmap peaks (summed over the flipped pass when ``flip_input``).
        boxes: per face (5,) x0, y0, x1, y1, score.
        flip_input: whether the heatmaps are the sum of two passes (the peaks are then halved).
        name: detector name to record.
    """
    if not landmarks:
        return []
    passes = 2.0 if flip_input else 1.0
    faces = [
        FaceDetection(
            box=torch.as_tensor(np.asarray(box[:4]), dtype=torch.float32),
            score=float(box[4]),
            landmarks=torch.as_tensor(np.asarray(points)[:, :2], dtype=torch.float32),
            landmark_confidence=(torch.as_tensor(np.asarray(peaks), dtype=torch.float32).reshape(-1) / passes)
            .clamp(0, 1),
            detector=name,
        )
        for points, peaks, box in zip(landmarks, scores, boxes)
    ]
    return largest_first(faces)


class FanDetector:
    """``LandmarkDetector`` with FAN (``face_alignment`` in eager mode, ``compile=False``).

    Args:
        device: torch device string ("cpu", "cuda", ...).
        face_detector: "sfd" (accurate) or "blazeface" (fast, frontal, close-up faces).
        flip_input: average with a horizontally flipped pass (more accurate, twice the cost).
        allow_download: let ``face_alignment`` download missing weights (refused while ``F2P_OFFLINE`` is set);
            otherwise missing weights raise.

    Raises:
        DetectorUnavailableError: weights missing and ``allow_download`` False or ``F2P_OFFLINE`` set.
    """

    full_resolution = False
    """Large photos are downscaled for it (``detection.detect_faces``): SFD's time grows with the pixels."""

    def __init__(self, device: str = "cpu", face_detector: str = "sfd", flip_input: bool = True,
                 allow_download: bool = False) -> None:
        missing = missing_fan_weights(face_detector)
        if missing and allow_download and downloads_disabled():
            raise DetectorUnavailableError(
                f"FAN weights not found: {', '.join(map(str, missing))}, and {OFFLINE_ENV} forbids downloading them "
                f"(place them there by hand, or unset {OFFLINE_ENV}; see f2p.perception.fan_detector)")
        if missing and not allow_download:
            raise DetectorUnavailableError(
                f"FAN weights not found: {', '.join(map(str, missing))} (place them there for offline use, or allow "
                "downloading; see f2p.perception.fan_detector)")
        self.name = f"fan-{face_detector}"
        self.flip_input = flip_input
        self._model = FaceAlignment(LandmarksType.TWO_D, device=device, face_detector=face_detector,
                                    flip_input=flip_input, compile=False)

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces, largest box first."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            landmarks, scores, boxes = self._model.get_landmarks_from_image(
                to_uint8_hwc(image), return_bboxes=True, return_landmark_score=True)
        return fan_detections(landmarks, scores, boxes, self.flip_input, self.name)
