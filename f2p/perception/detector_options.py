"""The landmark detectors' names and the detection size, torch-free so that the command line's help can show them
without loading PyTorch (``f2p.perception.detectors`` builds the detectors, ``f2p.perception.detection`` runs them)."""

from typing import Literal

DetectorName = Literal["auto", "fan", "dlib", "dlib-mmod", "mediapipe"]
DETECTOR_NAMES: tuple[str, ...] = ("auto", "fan", "dlib", "dlib-mmod", "mediapipe")

DETECTION_MAX_SIDE = 1024
"""Photos whose longest side exceeds this many pixels are downscaled to it for the detectors that are not
``full_resolution`` (dlib, FAN); MediaPipe's read photos at their own size (``f2p.perception.detection``)."""
TILE_FRACTION = 2 / 3
"""Side of the second look's tiles (``detection.second_look_tiles``) as a fraction of the photo's: faces up to a
third of the photo's side lie whole in one tile, and the detector sees them with up to 1.5 times more pixels."""
