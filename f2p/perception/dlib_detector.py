"""dlib face detector (HOG, or the CNN "mmod" detector) plus dlib's 68-point shape predictor.

The models are the ones shipped by ``face_recognition_models``. dlib indexes pixels by integers with pixel
centres at integer coordinates, the f2p convention, so its points are used unchanged; a dlib rectangle is
inclusive (``right - left + 1`` pixels wide), so its box edges are ``left - 0.5`` and ``right + 0.5``. The shape
predictor returns whole-pixel points and no per-point confidence (reported as ones). Measured against the 1-based
iBUG ``.pts`` annotations of the shared photos, dlib's points sit 1 px left of and above the raw file values,
i.e. on the 0-based values, which confirms the convention.
"""

from __future__ import annotations

import dlib
import numpy as np
import face_recognition_models
import torch
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS
from f2p.perception.detection import FaceDetection, largest_first, to_uint8_hwc


class DlibDetector:
    """``LandmarkDetector`` with dlib.

    Args:
        cnn: use the CNN mmod detector (more robust to pose and blur, about 50x slower on CPU) instead of HOG.
        upsample: times the image is doubled before detection (1 finds faces down to about 40 px).
        threshold: detection threshold added to the detector's own (HOG only; lower finds more, with more false
            positives).
    """

    def __init__(self, cnn: bool = False, upsample: int = 1, threshold: float = 0.0) -> None:
        self.name = "dlib-mmod" if cnn else "dlib-hog"
        self.upsample = upsample
        self.threshold = threshold
        self._cnn = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location()) \
            if cnn else None
        self._hog = None if cnn else dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def _find_boxes(self, array: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        if self._cnn is not None:
            return [(found.rect, float(found.confidence)) for found in self._cnn(array, self.upsample)]
        rects, scores, _ = self._hog.run(array, self.upsample, self.threshold)
        return list(zip(rects, scores))

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces, largest box first."""
        array = to_uint8_hwc(image)
        faces = []
        for rect, score in self._find_boxes(array):
            shape = self._predictor(array, rect)
            points = torch.tensor([[shape.part(i).x, shape.part(i).y] for i in range(NUM_LANDMARKS)],
                                  dtype=torch.float32)
            box = torch.tensor([rect.left() - 0.5, rect.top() - 0.5, rect.right() + 0.5, rect.bottom() + 0.5])
            faces.append(FaceDetection(box, float(score), points, torch.ones(NUM_LANDMARKS), self.name))
        return largest_first(faces)
