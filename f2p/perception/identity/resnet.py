"""PyTorch re-implementation of dlib's face-recognition ResNet (``anet_type`` of dnn_face_recognition_ex.cpp).

dlib's definition, read bottom (input) to top (output)::

    input_rgb_image_sized<150>                    x = (pixel - mean_rgb) / 256
    con<32,7,7,2,2> affine relu max_pool<3,3,2,2>  150 -> 72 -> 35
    alevel4 = 3 x ares<32>                         35
    alevel3 = ares_down<64>  + 3 x ares<64>        17
    alevel2 = ares_down<128> + 2 x ares<128>       8
    alevel1 = ares_down<256> + 2 x ares<256>       4 (the residual branch is 3x3, zero-padded to the 4x4 shortcut)
    alevel0 = ares_down<256>                       2 (1x1 branch zero-padded to 2x2)
    avg_pool_everything, fc_no_bias<128>           raw 128-d descriptor (not normalised; loss_metric)

``ares`` is ``relu(x + block(x))`` and ``ares_down`` is ``relu(avg_pool<2,2,2,2>(x) + block(x))`` with
``block = affine(con3x3(relu(affine(con3x3_stride(x)))))``. dlib pads a convolution by ``k // 2`` only
when its stride is 1 (no padding for stride 2), and ``add_prev`` sums tensors of different shapes by
zero-extending both to the larger size at the end of each dimension (and channels: 32 -> 64 shortcuts
are zero-padded). 29 convolutions in all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from f2p.perception.identity.chip import DLIB_CHIP_SIZE
from f2p.perception.identity.dlib_format import (
    AddPrevLayer,
    AffineLayer,
    ConvLayer,
    DlibNetwork,
    FcLayer,
    Layer,
    PoolLayer,
    ReluLayer,
    TagLayer,
)

EMBEDDING_DIM = 128
INPUT_SCALE = 256.0
"""dlib's input_rgb_image divides (pixel - mean) by 256 (dlib/dnn/input.h)."""

# (channels, residual blocks, whether the first block halves the resolution), from the input upwards.
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))

_SHORTCUT_POOL = PoolLayer(kind="avg", window=(2, 2), stride=(2, 2), padding=(0, 0))
_GLOBAL_POOL = PoolLayer(kind="avg", window=(0, 0), stride=(1, 1), padding=(0, 0))
_STEM_POOL = PoolLayer(kind="max", window=(3, 3), stride=(2, 2), padding=(0, 0))

DlibSlot = Layer | nn.Module
"""One entry of a module's dlib layout: a parameter-free dlib layer it must match, or a module to load."""


class Affine(nn.Module):
    """dlib ``affine`` (batch norm frozen into a per-channel scale and shift): ``y = x * weight + bias``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def add_zero_padded(a: Tensor, b: Tensor) -> Tensor:
    """dlib ``add_prev``: ``a + b`` after zero-extending both (B, C, H, W) tensors to the larger C, H, W."""
    C, H, W = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def extend(t: Tensor) -> Tensor:
        _, c, h, w = t.shape
        return F.pad(t, (0, W - w, 0, H - h, 0, C - c))

    return extend(a) + extend(b)


def _dlib_conv3x3(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d:
    """3x3 convolution with dlib's default padding: 1 for stride 1, none otherwise."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1 if stride == 1 else 0)


class DlibResidual(nn.Module):
    """``ares`` (identity shortcut) or ``ares_down`` (stride 2, 2x2 average-pooled shortcut)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = _dlib_conv3x3(in_channels, out_channels, 2 if downsample else 1)
        self.affine1 = Affine(out_channels)
        self.conv2 = _dlib_conv3x3(out_channels, out_channels, 1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C', H', W') with H' = ceil(H / 2) when downsampling (dlib's padded add)."""
        branch = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_zero_padded(branch, shortcut))

    def dlib_layout(self) -> list[DlibSlot]:
        """This block's layers as dlib stores them, output first (tags and skips have no ids on disk)."""
        branch: list[DlibSlot] = [self.affine2, self.conv2, ReluLayer(), self.affine1, self.conv1, TagLayer()]
        if self.downsample:  # add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>
            return [ReluLayer(), AddPrevLayer(), _SHORTCUT_POOL, TagLayer(), TagLayer(), *branch]
        return [ReluLayer(), AddPrevLayer(), *branch]  # add_prev1<block<tag1<x>>>


