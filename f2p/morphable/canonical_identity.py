"""MediaPipe's canonical face in a linear model's own coefficients: where an average face as the detector sees it
lies in the model's identity space.

Fitted once per model: the model's 468 dense points (``morphable.dense.restricted_bases``, the correspondence of
``morphable.correspondence``) are taken close to MediaPipe's canonical face (``load_canonical_face``), alternating
the placement of the canonical face on the current points (the least-squares rotation, the points' centroid and
RMS spread: a least-squares scale would shrink it) with a ridge solve of the unbounded shape groups' coefficients
(bounded groups, expression sliders, stay 0: the canonical face is neutral), until the coefficients settle
(``CANONICAL_TOLERANCE``).

Why: faces on photos, as detected, sit far from ICT's identity prior in one shared direction (the mean of fitted
identities over different people is several prior standard deviations from 0), and so does the canonical face, an
average face independent of any evaluation photo (README, "Shipped network"). The landmark regressor's training
faces can be drawn around it as well as around the model's mean (``LandmarkSampler.canonical_shift``).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from f2p.conventions import MM_PER_M
from f2p.morphable.base import LinearMorphableModel
from f2p.morphable.correspondence import load_canonical_face, similarity_align
from f2p.morphable.dense import restricted_bases

CANONICAL_ITERATIONS = 2000
CANONICAL_TOLERANCE = 1e-3
"""Alternations of placement and coefficients at most, and the change of the coefficients (norm, standardised)
that ends them: the alternation converges slowly, as identity components turn the face too (ICT: mean distance
1.83 mm after 100, 1.72 mm after 1000; under a second)."""
CANONICAL_RIDGE = 1e-2
"""Ridge weight per squared standardised coefficient against the mean squared point distance in mm^2 (ICT: the
canonical face matched to 1.7 mm mean distance, against 4.0 mm for the mean face, 12.3 prior standard deviations
from it)."""

_cache: weakref.WeakKeyDictionary[LinearMorphableModel, dict[str, Tensor]] = weakref.WeakKeyDictionary()


def canonical_coefficients(model: LinearMorphableModel) -> dict[str, Tensor]:
    """{group: (K,)} coefficients of the model's unbounded shape groups that bring its dense points closest to
    MediaPipe's canonical face (module docstring), on the model's device; computed once per model.

    Raises:
        ModelNotFoundError: MediaPipe's canonical face is not installed.
    """
    cached = _cache.get(model)
    if cached is not None and next(iter(cached.values())).device == model.device:
        return cached
    groups = [g for g in model.shape_group_names if not model.groups[g].bounded]
    mean, bases = restricted_bases(model)
    mean = mean.double()
    basis = torch.cat([bases[g].double().reshape(bases[g].shape[0], -1) for g in groups])  # (K, 468 * 3)
    std = torch.cat([torch.tensor(model.groups[g].prior_std, dtype=torch.float64) for g in groups]).to(mean.device)
    canonical = load_canonical_face().to(mean)
    N = len(mean)
    # minimise (1 / N) |(mean + B^T c - A)|^2 mm^2 + ridge |c / std|^2: a linear system in c
    normal = basis @ basis.T * MM_PER_M**2 / N + torch.diag(CANONICAL_RIDGE / std**2)
    coefficients = torch.zeros(len(std), dtype=torch.float64, device=mean.device)
    for _ in range(CANONICAL_ITERATIONS):
        points = mean + (coefficients @ basis).reshape(N, 3)
        _, R, _ = similarity_align(canonical, points)
        target = _size_matched(canonical, points, R)  # (468, 3) the canonical face on the model's points
        previous = coefficients
        coefficients = torch.linalg.solve(normal, basis @ (target - mean).reshape(-1) * MM_PER_M**2 / N)
        if ((coefficients - previous) / std).norm() < CANONICAL_TOLERANCE:
            break
    sizes = [model.groups[g].size for g in groups]
    found = {g: c.to(model.device, torch.float32) for g, c in zip(groups, coefficients.split(sizes))}
    _cache[model] = found
    return found


def _size_matched(source: Tensor, target: Tensor, R: Tensor) -> Tensor:
    """(N, 3) ``source`` rotated by (3, 3) ``R`` and scaled and moved to the centroid and RMS spread of (N, 3)
    ``target``. The least-squares scale would shrink the canonical face wherever the model cannot match it, and the
    alternation would follow it to ever smaller faces; matching spreads keeps the face's size."""
    centred = source - source.mean(0)
    scale = (target - target.mean(0)).square().sum(1).mean().sqrt() / centred.square().sum(1).mean().sqrt()
    return scale * centred @ R.T + target.mean(0)
