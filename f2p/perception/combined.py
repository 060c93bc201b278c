"""MediaPipe finds the face and its dense mesh, dlib's shape predictor places the 68 points: the detector "auto"
picks when both are on disk, the most accurate combination measured on the shared photos (see README.md,
"Perception", and ``benchmarks/landmarks.py``).

Per face MediaPipe finds (``MediaPipeDetector``: BlazeFace, Face Mesh, iris; robust to pose and in-plane rotation):

1. a dlib-style box is derived from its mesh points (``mesh_box``), the way dlib's own HOG boxes relate to faces,
   and dlib's 68-point shape predictor runs in it (on the shared visible-contour markup dlib's points measure
   NME68 1.6 %, MediaPipe's 68-point view 3.9 %);
   (on a crop turned upright when the face is rolled by more than ``MAX_DIRECT_ROLL``: dlib's predictor expects
   a roughly upright face);
2. the points are kept when they are plausible (``f2p.perception.plausible.implausible_landmarks``) and agree with
   the mesh's own 68-point view (``f2p.face_mesh.ibug68_view``) to within ``DISAGREEMENT_LIMIT``; otherwise the
   face keeps MediaPipe's 68-point view (a failed predictor gives a plausible but wrong set).

Photos in which MediaPipe finds no face go to dlib's HOG detector with its own boxes (downscaled and looked at again
on tiles as ``detection.detect_faces`` does for it), whose faces Face Mesh must confirm
(``MediaPipeDetector.confirm``: HOG's 8 false detections in 39 photos of smooth random colours had a presence of 0,
its faces in the shared photos 0.97-1.0); a confirmed face keeps dlib's 68 points and gets MediaPipe's 478 dense
points (``FaceDetection.dense_landmarks``), as every other face does.
``FaceDetection.detector`` says where a face's 68 points come from: ``NAME`` (dlib's predictor on MediaPipe's
face), "mediapipe" (the mesh's view) or "dlib-hog" (no MediaPipe face). The fallbacks are counted per photo
(``CombinedDetector.fallbacks``) and logged at debug level the first time each happens.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import replace

import torch
from torch import Tensor

from f2p.conventions import INNER_51, NUM_LANDMARKS
from f2p.face_mesh import NUM_MESH_POINTS, ibug68_view
from f2p.perception.align import apply_affine, invert_affine, warp_image
from f2p.perception.detection import FaceDetection, detect_faces, largest_first
from f2p.perception.dlib_detector import HOG_NAME, DlibDetector
from f2p.perception.landmark_metrics import box_size, points_box
from f2p.perception.mediapipe.detector import MediaPipeDetector
from f2p.perception.plausible import implausible_landmarks

logger = logging.getLogger("f2p")

NAME = "mediapipe+dlib"

MESH_BOX_SCALE = 1.396
MESH_BOX_SHIFT = (0.013, -0.046)
"""dlib's HOG box of a face from MediaPipe's mesh: a square of side ``MESH_BOX_SCALE`` x the longer side ``s`` of the
bounding box of the mesh's 51 inner iBUG points (``ibug68_view``), centred on the mean of the 468 mesh points moved
by ``MESH_BOX_SHIFT`` x ``s`` (x, y). Fitted as medians over the 24 faces of the shared photos that both dlib HOG
(upsample 1) and MediaPipe find; the HOG boxes deviate from them by 2.1 % (x), 3.9 % (y) and 4.9 % (side) of their
side (median absolute deviations; HOG's sides come in pyramid steps of 1.2x). Of the centres and sizes tried (the
centre of the 468 points' box, of the inner points' box, of eyes and mouth, or the points' mean; the longer or
geometric-mean side of either box, the eye-to-mouth or eye-corner distance), this pair fits HOG's boxes best,
and dlib's predictor does best in its boxes: ``benchmarks/landmarks.py`` gives "auto" NME68 1.9 % on the
visible-contour markup, 4.7 % on the 3D one and NME5 5.0 % on the CelebA crops, against 2.7 %, 4.3 % and 6.2 % with
the centre and longer side of the 468 points' box (fitted the same way)."""
DISAGREEMENT_LIMIT = 0.07
"""Largest mean distance of dlib's 51 inner points from those of the mesh's 68-point view, as a fraction of the
view's box size (``landmark_metrics.box_size``), for dlib's points to be kept. Measured on the 20 shared faces with
annotated points: 1.6 % to 5.1 % (the most on a 66-degree yaw), with dlib's points as good as MediaPipe's or
better on all but that face (NME68 11.1 % against 9.8 %); with the box centred on the centre of the 468 points' box
instead, dlib's predictor failed on two faces (NME68 about 7.5 % and 24 %), which disagreed by 9.7 % and 25.6 %;
on photos turned by 90 degrees without the upright crop, by 37 % to 44 %."""
NO_MEDIAPIPE_FACE = "no MediaPipe face: dlib HOG"
IMPLAUSIBLE = "dlib's points implausible: MediaPipe's 68-point view"
DISAGREES = "dlib's points disagree with the mesh: MediaPipe's 68-point view"
FALLBACKS = (NO_MEDIAPIPE_FACE, IMPLAUSIBLE, DISAGREES)
"""The fallbacks ``CombinedDetector.fallbacks`` counts."""
DLIB_DENSE_WEIGHT = (2.21 / 2.97) ** 2
"""What a face's MediaPipe dense points are worth against its 68 points when dlib's predictor placed those:
(sigma_dlib / sigma_mediapipe)^2 = 0.55, the ratio of the two detectors' squared NME51 on the shared photos'
68-point annotations (2.21 % for "auto"'s dlib points, 2.97 % for MediaPipe's 68-point view, ten photos, README
"Perception"; the inner 51 points, whose markup is the same in every annotation family). A fit weighs each point by
the inverse of its detector's error variance; where the 68 points are the mesh's own view, both sets share one
detector and count as equally accurate (1). Fitting the 10 shared photos with 68 annotated points (``--quality fast``,
``auto``): fitted NME68 2.99 % with the dense points at the equal weight, 2.92 % with this one (the detector's own
2.98 %); visible-contour markup 2.36 -> 2.18 %, 3D-consistent 4.02 % both ways. The synthetic evaluation observes
both sets with equal noise and keeps the equal weight."""


