"""Identity consistency: are the fitted identity coefficients of two photos of one person more alike than those of
two different people?"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class IdentityComparison:
    """Cosine similarities of identity vectors over all pairs of labelled photos.

    Attributes:
        same_mean, different_mean: mean similarity of same-person and different-person pairs.
        same_pairs, different_pairs: number of pairs of each kind.
        separation: probability that a same-person pair is more similar than a different-person pair (ROC AUC;
            ties count one half): 1 = perfectly separated, 0.5 = chance.
    """

    same_mean: float
    different_mean: float
    same_pairs: int
    different_pairs: int
    separation: float


def cosine_similarities(vectors: Tensor) -> Tensor:
    """(N, D) vectors -> (N, N) cosine similarities."""
    unit = F.normalize(vectors, dim=-1)
    return unit @ unit.T


def compare_identities(vectors: Tensor, labels: list[str]) -> IdentityComparison | None:
    """Same- vs different-person similarity of (N, D) identity vectors with one person label each.

    Returns None when there is no same-person pair or no different-person pair.
    """
    N = len(labels)
    similarity = cosine_similarities(vectors)
    upper = torch.triu(torch.ones(N, N, dtype=torch.bool), diagonal=1)
    same_label = torch.tensor([[a == b for b in labels] for a in labels], dtype=torch.bool)
    same, different = similarity[upper & same_label], similarity[upper & ~same_label]
    if same.numel() == 0 or different.numel() == 0:
        return None
    wins = (same[:, None] > different[None, :]).float() + 0.5 * (same[:, None] == different[None, :]).float()
    return IdentityComparison(float(same.mean()), float(different.mean()), same.numel(), different.numel(),
                              float(wins.mean()))
