"""Parameter errors weighed by what the parameters do to the face.

A face model's coefficients are standardised by their prior (or a slider's range), yet they do not move the face
alike: one standard deviation of ICT's first identity component moves the face region by 2.7 mm on average, of its
last ones by 0.05 mm, far below anything a photo shows (the first 8 of its 100 identity components carry 80 % of
the identity's shape variance). A plain RMSE over standardised coefficients counts them alike, so it is ruled by
components no image determines and barely moves whatever a method recovers.

``shape_variance`` gives each component the mean squared face-region displacement of one scale step from the mean
face; ``shape_weighted_rmse`` weighs squared standardised errors by their share of it. The result is 0 for exact
parameters and about 1 for the prior mean (independent unit errors), like the plain RMSE, and for a linear model
with uncorrelated components it is the face-region RMS vertex error relative to the prior's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from f2p.morphable.base import MorphableModel


@torch.no_grad()
def shape_variance(model: MorphableModel, scales: dict[str, Tensor]) -> dict[str, Tensor]:
    """{group: (K,)} mean squared face-region vertex displacement (m^2) of one ``scales[group]`` (K,) step of each
    component of the group, every other parameter at zero (the mean face)."""
    region = model.face_region
    mean = model(**model.zero_params(1)).verts[:, region]  # (1, V_region, 3)
    variance = {}
    for name, scale in scales.items():
        steps = model.zero_params(len(scale))
        steps[name] = torch.diag(scale.to(mean))  # (K, K): row k steps component k
        moved = model(**steps).verts[:, region]  # (K, V_region, 3)
        variance[name] = (moved - mean).pow(2).sum(-1).mean(-1)
    return variance


def shape_weighted_rmse(standardised: dict[str, Tensor], variance: dict[str, Tensor]) -> Tensor:
    """(B,) ``sqrt(sum_k w_k e_k^2)`` over the groups of ``standardised`` ({group: (B, K)} errors in scale units),
    with ``w`` the components' ``variance`` ({group: (K,)}) normalised to sum 1 over those groups; NaN where none
    of them moves the face (an albedo group)."""
    total = sum(variance[name].sum() for name in standardised)
    weighted = sum((errors.pow(2) * variance[name]).sum(1) for name, errors in standardised.items())
    return (weighted / total).sqrt() if total > 0 else torch.full_like(weighted, float("nan"))
