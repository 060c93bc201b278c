"""Face Mesh, MediaPipe's 468-point face landmark model, on a rotated face ROI.

Steps and constants of mediapipe/modules/face_landmark/face_landmark_cpu.pbtxt: the ROI cropped to the model's
192 x 192 input (``ImageToTensorCalculator``, values in [0, 1], default ``BORDER_REPLICATE``); output 0 holds
468 x (x, y, z) in input pixels (``TensorsToLandmarksCalculator``, ``num_landmarks: 468``), output 1 the
face-presence flag, a logit (``TensorsToFloatsCalculator`` with ``activation: SIGMOID``; faces below 0.5 are
dropped by its ``ThresholdingCalculator``). The points are projected back through the ROI
(``LandmarkProjectionCalculator``); z is not kept.

ROIs: from a BlazeFace detection (face_detection_front_detection_to_roi.pbtxt: its box, rotated so that keypoint
0 -> 1, the eyes, is level, squared on the long side and scaled by 1.5) and from the landmarks of a previous pass
(face_landmark_landmarks_to_roi.pbtxt: the box of all 468 points, rotated so that point 33 -> 263, the outer eye
corners, is level, squared, scaled by 1.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.face_mesh import NUM_MESH_POINTS
from f2p.perception.mediapipe.blazeface import FaceBox
from f2p.perception.mediapipe.crop import ImagePyramid, crop_roi, model_input
from f2p.perception.mediapipe.models import FACE_LANDMARK, model_file
from f2p.perception.mediapipe.roi import Roi, points_roi, rotation_between, square_roi
from f2p.perception.mediapipe.runtime import LiteRtModel

INPUT_RANGE = (0.0, 1.0)
"""Value range of the model input (``output_tensor_float_range``)."""
VALUES_PER_POINT = 3
"""x, y, z per landmark."""
MIN_PRESENCE = 0.5
"""Face-presence score below which a face is dropped (``ThresholdingCalculator``, ``threshold: 0.5``)."""
DETECTION_ROI_SCALE = 1.5
"""``scale_x`` = ``scale_y`` of face_detection_front_detection_to_roi.pbtxt."""
DETECTION_ROTATION_KEYPOINTS = (0, 1)
"""BlazeFace keypoints that level the ROI (``rotation_vector_start/end_keypoint_index``): the two eyes."""
LANDMARKS_ROI_SCALE = 1.5
"""``scale_x`` = ``scale_y`` of face_landmark_landmarks_to_roi.pbtxt."""
LANDMARKS_ROTATION_POINTS = (33, 263)
"""Mesh points that level the ROI from landmarks: the outer eye corners, image left then right."""


@dataclass(frozen=True)
class MeshLandmarks:
    """One Face Mesh pass.

    Attributes:
        points: (468, 2) landmarks in photo pixels, MediaPipe's order.
        presence: face-presence score in [0, 1].
    """

    points: Tensor
    presence: float


def detection_roi(face: FaceBox) -> Roi:
    """The Face Mesh ROI of a BlazeFace detection."""
    start, end = DETECTION_ROTATION_KEYPOINTS
    return square_roi(face.box, rotation_between(face.keypoints[start], face.keypoints[end]), DETECTION_ROI_SCALE)


UPRIGHT_BOX_ROI_SCALE = 1.8
"""Face Mesh ROI side of an upright face box from another detector (dlib's HOG), in box sides: HOG's boxes run from
the brows to the chin, tighter than BlazeFace's. On the 25 HOG faces of the shared photos the first pass's presence
is 0.97-1.0 at 1.8 (0.84-1.0 at BlazeFace's 1.5), on all 8 false HOG detections in 39 photos of
smooth random colours 0.0."""


def upright_box_roi(box: Tensor) -> Roi:
    """The Face Mesh ROI of an upright (4,) x0, y0, x1, y1 face box from another detector."""
    return square_roi(box, 0.0, UPRIGHT_BOX_ROI_SCALE)


def landmarks_roi(points: Tensor) -> Roi:
    """The Face Mesh ROI of (468, 2) landmarks of a previous pass."""
    return points_roi(points, *LANDMARKS_ROTATION_POINTS, LANDMARKS_ROI_SCALE)


class FaceMesh:
    """MediaPipe's Face Mesh model on LiteRT.

    Args:
        num_threads: LiteRT CPU threads.
        download: fetch the model file when missing (see ``models.model_file``).
    """

    def __init__(self, num_threads: int = 1, download: bool = False) -> None:
        self._model = LiteRtModel(model_file(FACE_LANDMARK, download), (NUM_MESH_POINTS * VALUES_PER_POINT, 1),
                                  num_threads)

    def run(self, image: ImagePyramid, roi: Roi) -> MeshLandmarks:
        """Landmarks of the face in ``roi`` of a photo (``crop.ImagePyramid`` of a (3, H, W) RGB image in [0, 1])."""
        size = self._model.width  # square input
        tensor = model_input(crop_roi(image, roi, size), *INPUT_RANGE)
        raw_points, raw_presence = (torch.from_numpy(output) for output in self._model.invoke(tensor))
        points = raw_points.reshape(NUM_MESH_POINTS, VALUES_PER_POINT)[:, :2] / size  # ROI coordinates
        return MeshLandmarks(roi.to_image(points), float(raw_presence.reshape(()).sigmoid()))
