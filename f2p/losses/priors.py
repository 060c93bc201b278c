"""Priors and bounds on parameter groups."""

from __future__ import annotations

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
