"""Perceptual loss: distance between VGG-16 feature maps of a (masked) render and photo."""

from __future__ import annotations

import torchvision
from torch import Tensor, nn

from f2p.pretrained import ImageNetNormalize, torchvision_state_dict

VGG16_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
"""Indices of the ReLU outputs of ``torchvision.models.vgg16().features``."""


def perceptual_loss(features: list[Tensor], targets: list[Tensor]) -> Tensor:
    """Sum over layers of the mean squared feature difference: ``loss_b = sum_l mean (f_l - t_l)^2``.

    Args:
        features, targets: per layer, (B, C_l, H_l, W_l) feature maps of the render and the photo.

    Returns:
        (B,) loss.
    """
    return sum(((f - t) ** 2).flatten(1).mean(1) for f, t in zip(features, targets))


class PerceptualLoss(nn.Module):
    """VGG-16 perceptual loss over the pixels of a mask; the network is frozen and kept out of checkpoints by the
    systems that use it.

    Args:
        weights: "torchvision" (ImageNet weights from torch hub's cache) or the path of a vgg16 state dict (its
            ``features.*`` entries up to the deepest layer are used); see ``f2p.pretrained.torchvision_state_dict``.
            Random VGG features make a poor loss, so there is no default.
        layers: names from ``VGG16_LAYERS``.
    """

    def __init__(self, weights: str, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")) -> None:
        super().__init__()
        unknown = set(layers) - set(VGG16_LAYERS)
        if unknown or not layers:
            raise ValueError(f"layers must be among {sorted(VGG16_LAYERS)}, got {layers}")
        self.taps = sorted(VGG16_LAYERS[name] for name in layers)
        self.features = torchvision.models.vgg16(weights=None).features[:self.taps[-1] + 1]
        state = torchvision_state_dict("vgg16", weights)
        self.features.load_state_dict({key[len("features."):]: value for key, value in state.items()
                                       if key.startswith("features.") and int(key.split(".")[1]) <= self.taps[-1]})
        self.normalize = ImageNetNormalize()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Stays in eval mode."""
        return super().train(False)

    def _features(self, images: Tensor) -> list[Tensor]:
        out, x = [], self.normalize(images)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                out.append(x)
        return out

    def forward(self, render: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """(B, 3, H, W) render and photo in [0, 1], (B, 1, H, W) mask -> (B,) loss of the masked images."""
        return perceptual_loss(self._features(render * mask), self._features(target * mask))
