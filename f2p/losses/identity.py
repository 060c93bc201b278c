"""Identity loss: cosine distance between face-recognition embeddings of render and photo."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def identity_loss(embedding: Tensor, target: Tensor) -> Tensor:
    """``loss_b = 1 - cos(e_b, t_b)``.

    Args:
        embedding: (B, D) embedding of the render; target: (B, D) embedding of the photo.

    Returns:
        (B,) loss in [0, 2].
    """
    return 1.0 - F.cosine_similarity(embedding, target, dim=1)
