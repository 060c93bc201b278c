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

Confidences are the second pass's presence score for every point (the models give no per-point confidence).
``FaceDetection.box`` and ``score`` are BlazeFace's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS
from f2p.face_mesh import NUM_DENSE_POINTS, ibug68_view
from f2p.perception.detection import FaceDetection, largest_first
from f2p.perception.mediapipe.blazeface import BLAZEFACE_MODELS, BlazeFace, FaceBox
from f2p.perception.mediapipe.iris import IrisLandmarks
from f2p.perception.mediapipe.mesh import MIN_PRESENCE, FaceMesh, detection_roi, landmarks_roi

NAME = "mediapipe"


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

    def __init__(self, face_detectors: Sequence[str] = ("short", "full"), num_threads: int = 1,
                 download: bool = False) -> None:
        unknown = [name for name in face_detectors if name not in BLAZEFACE_MODELS]
        if unknown or not face_detectors:
            raise ValueError(f"face_detectors must be names from {sorted(BLAZEFACE_MODELS)}, got {face_detectors!r}")
        self._blazefaces = [BlazeFace(BLAZEFACE_MODELS[name], num_threads, download) for name in face_detectors]
        self._mesh = FaceMesh(num_threads, download)
        self._iris = IrisLandmarks(num_threads, download)

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces in its pixel coordinates, largest box first (empty if none)."""
        for blazeface in self._blazefaces:
            faces = [self._landmarks(image, box) for box in blazeface.detect(image)]
            if found := [face for face in faces if face is not None]:
                return largest_first(found)
        return []

    def _landmarks(self, image: Tensor, face: FaceBox) -> FaceDetection | None:
        """The landmarks of one BlazeFace face, or None when Face Mesh finds no face there."""
        first = self._mesh.run(image, detection_roi(face))
        if first.presence < MIN_PRESENCE:
            return None
        second = self._mesh.run(image, landmarks_roi(first.points))
        if second.presence < MIN_PRESENCE:
            return None
        dense = self._iris.refine(image, second.points)
        return FaceDetection(face.box, face.score, ibug68_view(dense), torch.full((NUM_LANDMARKS,), second.presence),
                             NAME, dense, torch.full((NUM_DENSE_POINTS,), second.presence))
