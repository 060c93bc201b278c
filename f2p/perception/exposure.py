"""Contrast of underexposed faces raised before a landmark predictor that reads raw intensity differences.

dlib's 68-point shape predictor (an ensemble of regression trees) compares differences of pixel intensities with
thresholds learned on well-exposed photos, so a dark, flat face (an indoor shot, a night-time video frame) moves its
points. The luminance of the face's box has a standard deviation of 0.10-0.31 (median 0.19) on the 24 shared
photos, 0.03-0.08 on the same photos darkened (``I ** 1.5 * 0.3`` plus 2 % noise). A face under
``LOW_CONTRAST`` is stretched about its box's mean luminance to ``TARGET_CONTRAST`` (at most ``MAX_GAIN`` times) and
centred at ``TARGET_MEAN``; every other face is left exactly as it is.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOW_CONTRAST = 0.08
"""Luminance standard deviation in the face box (intensities in [0, 1]) under which a face counts as underexposed:
below every shared photo's (0.098 at least)."""
TARGET_CONTRAST = 0.15
"""The standard deviation an underexposed face is stretched to (a quarter of the shared photos have less)."""
TARGET_MEAN = 0.45
"""Mean luminance of a stretched face box."""
MAX_GAIN = 4.0
"""Largest contrast gain (noise grows with it)."""
LUMA = (0.299, 0.587, 0.114)
"""Rec. 601 luminance weights of R, G, B."""


def raise_low_contrast(image: Tensor, box: Tensor) -> Tensor:
    """(3, H, W) RGB image in [0, 1] -> the same image, its contrast raised where the face in ``box`` (x0, y0, x1,
    y1 pixels) is underexposed (module docstring), clamped to [0, 1]; ``image`` itself when it is not."""
    H, W = image.shape[1:]
    x0, y0 = (int(v) for v in box[:2].floor().clamp_min(0).tolist())
    x1, y1 = int(min(float(box[2].ceil()), W)), int(min(float(box[3].ceil()), H))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image
    luma = torch.einsum("c,chw->hw", image.new_tensor(LUMA), image[:, y0:y1, x0:x1])
    std = float(luma.std())
    if std >= LOW_CONTRAST:
        return image
    gain = min(TARGET_CONTRAST / max(std, 1e-6), MAX_GAIN)
    return ((image - float(luma.mean())) * gain + TARGET_MEAN).clamp(0.0, 1.0)
