"""BlazeFace, MediaPipe's face detector: letterboxed photo in, face boxes with 6 keypoints out.

The steps and constants of mediapipe/modules/face_detection/face_detection.pbtxt (the ``FaceDetection`` graph),
with the model options of face_detection_short_range.pbtxt and face_detection_full_range.pbtxt:

1. ``ImageToTensorCalculator``: the photo letterboxed into the square model input (``keep_aspect_ratio: true``,
   ``border_mode: BORDER_ZERO``), values in [-1, 1] (``output_tensor_float_range``).
2. ``SsdAnchorsCalculator``: fixed-size anchors (see ``anchors``).
3. ``TensorsToDetectionsCalculator`` (``num_coords: 16``, ``box_coord_offset: 0``, ``keypoint_coord_offset: 4``,
   ``num_keypoints: 6``, ``reverse_output_order: true`` = x before y, ``sigmoid_score: true``,
   ``score_clipping_thresh: 100``, ``x/y/w/h_scale`` = the input size, per-model ``min_score_thresh``): each anchor's
   box centre and keypoints are offsets in input pixels from the anchor centre, width and height are in input
   pixels; boxes with a negative width or height are dropped.
4. ``NonMaxSuppressionCalculator``: weighted NMS (see ``nms``).
5. ``DetectionProjectionCalculator``: back through the letterbox into photo pixels.

Keypoints, in the photo as seen (MediaPipe's names are from the subject's side): 0 and 1 the eye centres on the
image left and right, 2 the nose tip, 3 the mouth centre, 4 and 5 the ear tragions on the image left and right.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from f2p.errors import ModelFileError
from f2p.perception.mediapipe.anchors import FULL_RANGE_ANCHORS, SHORT_RANGE_ANCHORS, SsdAnchorOptions, \
    ssd_anchor_centres
from f2p.perception.mediapipe.crop import ImagePyramid, crop_roi, model_input
from f2p.perception.mediapipe.models import FACE_DETECTION_FULL_RANGE, FACE_DETECTION_SHORT_RANGE, ModelAsset, \
    model_file
from f2p.perception.mediapipe.nms import weighted_nms
from f2p.perception.mediapipe.roi import Roi, whole_image_roi
from f2p.perception.mediapipe.runtime import LiteRtModel

INPUT_RANGE = (-1.0, 1.0)
"""Value range of the detector's input (``output_tensor_float_range``)."""
NUM_COORDS = 16
"""Values per anchor: box (x, y, w, h) then 6 keypoints (x, y)."""
BOX_VALUES = 4
NUM_KEYPOINTS = 6
SCORE_CLIPPING_THRESH = 100.0
"""Raw scores are clipped to +-this before the sigmoid."""


@dataclass(frozen=True)
class BlazeFaceConfig:
    """One BlazeFace model and its post-processing options.

    Attributes:
        asset: the model file.
        anchors: its anchor options (``anchors.input_size`` is also the box scale).
        min_score: detections scoring below this are dropped (``min_score_thresh``).
    """

    asset: ModelAsset
    anchors: SsdAnchorOptions
    min_score: float


SHORT_RANGE = BlazeFaceConfig(FACE_DETECTION_SHORT_RANGE, SHORT_RANGE_ANCHORS, min_score=0.5)
"""face_detection_short_range.pbtxt: 128 x 128 input, ``min_score_thresh: 0.5``; MediaPipe's Face Mesh uses it."""
FULL_RANGE = BlazeFaceConfig(FACE_DETECTION_FULL_RANGE, FULL_RANGE_ANCHORS, min_score=0.6)
"""face_detection_full_range.pbtxt: 192 x 192 input, ``min_score_thresh: 0.6``; for smaller, farther faces."""
BLAZEFACE_MODELS = {"short": SHORT_RANGE, "full": FULL_RANGE}


@dataclass(frozen=True)
class FaceBox:
    """One BlazeFace detection in photo pixels.

    Attributes:
        box: (4,) x0, y0, x1, y1, outer edges of the face box.
        keypoints: (6, 2) see the module docstring.
        score: confidence in [0, 1].
    """

    box: Tensor
    keypoints: Tensor
    score: float


