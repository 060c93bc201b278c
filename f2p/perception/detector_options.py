"""The landmark detectors' names and the detection size, torch-free so that the command line's help can show them
without loading PyTorch (``f2p.perception.detectors`` builds the detectors, ``f2p.perception.detection`` runs them)."""

from typing import Literal

DetectorName = Literal["auto", "fan", "dlib", "dlib-mmod", "mediapipe"]
DETECTOR_NAMES: tuple[str, ...] = ("auto", "fan", "dlib", "dlib-mmod", "mediapipe")

DETECTION_MAX_SIDE = 1024
"""Photos whose longest side exceeds this many pixels are downscaled to it for detection."""
