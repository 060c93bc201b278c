"""SSD anchors of the BlazeFace detectors, generated as MediaPipe's ``SsdAnchorsCalculator`` does.

Source: mediapipe/calculators/tflite/ssd_anchors_calculator.cc (``GenerateAnchors``) with the options of
mediapipe/modules/face_detection/face_detection.pbtxt (``anchor_offset_x/y: 0.5``, ``aspect_ratios: 1.0``,
``fixed_anchor_size: true``) and the per-model ``strides`` / ``interpolated_scale_aspect_ratio`` of
face_detection_short_range.pbtxt and face_detection_full_range.pbtxt.

With ``fixed_anchor_size`` every anchor is 1 x 1 (normalised), so an anchor is just its centre; the anchor scales
of the calculator only decide how many anchors share a location: one per aspect ratio, plus one when
``interpolated_scale_aspect_ratio > 0``. Consecutive layers with the same stride are merged into one feature map
whose locations carry the anchors of all those layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby

import torch
from torch import Tensor


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The ``SsdAnchorsCalculatorOptions`` that matter for fixed-size anchors.

    Attributes:
        input_size: side of the square model input in pixels (``input_size_width/height``).
        strides: one stride per layer (``strides``; ``num_layers`` is their count).
        interpolated_scale_aspect_ratio: > 0 adds one anchor per layer and location.
        num_aspect_ratios: length of ``aspect_ratios`` (1 for BlazeFace).
        anchor_offset: ``anchor_offset_x`` = ``anchor_offset_y``, in cells.
    """

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    num_aspect_ratios: int = 1
    anchor_offset: float = 0.5

    @property
    def anchors_per_layer(self) -> int:
        """Anchors that one layer places at each location of its feature map."""
        return self.num_aspect_ratios + (self.interpolated_scale_aspect_ratio > 0.0)


SHORT_RANGE_ANCHORS = SsdAnchorOptions(input_size=128, strides=(8, 16, 16, 16), interpolated_scale_aspect_ratio=1.0)
"""face_detection_short_range.pbtxt: ``num_layers: 4``, ``strides: 8 16 16 16``, ratio 1.0: 896 anchors."""
FULL_RANGE_ANCHORS = SsdAnchorOptions(input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0)
"""face_detection_full_range.pbtxt: ``num_layers: 1``, ``strides: 4``, ratio 0.0: 2304 anchors."""


def ssd_anchor_centres(options: SsdAnchorOptions) -> Tensor:
    """Anchor centres in MediaPipe's order.

    Returns:
        (N, 2) x, y of each anchor centre, normalised to the model input ([0, 1], edges of the input at 0 and 1);
        for each merged stride: rows y, then columns x, then the anchors of one location.
    """
    centres = []
    for stride, layers in groupby(options.strides):
        cells = math.ceil(options.input_size / stride)
        per_location = options.anchors_per_layer * len(list(layers))
        steps = (torch.arange(cells, dtype=torch.float64) + options.anchor_offset) / cells
        y, x = torch.meshgrid(steps, steps, indexing="ij")
        grid = torch.stack([x, y], dim=-1).reshape(-1, 1, 2)  # (cells * cells, 1, 2)
        centres.append(grid.expand(-1, per_location, -1).reshape(-1, 2))
    return torch.cat(centres).float()
