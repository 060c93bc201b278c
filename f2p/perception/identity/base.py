"""Interface shared by the face-recognition embedders: align to a network's chip, then embed."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch.nn.functional as F
from torch import Tensor, nn


def identity_similarity(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of (B, D) embeddings ``a`` and ``b`` -> (B,), in [-1, 1] (1: same direction)."""
    if a.shape != b.shape:
        raise ValueError(f"embeddings must have the same shape (B, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    return F.cosine_similarity(a, b, dim=1)


class FaceEmbedder(nn.Module, ABC):
    """A frozen face-recognition network: ``forward`` embeds aligned chips, ``embed`` aligns and embeds.

    Parameters never require gradients and the module always stays in eval mode (its batch norms, if
    any, use their running statistics), but gradients flow to the input images and landmarks.
    """

    chip_size: int
    """Side of the square aligned chip ``forward`` expects."""
    embedding_dim: int

    identity_similarity = staticmethod(identity_similarity)

    def _freeze(self) -> None:
        """Called by subclasses once their networks exist: constant parameters, eval mode."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FaceEmbedder:
        """Stays in eval mode whatever ``mode`` is: a training loop around the embedder must not change it."""
        return super().train(False)

    @abstractmethod
    def align(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """(B, 3, H, W) RGB [0, 1] images and (B, 68, 2) landmarks (f2p pixels) -> (B, 3, S, S) chips."""

    @abstractmethod
    def forward(self, chips: Tensor) -> Tensor:
        """(B, 3, S, S) aligned RGB chips in [0, 1] -> (B, D) embeddings."""

    def embed(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """(B, 3, H, W) RGB [0, 1] images and (B, 68, 2) landmarks -> (B, D) embeddings (align + forward)."""
        return self(self.align(images, landmarks))