def dense_weight(source: str) -> float:
    """The weight of a face's dense points relative to its 68 (``scene.Observations.dense_weight``), from the
    detector ``source`` of its 68 points (``FaceDetection.detector``): dlib's predictor, in a box from the mesh or
    from HOG, or MediaPipe's own view."""
    return DLIB_DENSE_WEIGHT if source in (NAME, HOG_NAME) else 1.0


ROLL_POINTS = (33, 263)
"""Mesh points whose line gives a face's roll (in-plane rotation): the outer eye corners, image left then right on
an upright face (as MediaPipe levels its own landmark ROI)."""
MAX_DIRECT_ROLL = math.radians(30.0)
"""Faces rolled by more than this are turned upright for dlib's predictor (``upright_transform``); the others are
predicted in the photo itself. Measured on five shared photos turned by 15, 30 and 45 degrees: in the photo, dlib's
points agree with the mesh to 1.7 % to 4.1 % up to 30 degrees, and fail on two of the five at 45 (21 % and 28 %
apart). Turning every face upright measured worse on the shared photos (NME68 2.3 % instead of 1.9 % on the
visible-contour markup: the two faces rolled by 18 and 27 degrees lose 0.8 and 1.0 points), since ``mesh_box`` is
fitted to HOG's boxes of faces as they are."""
CROP_SCALE = 2.0
"""Side of the upright crop dlib's predictor sees, in sides of the ``mesh_box``."""


def mesh_box(mesh: Tensor) -> Tensor:
    """The dlib-style face box of MediaPipe mesh points (see ``MESH_BOX_SCALE``).

    Args:
        mesh: (468 or 478, 2) dense points in pixels (the irises, if present, are not used).

    Returns:
        (4,) x0, y0, x1, y1 in pixels, a square.
    """
    inner = points_box(ibug68_view(mesh)[list(INNER_51)])
    size = (inner[2:] - inner[:2]).max()
    centre = mesh[:NUM_MESH_POINTS].mean(dim=0) + mesh.new_tensor(MESH_BOX_SHIFT) * size
    side = MESH_BOX_SCALE * size
    return torch.cat([centre - side / 2, centre + side / 2])


def face_roll(mesh: Tensor) -> float:
    """The roll of a face in radians, from its (468 or 478, 2) mesh points: the angle of the line from mesh point 33
    to 263 (``ROLL_POINTS``), positive when it turns from image-right towards image-down (y down)."""
    right, left = mesh[ROLL_POINTS[0]], mesh[ROLL_POINTS[1]]
    return math.atan2(float(left[1] - right[1]), float(left[0] - right[0]))


