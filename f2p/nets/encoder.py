"""Image encoder and regressor: an aligned face crop in, every parameter group of a ``SceneSpec`` out.

``FaceRegressor = ResNetEncoder (image -> features) + ParamHead (features -> named parameters,
``nets.param_head``)``: an untrained regressor predicts exactly what fitting starts from.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from f2p.nets.landmarks import LandmarkEncoder
from f2p.nets.param_head import ParamHead
from f2p.pretrained import ImageNetNormalize, torchvision_state_dict
from f2p.scene.params import SceneSpec


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its classifier: (B, 3, H, W) RGB in [0, 1] -> (B, feature_dim) features.

    Args:
        arch: torchvision model name: resnet18, resnet34, resnet50, ...
        weights: None for random initialisation (nothing is read or downloaded), "torchvision" for the ImageNet
            weights from torch hub's cache, or the path of a state dict (see ``torchvision_state_dict``; a
            classifier in it is ignored).
    """

    def __init__(self, arch: str = "resnet18", weights: str | None = None) -> None:
        super().__init__()
        if not arch.startswith("resnet"):
            raise ValueError(f"arch must be a torchvision ResNet (resnet18, resnet34, resnet50, ...), got {arch!r}")
        net = torchvision.models.get_model(arch, weights=None)
        if weights is not None:
            state = {k: v for k, v in torchvision_state_dict(arch, weights).items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(f"{weights}: not a {arch} state dict (missing {missing[:3]}, unexpected "
                                 f"{unexpected[:3]})")
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.normalize = ImageNetNormalize()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, feature_dim)."""
        return self.net(self.normalize(images))


class FaceRegressor(nn.Module):
    """Aligned crops (and their landmarks) -> scene parameters in one pass.

    The landmarks place the initial translation (``SceneSpec.translation_covering``) and, with
    ``use_landmarks``, also enter the head through a ``LandmarkEncoder``, next to the image features.

    Args:
        encoder: module mapping (B, 3, S, S) images in [0, 1] to (B, D) features, with a ``feature_dim`` attribute.
        spec: the scene at the regressor's input size S.
        use_landmarks: feed landmarks to the head (then ``forward`` needs them).
        bottleneck: see ``ParamHead``.
    """

    def __init__(self, encoder: nn.Module, spec: SceneSpec, use_landmarks: bool = True, bottleneck: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        self.use_landmarks = use_landmarks
        features = encoder.feature_dim
        if use_landmarks:
            self.landmark_net = LandmarkEncoder(spec)
            features += self.landmark_net.feature_dim
        self.head = ParamHead(features, spec, bottleneck)

    def forward(self, images: Tensor, landmarks: Tensor | None = None) -> dict[str, Tensor]:
        """(B, 3, S, S) crops in [0, 1] and (B, 68, 2) landmarks in their pixels (or None) -> {group: (B, K)}."""
        B, _, H, W = images.shape
        if (H, W) != self.spec.image_size:
            raise ValueError(f"the regressor takes {self.spec.image_size} crops, got {(H, W)}")
        features = self.encoder(images)  # (B, D)
        if self.use_landmarks:
            if landmarks is None:
                raise ValueError("this regressor was built with use_landmarks=True: give the crops' landmarks")
            features = torch.cat([features, self.landmark_net(landmarks)], dim=1)
        return self.head(features, self.spec.initial(B, landmarks))
