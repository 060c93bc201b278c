"""Choose a landmark detector by name: "auto" (the most accurate one that can run from the files on disk), "fan",
"dlib", "dlib-mmod" or "mediapipe"."""

from __future__ import annotations

import logging

from f2p.perception.combined import CombinedDetector
from f2p.perception.detection import LandmarkDetector
from f2p.perception.detector_options import DETECTOR_NAMES, DetectorName
from f2p.perception.dlib_detector import DlibDetector
from f2p.perception.mediapipe.detector import MediaPipeDetector
from f2p.perception.mediapipe.models import missing_model_files

logger = logging.getLogger("f2p")


def create_detector(name: DetectorName = "auto", device: str = "cpu", allow_download: bool = False) -> LandmarkDetector:
    """Build a detector and log one line on logger "f2p" saying which one and why.

    Args:
        name: "fan" (FAN + SFD), "dlib" (dlib HOG + 68-point shape predictor), "dlib-mmod" (dlib's CNN face
            detector: finds more faces and poses, but takes seconds per photo on a CPU), "mediapipe" (MediaPipe's
            BlazeFace + Face Mesh + iris models on LiteRT: 478 dense points as well, robust to in-plane rotation)
            or "auto": MediaPipe's faces and dense points with dlib's 68 points (``combined.CombinedDetector``)
            when the MediaPipe models are on disk, otherwise FAN when its weights are, otherwise dlib HOG. "auto"
            only uses files already on disk: it never starts a download, whatever ``allow_download`` says.
        device: torch device for FAN (dlib and MediaPipe run on the CPU).
        allow_download: let "fan" or "mediapipe" download missing weights (online use; refused while
            ``F2P_OFFLINE`` is set).

    Raises:
        DetectorUnavailableError: name "fan" with missing weights and ``allow_download`` False or ``F2P_OFFLINE``.
        ModelNotFoundError: name "mediapipe" with missing model files and ``allow_download`` False.
        DownloadError: a download that was refused (``F2P_OFFLINE``) or failed.
    """
    if name not in DETECTOR_NAMES:
        raise ValueError(f"detector must be one of {DETECTOR_NAMES}, got {name!r}")
    why = "requested"
    if name == "auto":
        detector, why = _auto_detector(device)
    elif name == "mediapipe":
        detector = MediaPipeDetector(download=allow_download)
    elif name == "fan":
        from f2p.perception.fan_detector import FanDetector  # face_alignment's import (0.6 s) only where FAN runs

        detector = FanDetector(device=device, allow_download=allow_download)
    else:
        detector = DlibDetector(cnn=name == "dlib-mmod")
    logger.info("landmark detector: %s (%s)", detector.name, why)
    return detector


def _auto_detector(device: str) -> tuple[LandmarkDetector, str]:
    """The detector "auto" stands for, from the files on disk, and why."""
    missing_mediapipe = missing_model_files()
    if not missing_mediapipe:
        return (CombinedDetector(MediaPipeDetector(), DlibDetector()),
                "auto: MediaPipe models found; MediaPipe's faces and dense points with dlib's 68 points, the most "
                "accurate combination measured, see f2p.perception.combined")
    not_mediapipe = f"MediaPipe models not found ({', '.join(missing_mediapipe)}; a run with downloads allowed "\
                    "fetches them)"
    from f2p.perception.fan_detector import FanDetector, missing_fan_weights

    missing_fan = missing_fan_weights()
    if not missing_fan:
        return FanDetector(device=device), f"auto: {not_mediapipe}; FAN weights found"
    return DlibDetector(), f"auto: {not_mediapipe}; FAN weights not found ({', '.join(map(str, missing_fan))})"
