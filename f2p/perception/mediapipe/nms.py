"""MediaPipe's weighted non-maximum suppression of overlapping detections.

Source: ``WeightedNonMaxSuppression`` in mediapipe/calculators/util/non_max_suppression_calculator.cc, with the
options of mediapipe/modules/face_detection/face_detection.pbtxt (``min_suppression_threshold: 0.3``,
``overlap_type: INTERSECTION_OVER_UNION``, ``algorithm: WEIGHTED``). Repeatedly: take the highest-scoring remaining
detection; every remaining detection whose IoU with it exceeds the threshold (itself included) is a candidate; the
output is the score-weighted mean of the candidates' boxes (corner by corner) and keypoints, with the top score;
the candidates are removed. (A zero-area top box, at which MediaPipe's loop stops, is kept here as its own
candidate and the loop goes on.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.perception.detection import box_iou

MIN_SUPPRESSION_THRESHOLD = 0.3
"""IoU above which a detection merges into a higher-scoring one (face_detection.pbtxt)."""


def weighted_nms(boxes: Tensor, keypoints: Tensor, scores: Tensor,
                 threshold: float = MIN_SUPPRESSION_THRESHOLD) -> tuple[Tensor, Tensor, Tensor]:
    """Merge overlapping detections into their score-weighted means.

    Args:
        boxes: (N, 4) x0, y0, x1, y1.
        keypoints: (N, K, 2).
        scores: (N,) confidences (the weights).
        threshold: IoU above which two detections are one.

    Returns:
        (M, 4) merged boxes, (M, K, 2) merged keypoints and (M,) their top scores, highest score first.
    """
    order = scores.argsort(descending=True, stable=True)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    merged_boxes, merged_keypoints, top_scores = [], [], []
    remaining = torch.arange(len(scores))
    while remaining.numel():
        top = remaining[0]
        candidate = box_iou(boxes[remaining], boxes[top]) > threshold  # (R,)
        candidate[0] = True  # the top detection is always its own candidate
        members = remaining[candidate]
        weights = scores[members] / scores[members].sum()  # (C,)
        merged_boxes.append(weights @ boxes[members])
        merged_keypoints.append(torch.einsum("c,ckd->kd", weights, keypoints[members]))
        top_scores.append(scores[top])
        remaining = remaining[~candidate]
    if not top_scores:
        return boxes, keypoints, scores
    return torch.stack(merged_boxes), torch.stack(merged_keypoints), torch.stack(top_scores)
