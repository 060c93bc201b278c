"""Optional pretrained weights of torchvision networks, never required: from a file or torchvision's cache."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch
import torchvision
from torch import Tensor, nn

from f2p.errors import ModelFileError
from f2p.torch_files import read_weights_only

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION = "torchvision"


def torchvision_state_dict(arch: str, weights: str) -> dict[str, Tensor]:
    """The state dict named by ``weights`` for the torchvision model ``arch``.

    Args:
        arch: torchvision model name (resnet18, vgg16, ...).
        weights: "torchvision" for torchvision's default ImageNet weights from torch hub's cache
            (``$TORCH_HOME/hub/checkpoints``; downloaded there only when online), or the path of a state dict
            (read weights-only, ``torch_files.read_weights_only``; a Lightning-style ``{"state_dict": ...}`` is
            unwrapped).

    Raises:
        FileNotFoundError: the file is missing, or the torchvision weights are neither cached nor downloadable; the
            message says where to put them.
        ModelFileError: the file is not a torch file of tensors (one line naming it).
    """
    if weights != TORCHVISION:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{arch} weights {path} not found (use weights: null for random initialisation)")
        state = read_weights_only(path, f"a state dict of {arch} weights")
        if not isinstance(state, dict):
            raise ModelFileError(path, f"not a state dict of {arch} weights (a {type(state).__name__})")
        return state.get("state_dict", state)
    default = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        return default.get_state_dict(progress=False)
    except (URLError, OSError) as error:
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
        raise FileNotFoundError(f"torchvision weights of {arch} are not cached at {target} and cannot be downloaded "
                                f"({error}); copy {default.url} there, or use weights: null") from error


class ImageNetNormalize(nn.Module):
    """(B, 3, H, W) RGB in [0, 1] -> ImageNet-normalised input of torchvision networks."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std
