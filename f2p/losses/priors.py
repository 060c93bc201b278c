"""Priors and bounds on parameter groups."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor


def gaussian_prior(values: Tensor, std: Tensor) -> Tensor:
    """Mean squared standardised value: ``loss_b = mean_k (x_bk / std_k)^2``.

    Args:
        values: (B, K) parameters.
        std: (K,) prior standard deviations.

    Returns:
        (B,) loss per sample (1 on average for samples drawn from the prior).
    """
    return ((values / std) ** 2).mean(1)


def bound_penalty(values: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Squared distance outside ``[lower, upper]``: ``loss_b = sum_k relu(l_k - x_bk)^2 + relu(x_bk - u_k)^2``.

    Args:
        values: (B, K) parameters; lower, upper: (K,) bounds.

    Returns:
        (B,) loss per sample, zero inside the bounds.
    """
    below = (lower - values).clamp_min(0.0)
    above = (values - upper).clamp_min(0.0)
    return (below**2 + above**2).sum(1)


SIDE_SUFFIXES = (("_L", "_R"), ("_l", "_r"), ("_Left", "_Right"), ("_left", "_right"))
"""Name endings of the subject's left and right copy of one slider (``cheekSquint_L`` / ``cheekSquint_R``)."""
OPPOSITES = (("Left", "Right"), ("In", "Out"), ("Up", "Down"))
"""Whole camel-case words that name opposite movements of one part (``jawLeft`` / ``jawRight``,
``eyeLookIn_L`` / ``eyeLookOut_L``, ``eyeLookUp_R`` / ``eyeLookDown_R``)."""
MIDLINE_RELATIVE = ("In", "Out")
"""Directions relative to the face's midline: the mirror image of an ``In`` slider is the other side's ``Out``
(``eyeLookIn_L`` pairs with ``eyeLookOut_R``: both eyes look the same way)."""


@dataclass(frozen=True)
class SliderPairs:
    """Pairs of a named slider group (indices into its K components).

    Attributes:
        mirror: (M, 2) long, a slider and its mirror image (left and right copy; for ``MIDLINE_RELATIVE`` words,
            the other side's opposite), which a symmetric face moves together.
        opposing: (O, 2) long, opposite movements of one part, which are not both on at once.
    """

    mirror: Tensor
    opposing: Tensor

    @property
    def count(self) -> int:
        return len(self.mirror) + len(self.opposing)


def _words(name: str) -> list[str]:
    """camelCase words of a slider name without its side suffix: ``eyeLookIn`` -> ["eye", "Look", "In"]."""
    return re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)


def _split_side(name: str) -> tuple[str, int]:
    """(stem, side): side +1 for a left, -1 for a right suffix (``SIDE_SUFFIXES``), 0 for none."""
    for left, right in SIDE_SUFFIXES:
        if name.endswith(left):
            return name[: -len(left)], 1
        if name.endswith(right):
            return name[: -len(right)], -1
    return name, 0


def slider_pairs(names: tuple[str, ...]) -> SliderPairs:
    """The mirror and opposing pairs of a slider group from its component names (rules: ``SIDE_SUFFIXES``,
    ``OPPOSITES``, ``MIDLINE_RELATIVE``); names that match no rule are in no pair."""
    index = {name: k for k, name in enumerate(names)}
    swap = {a: b for pair in OPPOSITES for a, b in (pair, pair[::-1])}

    def opposite(stem: str) -> str | None:
        words = _words(stem)
        flips = [i for i, word in enumerate(words) if word in swap]
        if len(flips) != 1 or "".join(words) != stem:
            return None
        words[flips[0]] = swap[words[flips[0]]]
        return "".join(words)

    mirror, opposing = set(), set()
    for name, k in index.items():
        stem, side = _split_side(name)
        suffix = name[len(stem):]
        other_stem = opposite(stem)
        if other_stem is not None and other_stem + suffix in index:
            opposing.add(tuple(sorted((k, index[other_stem + suffix]))))
        if side == 0:
            continue
        partner_suffix = next(r if side > 0 else left for left, r in SIDE_SUFFIXES if suffix in (left, r))
        relative = other_stem is not None and any(w in MIDLINE_RELATIVE for w in _words(stem))
        partner = (other_stem if relative else stem) + partner_suffix
        if partner in index:
            mirror.add(tuple(sorted((k, index[partner]))))

    def table(pairs: set) -> Tensor:
        return torch.tensor(sorted(pairs), dtype=torch.long).reshape(-1, 2)

    return SliderPairs(table(mirror), table(opposing))


