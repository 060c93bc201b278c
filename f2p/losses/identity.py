"""Identity loss: cosine distance between face-recognition embeddings of render and photo."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def identity_loss(embedding: Tensor, target: Tensor) -> Tensor:
    """``loss_b = 1 - cos(e_b, t_b)``.

    Args:
        embedding: (B, D) embedding of the render; target: (B, D) embedding of the photo.

    Returns:
        (B,) loss in [0, 2].
    """
    return 1.0 - F.cosine_similarity(embedding, target, dim=1)


class IdentityLoss(nn.Module):
    """Embeds a render with an injected face-recognition network and compares with the photo's embedding.

    Args:
        embedder: module with ``embed(images (B, 3, H, W), landmarks (B, 68, 2)) -> (B, D)``.
    """

    def __init__(self, embedder: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, render: Tensor, landmarks: Tensor, target_embedding: Tensor) -> Tensor:
        """(B, 3, H, W) render, (B, 68, 2) its landmarks, (B, D) photo embedding -> (B,) loss."""
        return identity_loss(self.embedder.embed(render, landmarks), target_embedding)
