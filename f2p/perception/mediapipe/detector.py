"""``MediaPipeDetector``: MediaPipe's face pipeline (BlazeFace, two Face Mesh passes, iris) as an f2p
``LandmarkDetector``.

Per photo, as MediaPipe's face_landmark_front_cpu.pbtxt + iris_tracking_cpu.pbtxt do for the first frame of a
video:

1. BlazeFace finds the faces: the short-range model, as MediaPipe's Face Mesh does; by default the full-range
   model is tried next when that gives no face (it finds faces too small for the short-range one).
2. For each face, Face Mesh runs on the ROI of the detection, then again on the ROI of its own landmarks
   (MediaPipe's tracking ROI, which fits the face better than the detector's box); the second pass is kept. Faces
   whose presence score falls below 0.5 in either pass are dropped.
3. The iris model refines the eye regions and adds the irises: 478 points (``FaceDetection.dense_landmarks``),
   whose iBUG-68 view (``f2p.face_mesh.ibug68_view``) gives ``FaceDetection.landmarks``.

Upside-down photos: BlazeFace finds faces turned by 180 degrees, but with its eye keypoints misplaced, so Face Mesh
would mesh them as if upright (a plausible face, wrong everywhere). Each photo is therefore also shown to the first
BlazeFace model (the short-range one) turned by 180 degrees, and when the turned photo's best face scores higher by
``TURNED_MARGIN``, its faces are kept (their keypoints, and so the mesh's ROIs, then turned the right way; Face Mesh
reads a ROI at any roll). On the 24 shared photos and 6 of them turned, the right orientation scored higher every
time (0.66-0.99 against 0.00-0.78); it costs one more BlazeFace pass per photo whose upright score is under
1 - ``TURNED_MARGIN`` (at or above it, no turned score can win).

Rolled faces: BlazeFace misses some faces rolled by about 45 degrees (its training faces are mostly upright, the
full-range model's all), so a photo in which no model finds a face is shown to both turned by ``ROTATIONS_ON_MISS``
and the best-scoring turn's faces are meshed (README, "Perception").

Small faces in large photos: the detector reads the photo at its own resolution (``full_resolution``; every crop of
a shrunk face reads a box-filtered level of the photo, ``crop.ImagePyramid``), and when no model finds a face in the
whole photo, turned or not, the full-range model is shown tiles of it (``tiles``).

Confidences are the second pass's presence score for every point (the models give no per-point confidence).
``FaceDetection.box`` and ``score`` are BlazeFace's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS
from f2p.face_mesh import NUM_DENSE_POINTS, ibug68_view
from f2p.perception.detection import FaceDetection, largest_first
from f2p.perception.mediapipe.blazeface import BLAZEFACE_MODELS, BlazeFace, FaceBox
from f2p.perception.mediapipe.crop import ImagePyramid
from f2p.perception.mediapipe.iris import IrisLandmarks
from f2p.perception.mediapipe.mesh import MIN_PRESENCE, FaceMesh, detection_roi, landmarks_roi, upright_box_roi
from f2p.perception.mediapipe.roi import Roi
from f2p.perception.mediapipe.tiles import merged_boxes, tile_levels

NAME = "mediapipe"
TURNED_MARGIN = 0.1
"""How much higher the best BlazeFace score of a photo turned by 180 degrees must be for the photo to be read
turned: upside-down photos are rare, so an upright photo keeps its orientation when in doubt (measured gaps on
the shared photos and six of them turned, the right orientation's score minus the other's: at least 0.16 on both)."""


ROTATIONS_ON_MISS = tuple(math.radians(angle) for angle in (45.0, -45.0, 135.0, -135.0))
"""Turns of a photo in which no BlazeFace model finds a face that the models are shown next (module docstring):
faces rolled by about 45 degrees either way, upright or upside down, which they miss otherwise (the full-range model
finds upright faces only)."""


class MediaPipeDetector:
    """``LandmarkDetector`` with MediaPipe's face models on LiteRT (CPU).

    Args:
        face_detectors: BlazeFace models tried in turn until one gives a face: "short" (short range, faces within
            about 2 m, what MediaPipe's Face Mesh uses; robust to in-plane rotation) and "full" (full range: also
            small faces far from the camera, upright faces only).
        num_threads: LiteRT CPU threads of each model.
        download: fetch missing model files from MediaPipe's model store (see ``models``).

    Raises:
        ModelNotFoundError: a model file is missing and ``download`` is False.
        DownloadError: a download was refused (``F2P_OFFLINE``) or failed.
        ModelFileError: a model file is corrupt or another model.
    """

    name = NAME
    full_resolution = True
    """Photos come at their own resolution (``detection.detect_faces``): Face Mesh reads each face's ROI from
    them, and small faces are searched on tiles."""

    def __init__(self, face_detectors: Sequence[str] = ("short", "full"), num_threads: int = 1,
                 download: bool = False) -> None:
        unknown = [name for name in face_detectors if name not in BLAZEFACE_MODELS]
        if unknown or not face_detectors:
            raise ValueError(f"face_detectors must be names from {sorted(BLAZEFACE_MODELS)}, got {face_detectors!r}")
        self._blazefaces = [BlazeFace(BLAZEFACE_MODELS[name], num_threads, download) for name in face_detectors]
        self._tile_blazeface = dict(zip(face_detectors, self._blazefaces)).get("full", self._blazefaces[0])
        self._mesh = FaceMesh(num_threads, download)
        self._iris = IrisLandmarks(num_threads, download)

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces in its pixel coordinates, largest box first (empty if none); an
        upside-down photo is read turned (module docstring)."""
        photo = ImagePyramid(image)
        boxes = self._blazefaces[0].detect(photo)
        bar = _best_score(boxes) + TURNED_MARGIN
        if bar < 1.0:  # at or above 1, no score of the turned photo can beat it
            turned = self._blazefaces[0].detect(photo, math.pi)
            boxes = turned if _best_score(turned) > bar else boxes
        return self._detect(photo, boxes)

    def _detect(self, image: ImagePyramid, first_boxes: list[FaceBox]) -> list[FaceDetection]:
        """The faces of ``image``, given the first BlazeFace model's boxes on it; when no model finds one, the
        models' faces on the photo turned by ``ROTATIONS_ON_MISS`` (the best-scoring turn and model), then those on
        its tiles (``tiles.tile_levels``, the first level with a face)."""
        for index, blazeface in enumerate(self._blazefaces):
            if found := self._meshed(image, first_boxes if index == 0 else blazeface.detect(image)):
                return found
        turns = [blazeface.detect(image, rotation) for rotation in ROTATIONS_ON_MISS for blazeface in self._blazefaces]
        if found := self._meshed(image, max(turns, key=_best_score, default=[])):
            return found
        for level in tile_levels(*image.size):
            boxes = [box for tile in level for box in self._tile_blazeface.detect(image, region=tile)]
            if found := self._meshed(image, merged_boxes(boxes)):
                return found
        return []

    def confirm(self, image: Tensor, faces: list[FaceDetection]) -> list[FaceDetection]:
        """Upright faces another detector found (dlib's HOG) that Face Mesh confirms, each with its dense points
        (``FaceDetection.dense_landmarks``; its box, score, 68 points and detector kept), largest first; the others
        (no face there: presence under ``MIN_PRESENCE``) are dropped."""
        photo = ImagePyramid(image)
        confirmed = []
        for face in faces:
            meshed = self._landmarks(photo, upright_box_roi(face.box), face.box, face.score)
            if meshed is not None:
                confirmed.append(replace(face, dense_landmarks=meshed.dense_landmarks,
                                         dense_confidence=meshed.dense_confidence))
        return largest_first(confirmed)

    def _meshed(self, image: ImagePyramid, boxes: list[FaceBox]) -> list[FaceDetection]:
        """The faces of BlazeFace ``boxes`` that Face Mesh confirms, largest first."""
        faces = [self._landmarks(image, detection_roi(box), box.box, box.score) for box in boxes]
        return largest_first([face for face in faces if face is not None])

    def _landmarks(self, image: ImagePyramid, roi: Roi, box: Tensor, score: float) -> FaceDetection | None:
        """The landmarks of the face in a first ``roi`` (with its detector's ``box`` and ``score``), or None when
        Face Mesh finds no face there."""
        first = self._mesh.run(image, roi)
        if first.presence < MIN_PRESENCE:
            return None
        second = self._mesh.run(image, landmarks_roi(first.points))
        if second.presence < MIN_PRESENCE:
            return None
        dense = self._iris.refine(image, second.points)
        return FaceDetection(box, score, ibug68_view(dense), torch.full((NUM_LANDMARKS,), second.presence), NAME, dense,
                             torch.full((NUM_DENSE_POINTS,), second.presence))


def _best_score(boxes: list[FaceBox]) -> float:
    return max((box.score for box in boxes), default=0.0)
