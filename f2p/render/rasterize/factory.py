"""Choose a rasterizer backend by name."""

from __future__ import annotations

import torch

from f2p.render.rasterize.fragments import Rasterizer
from f2p.render.rasterize.torch_backend import TorchRasterizer

BACKENDS = ("auto", "torch", "pytorch3d")
"""Names accepted by ``get_rasterizer``."""


def resolve_backend(name: str, device: torch.device | str) -> str:
    """Map ``"auto"`` to ``"pytorch3d"`` on CUDA and ``"torch"`` elsewhere; check other names."""
    if name not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        return "pytorch3d" if torch.device(device).type == "cuda" else "torch"
    return name


def get_rasterizer(name: str = "auto", device: torch.device | str = "cpu") -> Rasterizer:
    """Return the rasterizer called ``name`` ("auto", "torch" or "pytorch3d") for ``device``."""
    resolved = resolve_backend(name, device)
    if resolved == "pytorch3d":
        from f2p.render.rasterize.pytorch3d_backend import PyTorch3DRasterizer  # imports PyTorch3D lazily

        return PyTorch3DRasterizer()
    return TorchRasterizer()
