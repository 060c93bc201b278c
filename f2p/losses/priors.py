"""Priors and bounds on parameter groups."""

from __future__ import annotations

from torch import Tensor, nn


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


class GaussianPrior(nn.Module):
    """``gaussian_prior`` with stored (K,) standard deviations."""

    def __init__(self, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("std", std.float(), persistent=False)

    def forward(self, values: Tensor) -> Tensor:
        """(B, K) values -> (B,) loss."""
        return gaussian_prior(values, self.std)


class BoundPenalty(nn.Module):
    """``bound_penalty`` with stored (K,) bounds."""

    def __init__(self, lower: Tensor, upper: Tensor) -> None:
        super().__init__()
        self.register_buffer("lower", lower.float(), persistent=False)
        self.register_buffer("upper", upper.float(), persistent=False)

    def forward(self, values: Tensor) -> Tensor:
        """(B, K) values -> (B,) loss."""
        return bound_penalty(values, self.lower, self.upper)
