"""Small faces in large photos: BlazeFace over overlapping square tiles of the photo, at the photo's resolution.

BlazeFace sees a photo letterboxed into its 128 or 192 px input, where a face of a few per cent of a large photo's
side is a few pixels across: in a 4000 x 3000 photo it missed faces under about 250 px (README, "Perception").
When no model finds a face in the whole photo, ``MediaPipeDetector`` shows one BlazeFace model tiles of it
(``tile_levels``): square tiles of half, a quarter, ... of the photo's longer side, down to ``MIN_TILE_SIDE``
pixels, each level's tiles overlapping by ``TILE_OVERLAP`` so that every face up to half a tile's side lies whole
in one of them. The first level on which Face Mesh confirms a face ends the search; the detections of a level's
overlapping tiles are merged first (``merged_boxes``, MediaPipe's weighted non-maximum suppression).
"""

from __future__ import annotations

import math

import torch

from f2p.perception.mediapipe.blazeface import FaceBox
from f2p.perception.mediapipe.nms import weighted_nms
from f2p.perception.mediapipe.roi import Roi

TILE_OVERLAP = 0.5
"""Overlap of neighbouring tiles as a fraction of their side (a tile's step is at most half its side)."""
MIN_TILE_SIDE = 480.0
"""The smallest tile side in pixels. BlazeFace's full-range model finds faces down to about a twentieth of its
input's side (measured on a shared photo pasted at several sizes into 4000 x 3000, 1920 x 1080 and 1280 x 720
photos), so the smallest tiles reach faces of about 24 px (the fit flags faces under
``export.diagnostics.MIN_RELIABLE_FACE_PX``, 40 px, doubtful)."""


def tile_levels(height: int, width: int) -> list[list[Roi]]:
    """The tiles of an (H, W) photo, coarsest level first: per level, upright square ROIs (``roi.Roi``, photo pixels)
    of side ``max(H, W) / 2**k`` (k = 1, 2, ... while the side is at least ``MIN_TILE_SIDE``), row by row; none for
    a photo under ``2 * MIN_TILE_SIDE`` px, which BlazeFace's whole-photo pass already resolves."""
    levels = []
    side = max(height, width) / 2
    while side >= MIN_TILE_SIDE:
        levels.append([Roi(x, y, side) for y in _centres(height, side) for x in _centres(width, side)])
        side /= 2
    return levels


def _centres(extent: int, side: float) -> list[float]:
    """Centres (f2p pixels) of tiles of ``side`` px along a photo axis of ``extent`` px: the first and last flush
    with the photo's edges, evenly spaced at most ``1 - TILE_OVERLAP`` sides apart; one centred tile when the axis
    is no longer than a tile."""
    if extent <= side:
        return [(extent - 1) / 2]
    count = math.ceil((extent - side) / (side * (1 - TILE_OVERLAP))) + 1
    first, last = side / 2 - 0.5, extent - side / 2 - 0.5
    return [first + (last - first) * index / (count - 1) for index in range(count)]


def merged_boxes(boxes: list[FaceBox]) -> list[FaceBox]:
    """Detections of overlapping tiles, each face once (``nms.weighted_nms`` in photo pixels), highest score first."""
    if not boxes:
        return []
    merged, keypoints, scores = weighted_nms(torch.stack([box.box for box in boxes]),
                                             torch.stack([box.keypoints for box in boxes]),
                                             torch.tensor([box.score for box in boxes]))
    return [FaceBox(box, points, float(score)) for box, points, score in zip(merged, keypoints, scores)]
