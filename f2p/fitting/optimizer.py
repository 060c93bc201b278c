"""Adam over per-photo parameter tensors with a per-photo step scale, so one photo can be slowed down,
rolled back or frozen without touching the others."""

from __future__ import annotations

import torch
from torch import Tensor


class BatchedAdam:
    """Adam (Kingma & Ba) on tensors whose first dimension is the photo index.

    ``p_b <- p_b - lr_g * step_scale_b * m_hat_b / (sqrt(v_hat_b) + eps)``

    Args:
        params: {group name: (B, K) leaf tensor with requires_grad}.
        lrs: {group name: step size}.
        betas, eps: Adam constants.
    """

    def __init__(self, params: dict[str, Tensor], lrs: dict[str, float], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = params
        self.lrs = lrs
        self.betas = betas
        self.eps = eps
        B = next(iter(params.values())).shape[0]
        device = next(iter(params.values())).device
        self.step_scale = torch.ones(B, device=device)
        self.steps = torch.zeros(B, device=device)  # per photo, so a reset photo restarts its bias correction
        self.m = {name: torch.zeros_like(p) for name, p in params.items()}
        self.v = {name: torch.zeros_like(p) for name, p in params.items()}

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        """One update; ``lr_factor`` scales every step size (learning-rate schedules)."""
        beta1, beta2 = self.betas
        self.steps += 1
        bias1 = (1 - beta1**self.steps)[:, None]  # (B, 1)
        bias2 = (1 - beta2**self.steps)[:, None]
        for name, p in self.params.items():
            if p.grad is None:
                continue
            grad = torch.nan_to_num(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
            self.m[name].mul_(beta1).add_(grad, alpha=1 - beta1)
            self.v[name].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            update = (self.m[name] / bias1) / ((self.v[name] / bias2).sqrt() + self.eps)
            p.sub_(self.lrs[name] * lr_factor * self.step_scale[:, None] * update)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def reset(self, rows: Tensor) -> None:
        """Forget the moments of photos ``rows`` (bool (B,)), e.g. after rolling them back."""
        for name in self.params:
            self.m[name][rows] = 0.0
            self.v[name][rows] = 0.0
        self.steps[rows] = 0.0
