"""Choose a landmark detector by name: "fan", "dlib", "dlib-mmod", or "auto" (FAN when it can run without a
download, else dlib)."""

from __future__ import annotations

import logging
from typing import Literal

from f2p.perception.detection import LandmarkDetector
from f2p.perception.dlib_detector import DlibDetector
from f2p.perception.fan_detector import FanDetector, missing_fan_weights

logger = logging.getLogger("f2p")

DetectorName = Literal["auto", "fan", "dlib", "dlib-mmod"]
DETECTOR_NAMES: tuple[str, ...] = ("auto", "fan", "dlib", "dlib-mmod")


def create_detector(name: DetectorName = "auto", device: str = "cpu", allow_download: bool = False) -> LandmarkDetector:
    """Build a detector and log one line on logger "f2p" saying which one and why.

    Args:
        name: "fan" (FAN + SFD), "dlib" (dlib HOG + 68-point shape predictor), "dlib-mmod" (dlib's CNN face
            detector: finds more faces and poses, but takes seconds per photo on a CPU) or "auto": FAN when its
            weights are on disk (or ``allow_download``), otherwise dlib HOG. "auto" never starts a download on its own.
        device: torch device for FAN (dlib runs on the CPU).
        allow_download: let FAN download missing weights (online use).

    Raises:
        DetectorUnavailableError: name "fan" with missing weights and ``allow_download`` False.
    """
    if name not in DETECTOR_NAMES:
        raise ValueError(f"detector must be one of {DETECTOR_NAMES}, got {name!r}")
    missing = missing_fan_weights()
    if name == "fan" or (name == "auto" and (not missing or allow_download)):
        detector: LandmarkDetector = FanDetector(device=device, allow_download=allow_download)
        why = "requested" if name == "fan" else ("FAN weights found" if not missing else "downloads allowed")
    else:
        detector = DlibDetector(cnn=name == "dlib-mmod")
        why = "requested" if name != "auto" else f"FAN weights not found ({', '.join(map(str, missing))})"
    logger.info("landmark detector: %s (%s)", detector.name, why)
    return detector