class DlibFaceResNet(nn.Module):
    """dlib's face-recognition ResNet: (B, 3, 150, 150) chips in [0, 1] -> (B, 128) raw descriptors.

    Args:
        mean_rgb: per-channel pixel mean (0..255 scale) subtracted by dlib's input layer.
    """

    def __init__(self, mean_rgb: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean_rgb", torch.tensor(mean_rgb, dtype=torch.float32), persistent=True)
        self.conv = nn.Conv2d(3, STAGES[0][0], 7, stride=2, padding=0)
        self.affine = Affine(STAGES[0][0])
        blocks, in_channels = [], STAGES[0][0]
        for channels, count, downsample in STAGES:
            for i in range(count):
                blocks.append(DlibResidual(in_channels, channels, downsample and i == 0))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, EMBEDDING_DIM, bias=False)

    def forward(self, chips: Tensor) -> Tensor:
        """(B, 3, 150, 150) RGB in [0, 1] -> (B, 128)."""
        B, C, H, W = chips.shape
        S = DLIB_CHIP_SIZE
        if (C, H, W) != (3, S, S):
            raise ValueError(f"expected chips of shape (B, 3, {S}, {S}), got {tuple(chips.shape)}")
        x = (chips * 255.0 - self.mean_rgb[:, None, None]) / INPUT_SCALE
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)  # (B, 32, 35, 35)
        x = self.blocks(x)  # (B, 256, 2, 2)
        return self.fc(x.mean(dim=(2, 3)))  # (B, 128)

    def dlib_layout(self) -> list[DlibSlot]:
        """All layers as dlib stores them, output first (the order of ``DlibNetwork.layers``)."""
        layout: list[DlibSlot] = [self.fc, _GLOBAL_POOL]
        for block in reversed(self.blocks):
            layout += block.dlib_layout()
        return layout + [_STEM_POOL, ReluLayer(), self.affine, self.conv]

    @classmethod
    def from_dlib(cls, network: DlibNetwork) -> DlibFaceResNet:
        """Build the network and copy the weights of a parsed dlib file, checking every layer.

        Raises:
            ValueError: the file's layers do not match this architecture.
        """
        model = cls(network.input.mean_rgb)
        if network.input.size != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE):
            raise ValueError(f"expected a {DLIB_CHIP_SIZE}-pixel square input layer, the file has {network.input.size}")
        layout = model.dlib_layout()
        if len(layout) != len(network.layers):
            raise ValueError(f"expected {len(layout)} dlib layers, the file has {len(network.layers)}")
        with torch.no_grad():
            for index, (slot, layer) in enumerate(zip(layout, network.layers)):
                _load_slot(slot, layer, f"layer<{index}>")
        return model


def _load_slot(slot: DlibSlot, layer: Layer, where: str) -> None:
    """Copy ``layer``'s weights into ``slot`` (or check a parameter-free layer matches), in place."""
    if isinstance(slot, nn.Conv2d) and isinstance(layer, ConvLayer):
        if (layer.stride, layer.padding) != (slot.stride, slot.padding) or layer.bias is None:
            raise ValueError(f"{where}: conv stride/padding/bias {layer.stride}/{layer.padding} do not match")
        _copy(slot.weight, layer.weight, where)
        _copy(slot.bias, layer.bias, where)
    elif isinstance(slot, Affine) and isinstance(layer, AffineLayer):
        _copy(slot.weight, layer.gamma, where)
        _copy(slot.bias, layer.beta, where)
    elif isinstance(slot, nn.Linear) and isinstance(layer, FcLayer):
        if layer.bias is not None:
            raise ValueError(f"{where}: expected fc_no_bias, the file's fc has a bias")
        _copy(slot.weight, layer.weight.T, where)  # dlib stores (inputs, outputs)
    elif slot != layer:
        found = type(layer).__name__ if isinstance(layer, (ConvLayer, AffineLayer, FcLayer)) else repr(layer)
        raise ValueError(f"{where}: expected {slot!r}, the file has {found}")


def _copy(target: Tensor, source: Tensor, where: str) -> None:
    if target.shape != source.shape:
        raise ValueError(f"{where}: expected shape {tuple(target.shape)}, the file has {tuple(source.shape)}")
    target.copy_(source)