def decode_boxes(raw: Tensor, anchors: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Raw regressor values -> boxes and keypoints normalised to the model input (edges at 0 and 1).

    Args:
        raw: (N, 16) per anchor: x, y, w, h, then 6 keypoints x, y, in input pixels.
        anchors: (N, 2) anchor centres, normalised (1 x 1 anchors).
        scale: ``x_scale`` = ``y_scale`` = ``w_scale`` = ``h_scale``, the input size in pixels.

    Returns:
        (N, 4) boxes x0, y0, x1, y1 and (N, 6, 2) keypoints.
    """
    centres = raw[:, :2] / scale + anchors  # (N, 2)
    half = raw[:, 2:BOX_VALUES] / scale / 2  # (N, 2)
    keypoints = raw[:, BOX_VALUES:].reshape(-1, NUM_KEYPOINTS, 2) / scale + anchors[:, None]
    return torch.cat([centres - half, centres + half], dim=1), keypoints


def detection_scores(raw: Tensor) -> Tensor:
    """(N,) raw classifier values -> (N,) sigmoid scores, clipped to +-``SCORE_CLIPPING_THRESH`` first."""
    return raw.clamp(-SCORE_CLIPPING_THRESH, SCORE_CLIPPING_THRESH).sigmoid()


class BlazeFace:
    """MediaPipe's BlazeFace face detector on LiteRT.

    Args:
        config: ``SHORT_RANGE`` (faces within about 2 m, as in MediaPipe's Face Mesh) or ``FULL_RANGE``.
        num_threads: LiteRT CPU threads.
        download: fetch the model file when missing (see ``models.model_file``).

    Raises:
        ModelNotFoundError, DownloadError, ModelFileError: see ``models.model_file`` and ``runtime.LiteRtModel``.
    """

    def __init__(self, config: BlazeFaceConfig = SHORT_RANGE, num_threads: int = 1, download: bool = False) -> None:
        self.config = config
        self._anchors = ssd_anchor_centres(config.anchors)  # (N, 2)
        N = len(self._anchors)
        self._model = LiteRtModel(model_file(config.asset, download), (N * NUM_COORDS, N), num_threads)
        size = config.anchors.input_size
        if self._model.input_size != (size, size):
            raise ModelFileError(self._model.path, f"expected a {size}x{size} input, got {self._model.input_size}")

    def detect(self, image: ImagePyramid, rotation: float = 0.0, region: Roi | None = None) -> list[FaceBox]:
        """A photo -> faces in its pixels, highest score first (empty if none).

        Args:
            image: the photo (``crop.ImagePyramid`` of the (3, H, W) RGB image in [0, 1]).
            rotation: show the model its letterbox turned by this angle (radians; ``math.pi``: upside down; between
                multiples of 90 degrees the photo's corners fall outside it); the faces still come in ``image``'s
                pixels, each box the model's square about its centre.
            region: the upright square of the photo the model sees (a tile, ``tiles.tile_levels``); None: the whole
                photo, letterboxed.
        """
        letterbox = replace(whole_image_roi(*image.size) if region is None else region, rotation=rotation)
        size = self.config.anchors.input_size
        tensor = model_input(crop_roi(image, letterbox, size, border="zero"), *INPUT_RANGE)
        raw_boxes, raw_scores = (torch.from_numpy(output) for output in self._model.invoke(tensor))
        boxes, keypoints = decode_boxes(raw_boxes.reshape(-1, NUM_COORDS), self._anchors, size)
        scores = detection_scores(raw_scores.reshape(-1))
        sizes = boxes[:, 2:] - boxes[:, :2]
        keep = (scores >= self.config.min_score) & (sizes >= 0).all(dim=1)  # NaN sizes fail too
        boxes, keypoints, scores = weighted_nms(boxes[keep], keypoints[keep], scores[keep])
        centres = letterbox.to_image(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None])[:, 0]  # (N, 2)
        half = (boxes[:, 2:] - boxes[:, :2]) * letterbox.size / 2  # (N, 2) half the sides, in image pixels
        corners = torch.cat([centres - half, centres + half], dim=1)
        return [FaceBox(box, points, float(score))
                for box, points, score in zip(corners, letterbox.to_image(keypoints), scores)]
