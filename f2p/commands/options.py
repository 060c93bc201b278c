"""Option values shared by the commands, checked once: the torch device; help texts of shared options. Torch-free at
import (help stays fast)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto | cpu | cuda | cuda:N"
SLIDING_CONTOUR_HELP = ("match the jaw and face-oval points to the model's current silhouette instead of fixed "
                        "vertices, chosen again as the pose changes: for detectors that mark the visible outline of "
                        "turned faces (off by default: with the default detector it fitted the shared photos worse; "
                        "README, How the fit works)")


def resolve_device(name: str) -> torch.device:
    """The torch device an option names: "auto" is CUDA when available, else the CPU.

    Raises:
        ValueError: not a device name, or CUDA asked for where none is available (one line).
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name}: not a device ({DEVICE_HELP})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for, but no CUDA device is available")
    return device