def upright_transform(mesh: Tensor, size: int) -> Tensor:
    """The similarity that turns a face upright into a ``size`` x ``size`` crop, at the photo's scale.

    It rotates by ``-face_roll(mesh)`` about the mean of the 468 mesh points (rounded to a pixel), which lands on
    crop pixel ``(size // 2, size // 2)``.

    Args:
        mesh: (468 or 478, 2) dense points in pixels.
        size: side of the crop.

    Returns:
        (2, 3) affine matrix taking photo pixels to crop pixels (``f2p.perception.align`` convention).
    """
    cos, sin = math.cos(-face_roll(mesh)), math.sin(-face_roll(mesh))
    rotation = mesh.new_tensor([[cos, -sin], [sin, cos]])
    centre = mesh[:NUM_MESH_POINTS].mean(dim=0).round()
    translation = mesh.new_tensor([size // 2, size // 2]) - rotation @ centre
    return torch.cat([rotation, translation[:, None]], dim=1)


def disagreement(points: Tensor, reference: Tensor) -> float:
    """Mean distance of the inner 51 of two (68, 2) point sets, as a fraction of ``box_size(reference)``."""
    inner = list(INNER_51)
    return float((points[inner] - reference[inner]).norm(dim=-1).mean() / box_size(reference).clamp_min(1e-8))


class CombinedDetector:
    """``LandmarkDetector``: MediaPipe's faces and dense points with dlib's 68 points (see the module docstring).

    Args:
        mediapipe: finds the faces and their dense points.
        dlib: its shape predictor places the 68 points; its HOG detector is the fallback (use a HOG ``DlibDetector``:
            the mesh box is fitted to HOG's boxes).

    Attributes:
        fallbacks: per fallback of ``FALLBACKS``, the number of photos (``NO_MEDIAPIPE_FACE``) or faces (the others)
            that took it since the detector was built.
    """

    name = NAME
    full_resolution = True
    """As MediaPipe's detector: photos at their own size; the HOG fallback downscales them itself
    (``detection.detect_faces``)."""

    def __init__(self, mediapipe: MediaPipeDetector, dlib: DlibDetector) -> None:
        self._mediapipe = mediapipe
        self._dlib = dlib
        self.fallbacks: Counter[str] = Counter()

    def detect(self, image: Tensor) -> list[FaceDetection]:
        """(3, H, W) RGB image in [0, 1] -> faces in its pixel coordinates, largest box first (empty if none)."""
        faces = self._mediapipe.detect(image)
        if not faces:
            self._fell_back(NO_MEDIAPIPE_FACE)
            return self._mediapipe.confirm(image, detect_faces(image, self._dlib))
        combined = []
        for face in faces:
            points = self._predict(image, face.dense_landmarks)
            why = implausible_landmarks(points, tuple(image.shape[1:]))
            apart = disagreement(points, face.landmarks)
            if why:
                self._fell_back(IMPLAUSIBLE, why)
                combined.append(face)
            elif apart > DISAGREEMENT_LIMIT:
                self._fell_back(DISAGREES, f"apart by {100 * apart:.0f} % of the face size")
                combined.append(face)
            else:
                combined.append(replace(face, landmarks=points, landmark_confidence=torch.ones(NUM_LANDMARKS),
                                        detector=NAME))
        return largest_first(combined)

    def _predict(self, image: Tensor, mesh: Tensor) -> Tensor:
        """dlib's (68, 2) points of the face with ``mesh`` points, in photo pixels; predicted in an upright crop when
        the face is rolled by more than ``MAX_DIRECT_ROLL``, the contrast of an underexposed face raised
        (``DlibDetector.predict_face``)."""
        box = mesh_box(mesh)
        if abs(face_roll(mesh)) <= MAX_DIRECT_ROLL:
            return self._predict_near(image, box)
        size = math.ceil(CROP_SCALE * float(box[2] - box[0]))
        to_crop = upright_transform(mesh, size)[None]  # (1, 2, 3)
        crop = warp_image(image[None], to_crop, (size, size))[0]
        crop_box = mesh_box(apply_affine(to_crop, mesh[None])[0])
        points = self._dlib.predict_face(crop, crop_box)
        return apply_affine(invert_affine(to_crop), points[None])[0]

    def _predict_near(self, image: Tensor, box: Tensor) -> Tensor:
        """dlib's (68, 2) points in ``box`` (photo pixels), predicted on the part of the photo within a box side of it
        (the predictor reads only pixels near its box; a large photo is not converted whole)."""
        _, H, W = image.shape
        side = float(box[2] - box[0])
        x0, y0 = (max(0, math.floor(float(edge) - side)) for edge in box[:2])
        x1, y1 = min(W, math.ceil(float(box[2]) + side)), min(H, math.ceil(float(box[3]) + side))
        offset = box.new_tensor([x0, y0])
        points = self._dlib.predict_face(image[:, y0:y1, x0:x1], box - offset.repeat(2))
        return points + offset

    def _fell_back(self, kind: str, detail: str = "") -> None:
        """Count a fallback of ``FALLBACKS``; log it at debug level the first time."""
        if not self.fallbacks[kind]:
            logger.debug("landmark detector %s: %s%s (further cases are counted in CombinedDetector.fallbacks)",
                         NAME, kind, f" ({detail})" if detail else "")
        self.fallbacks[kind] += 1
