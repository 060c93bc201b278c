"""MediaPipe's iris model: 5 iris points per eye, and the mesh's eye region refined with the model's 71 points.

Steps and constants of mediapipe/graphs/iris_tracking/iris_tracking_cpu.pbtxt and mediapipe/modules/iris_landmark/:

- Eye ROIs (iris_landmark_landmarks_to_roi.pbtxt): the box of two mesh eye corners, rotated so that the first ->
  second corner is level, squared on the long side and scaled by 2.3. MediaPipe's "left eye" is mesh points
  33 -> 133 (the eye on the image left of a frontal face: the subject's right eye), its "right eye" 362 -> 263.
- Crop (iris_landmark_cpu.pbtxt): the ROI resized to the 64 x 64 input, edges replicated (``BORDER_REPLICATE``),
  values in [0, 1] (``zero_center: false``); MediaPipe's "right eye" (362 -> 263, the subject's left eye) is
  mirrored (``IS_RIGHT_EYE`` -> ``FLIP_HORIZONTALLY``) so that the model always sees the same side, and its
  outputs are mirrored back (``x -> 64 - x``). MediaPipe crops the ROI at its own pixel size and then resizes it;
  here one bilinear sampling goes straight to 64 x 64 (same geometry, another interpolation).
- Outputs: 0 holds 71 x (x, y, z) eye-contour, halo and brow points, 1 holds 5 x (x, y, z) iris points (centre,
  then the rim), in input pixels, projected back through the ROI.
- Refinement (``UpdateFaceLandmarksCalculator``, mediapipe/graphs/iris_tracking/calculators/
  update_face_landmarks_calculator.cc): the 71 points of each eye replace the mesh points listed in
  ``EYE_CONTOUR_MESH_POINTS``.
- Order of the result (``ConcatenateNormalizedLandmarkListCalculator`` of the iris renderer): the 468 refined mesh
  points, the iris of the 33 -> 133 eye, the iris of the 362 -> 263 eye; that is ``f2p.face_mesh``'s 478 points
  (``RIGHT_IRIS`` then ``LEFT_IRIS``, subject's sides).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.face_mesh import NUM_IRIS_POINTS
from f2p.perception.mediapipe.crop import ImagePyramid, crop_roi, model_input
from f2p.perception.mediapipe.models import IRIS_LANDMARK, model_file
from f2p.perception.mediapipe.roi import points_roi
from f2p.perception.mediapipe.runtime import LiteRtModel

INPUT_RANGE = (0.0, 1.0)
"""Value range of the model input (``zero_center: false``)."""
VALUES_PER_POINT = 3
NUM_EYE_CONTOUR_POINTS = 71
EYE_ROI_SCALE = 2.3
"""``scale_x`` = ``scale_y`` of iris_landmark_landmarks_to_roi.pbtxt."""

_LEFT_EYE_CONTOUR = (
    33, 7, 163, 144, 145, 153, 154, 155, 133,  # eye lower contour
    246, 161, 160, 159, 158, 157, 173,  # eye upper contour (excluding corners)
    130, 25, 110, 24, 23, 22, 26, 112, 243,  # halo x2 lower contour
    247, 30, 29, 27, 28, 56, 190,  # halo x2 upper contour (excluding corners)
    226, 31, 228, 229, 230, 231, 232, 233, 244,  # halo x3 lower contour
    113, 225, 224, 223, 222, 221, 189,  # halo x3 upper contour (excluding corners)
    35, 124, 46, 53, 52, 65,  # halo x4 upper contour, or eyebrow inner contour
    143, 111, 117, 118, 119, 120, 121, 128, 245,  # halo x5 lower contour
    156, 70, 63, 105, 66, 107, 55, 193,  # halo x5 upper contour, or eyebrow outer contour
)
_RIGHT_EYE_CONTOUR = (
    263, 249, 390, 373, 374, 380, 381, 382, 362,  # eye lower contour
    466, 388, 387, 386, 385, 384, 398,  # eye upper contour (excluding corners)
    359, 255, 339, 254, 253, 252, 256, 341, 463,  # halo x2 lower contour
    467, 260, 259, 257, 258, 286, 414,  # halo x2 upper contour (excluding corners)
    446, 261, 448, 449, 450, 451, 452, 453, 464,  # halo x3 lower contour
    342, 445, 444, 443, 442, 441, 413,  # halo x3 upper contour (excluding corners)
    265, 353, 276, 283, 282, 295,  # halo x4 upper contour, or eyebrow inner contour
    372, 340, 346, 347, 348, 349, 350, 357, 465,  # halo x5 lower contour
    383, 300, 293, 334, 296, 336, 285, 417,  # halo x5 upper contour, or eyebrow outer contour
)


@dataclass(frozen=True)
class Eye:
    """One eye as MediaPipe's iris pipeline handles it.

    Attributes:
        corners: mesh indices of the two corners whose box and direction give the eye ROI.
        contour: the 71 mesh indices that the model's eye-contour points replace, in the model's order.
        flip: whether the crop is mirrored for the model.
    """

    corners: tuple[int, int]
    contour: tuple[int, ...]
    flip: bool


EYES = (Eye((33, 133), _LEFT_EYE_CONTOUR, flip=False), Eye((362, 263), _RIGHT_EYE_CONTOUR, flip=True))
"""MediaPipe's "left" then "right" eye (iris_tracking_cpu.pbtxt, iris_landmark_left_and_right_cpu.pbtxt): the
subject's right eye, then the subject's left eye, which is the one mirrored."""
EYE_CONTOUR_MESH_POINTS = tuple(index for eye in EYES for index in eye.contour)
"""``kEyeLandmarkIndicesInFaceLandmarks``: the 142 mesh points the iris model refines."""


class IrisLandmarks:
    """MediaPipe's iris model on LiteRT.

    Args:
        num_threads: LiteRT CPU threads.
        download: fetch the model file when missing (see ``models.model_file``).
    """

    def __init__(self, num_threads: int = 1, download: bool = False) -> None:
        self._model = LiteRtModel(model_file(IRIS_LANDMARK, download),
                                  (NUM_EYE_CONTOUR_POINTS * VALUES_PER_POINT, NUM_IRIS_POINTS * VALUES_PER_POINT),
                                  num_threads)

    def refine(self, image: ImagePyramid, mesh: Tensor) -> Tensor:
        """Mesh points refined around the eyes, followed by the two irises.

        Args:
            image: the photo (``crop.ImagePyramid`` of the (3, H, W) RGB image in [0, 1]).
            mesh: (468, 2) Face Mesh points in the pixels of ``image``.

        Returns:
            (478, 2) pixels: the 468 mesh points with ``EYE_CONTOUR_MESH_POINTS`` replaced, then 5 points of the
            subject's right iris and 5 of the left (centre first).
        """
        size = self._model.width  # square input
        refined, irises = mesh.clone(), []
        for eye in EYES:
            roi = points_roi(mesh[list(eye.corners)], 0, 1, EYE_ROI_SCALE)
            tensor = model_input(crop_roi(image, roi, size, flip=eye.flip), *INPUT_RANGE)
            contour, iris = (torch.from_numpy(output).reshape(-1, VALUES_PER_POINT)[:, :2] / size
                             for output in self._model.invoke(tensor))
            if eye.flip:
                contour[:, 0], iris[:, 0] = 1.0 - contour[:, 0], 1.0 - iris[:, 0]
            refined[list(eye.contour)] = roi.to_image(contour)
            irises.append(roi.to_image(iris))
        return torch.cat([refined, *irises])
