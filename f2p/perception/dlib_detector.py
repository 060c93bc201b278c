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
from f2p.perception.exposure import raise_low_contrast


HOG_NAME = "dlib-hog"
CNN_NAME = "dlib-mmod"
"""``DlibDetector.name`` (and ``FaceDetection.detector``) with the HOG and the CNN face detector."""


class DlibDetector:
    """``LandmarkDetector`` with dlib.

    Args:
        cnn: use the CNN mmod detector (more robust to pose and blur, about 50x slower on CPU) instead of HOG.
        upsample: times the image is doubled before detection (1 finds faces down to about 40 px).
        threshold: detection threshold added to the detector's own (HOG only; lower finds more, with more false
            positives).
    """

    full_resolution = False
    """Large photos are downscaled for it (``detection.detect_faces``): HOG's time grows with the pixels."""

    def __init__(self, cnn: bool = False, upsample: int = 1, threshold: float = 0.0) -> None:
        self.name = CNN_NAME if cnn else HOG_NAME
        self.upsample = upsample
        self.threshold = threshold
        self._cnn = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location()) \
            if cnn else None
        self._hog = None if cnn else dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def find_boxes(self, array: np.ndarray) -> list[tuple[Tensor, float]]:
        """Face boxes (4,) x0, y0, x1, y1 in f2p pixels (``rectangle_box``) with their detector scores.

        Args:
            array: (H, W, 3) uint8 RGB image (``to_uint8_hwc``).
        """
        if self._cnn is not None:
            found = [(found.rect, float(found.confidence)) for found in self._cnn(array, self.upsample)]
        else:
            rects, scores, _ = self._hog.run(array, self.upsample, self.threshold)
            found = zip(rects, scores)
        return [(rectangle_box(rect), float(score)) for rect, score in found]

    def predict(self, array: np.ndarray, box: Tensor) -> Tensor:
        """dlib's 68 points of the face in ``box``.

        Args:
            array: (H, W, 3) uint8 RGB image.
            box: (4,) x0, y0, x1, y1 in f2p pixels, from dlib's face detector or derived the way its boxes relate to
                faces (dlib's predictor is trained on them).

        Returns:
            (68, 2) float32 points in f2p pixels (whole pixels).
        """
        shape = self._predictor(array, box_rectangle(box))
        return torch.tensor([[shape.part(i).x, shape.part(i).y] for i in range(NUM_LANDMARKS)], dtype=torch.float32)

    def predict_face(self, image: Tensor, box: Tensor, array: np.ndarray | None = None) -> Tensor:
        """``predict`` on the (3, H, W) RGB ``image`` in [0, 1], an underexposed face's contrast raised first
        (``exposure.raise_low_contrast``); ``array``: ``to_uint8_hwc(image)`` when the caller has it."""
        raised = raise_low_contrast(image, box)
        if raised is not image or array is None:
            array = to_uint8_hwc(raised)
        return self.predict(array, box)

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces, largest box first."""
        array = to_uint8_hwc(image)
        faces = [FaceDetection(box, score, self.predict_face(image, box, array), torch.ones(NUM_LANDMARKS), self.name)
                 for box, score in self.find_boxes(array)]
        return largest_first(faces)


def rectangle_box(rect: dlib.rectangle) -> Tensor:
    """A dlib rectangle (inclusive integer pixel bounds) -> (4,) box edges x0, y0, x1, y1 in f2p pixels."""
    return torch.tensor([rect.left() - 0.5, rect.top() - 0.5, rect.right() + 0.5, rect.bottom() + 0.5])


def box_rectangle(box: Tensor) -> dlib.rectangle:
    """(4,) box edges x0, y0, x1, y1 in f2p pixels -> the dlib rectangle of the pixels they enclose (edges rounded
    to the nearest pixel edge); the inverse of ``rectangle_box``."""
    x0, y0, x1, y1 = (round(float(edge) + 0.5) for edge in box)
    return dlib.rectangle(x0, y0, x1 - 1, y1 - 1)
