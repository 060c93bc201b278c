"""Optional ArcFace identity backbone: insightface arcface_torch's IResNet, loaded from a user's ``.pth``.

The module names follow arcface_torch's ``backbones/iresnet.py``, so its state dicts (``backbone.pth``,
e.g. ms1mv3 iresnet50 / iresnet100) load unchanged. No weights ship with f2p. Input: 112x112 RGB
chips aligned with the standard 5-point ArcFace template, scaled to [-1, 1]; output: 512-d features
(not normalised; compare with cosine similarity).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor, nn

from f2p.conventions import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, NUM_LANDMARKS, RIGHT_EYE
from f2p.perception.align import similarity_transform, warp_image
from f2p.perception.identity.base import FaceEmbedder
from f2p.perception.identity.dlib_format import ModelFileError
from f2p.torch_files import read_weights_only

ARCFACE_CHIP_SIZE = 112
ARCFACE_EMBEDDING_DIM = 512
IRESNET_LAYERS = {"iresnet50": (3, 4, 14, 3), "iresnet100": (3, 13, 30, 3)}
"""Residual blocks per stage of the named arcface_torch backbones."""

_STAGE_CHANNELS = (64, 128, 256, 512)
_FEATURE_MAP = 7  # 112 halved four times
_BN_EPS = 1e-5

ARCFACE_TEMPLATE_112 = (
    (38.2946, 51.6963),  # eye centre on the image left (the subject's right eye)
    (73.5318, 51.5014),  # eye centre on the image right
    (56.0252, 71.7366),  # nose tip
    (41.5493, 92.3655),  # mouth corner on the image left
    (70.7299, 92.2041),  # mouth corner on the image right
)
"""insightface's ``arcface_dst``: the 5 points in the 112x112 chip (OpenCV pixels, as f2p's)."""


def arcface_points(landmarks: Tensor) -> Tensor:
    """(B, 68, 2) iBUG landmarks -> (B, 5, 2) ArcFace points: eye centres, nose tip (30), mouth corners (48, 54)."""
    B, L, _ = landmarks.shape
    if L != NUM_LANDMARKS:
        raise ValueError(f"expected (B, {NUM_LANDMARKS}, 2) landmarks, got {tuple(landmarks.shape)}")
    right_eye = landmarks[:, list(RIGHT_EYE)].mean(1)  # subject's right = image left in a frontal photo
    left_eye = landmarks[:, list(LEFT_EYE)].mean(1)
    others = landmarks[:, [NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT]]
    return torch.cat([right_eye[:, None], left_eye[:, None], others], dim=1)


def extract_arcface_chips(images: Tensor, landmarks: Tensor) -> Tensor:
    """(B, 3, H, W) images, (B, 68, 2) landmarks -> (B, 3, 112, 112) chips, as insightface's ``norm_crop``.

    Least-squares similarity from the 5 points to ``ARCFACE_TEMPLATE_112`` (skimage's estimate), then
    a bilinear warp with black outside (cv2.warpAffine, borderValue 0). Differentiable.
    """
    points = arcface_points(landmarks)  # (B, 5, 2)
    template = points.new_tensor(ARCFACE_TEMPLATE_112).expand_as(points)
    matrix = similarity_transform(points, template)  # (B, 2, 3) image -> chip
    return warp_image(images, matrix, (ARCFACE_CHIP_SIZE, ARCFACE_CHIP_SIZE), padding_mode="zeros")


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation residual block: BN, conv3x3, BN, PReLU, conv3x3 (stride), BN, plus the shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=_BN_EPS)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels, eps=_BN_EPS)
            )
            if stride != 1 or in_channels != channels
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C', H / stride, W / stride)."""
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """arcface_torch's IResNet: (B, 3, 112, 112) in [-1, 1] -> (B, 512).

    Args:
        layers: residual blocks in each of the four stages (see ``IRESNET_LAYERS``).
    """

    def __init__(self, layers: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv1 = _conv3x3(3, _STAGE_CHANNELS[0])
        self.bn1 = nn.BatchNorm2d(_STAGE_CHANNELS[0], eps=_BN_EPS)
        self.prelu = nn.PReLU(_STAGE_CHANNELS[0])
        in_channels = _STAGE_CHANNELS[0]
        for index, (channels, count) in enumerate(zip(_STAGE_CHANNELS, layers), start=1):
            blocks = [IBasicBlock(in_channels, channels, stride=2)]
            blocks += [IBasicBlock(channels, channels) for _ in range(count - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            in_channels = channels
        self.bn2 = nn.BatchNorm2d(in_channels, eps=_BN_EPS)
        self.fc = nn.Linear(in_channels * _FEATURE_MAP * _FEATURE_MAP, ARCFACE_EMBEDDING_DIM)
        self.features = nn.BatchNorm1d(ARCFACE_EMBEDDING_DIM, eps=_BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 112, 112) -> (B, 512)."""
        B = x.shape[0]
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, 7, 7)
        return self.features(self.fc(self.bn2(x).reshape(B, -1)))

    @staticmethod
    def layers_of(state_dict: dict[str, Tensor]) -> tuple[int, int, int, int]:
        """Residual blocks per stage, read from a state dict's ``layer<stage>.<block>.`` keys."""
        counts = [0, 0, 0, 0]
        for key in state_dict:
            if match := re.match(r"layer([1-4])\.(\d+)\.", key):
                stage, block = int(match[1]) - 1, int(match[2])
                counts[stage] = max(counts[stage], block + 1)
        return tuple(counts)  # type: ignore[return-value]


class ArcFaceEmbedder(FaceEmbedder):
    """ArcFace (arcface_torch IResNet): 112x112 chips aligned by 5 points -> 512-d features.

    Args:
        network: an ``IResNet`` with trained weights (see ``from_file``).
    """

    chip_size = ARCFACE_CHIP_SIZE
    embedding_dim = ARCFACE_EMBEDDING_DIM

    def __init__(self, network: IResNet) -> None:
        super().__init__()
        self.network = network
        self._freeze()

    @classmethod
    def from_file(cls, path: str | Path) -> ArcFaceEmbedder:
        """Load an arcface_torch backbone state dict; the depth (iresnet50, 100, ...) is read from its keys.

        Only tensors are unpickled (``torch_files.read_weights_only``).

        Raises:
            ModelFileError: unreadable file, not a state dict, or keys/shapes of another network.
        """
        state = read_weights_only(path, "an arcface_torch backbone state dict")
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ModelFileError(path, "not a state dict of tensors (save backbone.state_dict())")
        layers = IResNet.layers_of(state)
        if 0 in layers:
            raise ModelFileError(path, f"not an arcface_torch IResNet state dict (blocks per stage {layers})")
        network = IResNet(layers)
        try:
            network.load_state_dict(state)
        except RuntimeError as err:
            raise ModelFileError(path, f"does not match an IResNet with stages {layers}: {err}") from err
        return cls(network)

    def align(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """(B, 3, H, W) images, (B, 68, 2) landmarks -> (B, 3, 112, 112) ArcFace chips."""
        return extract_arcface_chips(images, landmarks)

    def forward(self, chips: Tensor) -> Tensor:
        """(B, 3, 112, 112) RGB chips in [0, 1] -> (B, 512) features."""
        B, C, H, W = chips.shape
        S = ARCFACE_CHIP_SIZE
        if (C, H, W) != (3, S, S):
            raise ValueError(f"expected chips of shape (B, 3, {S}, {S}), got {tuple(chips.shape)}")
        return self.network(chips * 2.0 - 1.0)  # arcface_torch: (x / 255 - 0.5) / 0.5