def slider_pair_residuals(values: Tensor, pairs: SliderPairs, std: Tensor) -> Tensor:
    """Residuals of the slider-pair prior, whose squares sum to ``slider_pair_prior``.

    ``r = [(x_a - x_b) / s_ab for mirror pairs, min(x_a, x_b) / s_ab for opposing pairs] / sqrt(M + O)`` with
    ``s_ab = sqrt(std_a std_b)``: a lopsided pair and two opposite movements both on cost as much as a slider
    that far from the prior's mean, per pair.

    Args:
        values: (B, K) sliders; pairs: their ``slider_pairs`` (on any device); std: (K,) prior standard deviations.

    Returns:
        (B, M + O) residuals (B, 0 when the group has no pairs).
    """
    mirror, opposing = pairs.mirror.to(values.device), pairs.opposing.to(values.device)
    scale = (std[mirror[:, 0]] * std[mirror[:, 1]]).sqrt()
    lopsided = (values[:, mirror[:, 0]] - values[:, mirror[:, 1]]) / scale
    scale = (std[opposing[:, 0]] * std[opposing[:, 1]]).sqrt()
    overlap = torch.minimum(values[:, opposing[:, 0]], values[:, opposing[:, 1]]) / scale
    return torch.cat([lopsided, overlap], dim=1) / max(pairs.count, 1) ** 0.5


def slider_pair_jacobian(values: Tensor, pairs: SliderPairs, std: Tensor) -> Tensor:
    """The derivative of ``slider_pair_residuals`` in ``values``: a mirror pair's row is ``+-1 / s_ab`` at its two
    sliders, an opposing pair's ``1 / s_ab`` at the smaller one (half at each on a tie, as ``torch.minimum``'s
    derivative), every row divided by ``sqrt(M + O)``.

    Args:
        values: (B, K) sliders; pairs: their ``slider_pairs`` (on any device); std: (K,) prior standard deviations.

    Returns:
        (B, M + O, K) ``d r_bi / d x_bk``.
    """
    B, K = values.shape
    mirror, opposing = pairs.mirror.to(values.device), pairs.opposing.to(values.device)
    M, O = len(mirror), len(opposing)
    jacobian = values.new_zeros(B, M + O, K)
    rows = torch.arange(M, device=values.device)
    scale = (std[mirror[:, 0]] * std[mirror[:, 1]]).sqrt()
    jacobian[:, rows, mirror[:, 0]] = 1.0 / scale
    jacobian[:, rows, mirror[:, 1]] = -1.0 / scale
    rows = torch.arange(M, M + O, device=values.device)
    scale = (std[opposing[:, 0]] * std[opposing[:, 1]]).sqrt()
    a, b = values[:, opposing[:, 0]], values[:, opposing[:, 1]]  # (B, O)
    share = torch.where(a == b, torch.full_like(a, 0.5), (a < b).to(a.dtype))  # of the first slider
    jacobian[:, rows, opposing[:, 0]] = share / scale
    jacobian[:, rows, opposing[:, 1]] = (1.0 - share) / scale
    return jacobian / max(pairs.count, 1) ** 0.5


def slider_pair_prior(values: Tensor, pairs: SliderPairs, std: Tensor) -> Tensor:
    """(B,) ``sum r^2`` of ``slider_pair_residuals``: the mean over pairs of the squared standardised L/R
    difference (mirror pairs) and overlap ``min(x_a, x_b)`` (opposing pairs)."""
    return slider_pair_residuals(values, pairs, std).square().sum(1)


def slider_pair_stats(values: Tensor, pairs: SliderPairs) -> tuple[Tensor, Tensor]:
    """How a rig would see (B, K) sliders: (B,) mean absolute L/R difference over the mirror pairs and (B,) mean
    overlap ``min(a, b)`` over the opposing pairs (NaN where the group has none of that kind)."""
    mirror, opposing = pairs.mirror.to(values.device), pairs.opposing.to(values.device)
    lopsided = (values[:, mirror[:, 0]] - values[:, mirror[:, 1]]).abs().mean(1)
    overlap = torch.minimum(values[:, opposing[:, 0]], values[:, opposing[:, 1]]).mean(1)
    return lopsided, overlap
