"""The rasterizer interface: screen-space triangles in, per-pixel ``Fragments`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from f2p.render.normals import check_faces

MIN_DEPTH = 1e-6
"""Metres. Triangles with a vertex at camera depth ``Z <= MIN_DEPTH`` (behind or on the camera plane) are
dropped whole; they are not clipped."""


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class Fragments:
    """The front-most triangle of each pixel (one layer, a hard z-buffer).

    Attributes:
        pix_to_face: (B, H, W) long index into the mesh's faces (F, 3), -1 where empty. The index is
            per mesh (0 <= f < F), not offset by the batch index as in PyTorch3D.
        bary: (B, H, W, 3) barycentric weights of the face's corners (v0, v1, v2) at the pixel centre,
            perspective-correct for pinhole cameras (``b_i / Z_i`` normalised; this is what PyTorch3D's
            ``perspective_correct=True`` computes) and affine for orthographic ones. 0 where empty.
            Differentiable with respect to the screen-space vertices.
        zbuf: (B, H, W) camera depth ``Z`` (metres) of the surface at the pixel centre, 0 where empty.
            Differentiable.
    """

    pix_to_face: Tensor
    bary: Tensor
    zbuf: Tensor

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool, True where a face covers the pixel centre."""
        return self.pix_to_face >= 0


class Rasterizer(Protocol):
    """A rasterizer backend. Pixel centres are at integer f2p pixel coordinates; there is no back-face culling."""

    name: str

    def __call__(self, screen_verts: Tensor, faces: Tensor, image_size: tuple[int, int],
                 perspective_correct: bool) -> Fragments:
        """Rasterize (B, V, 3) screen-space vertices ``(u, v, Z)`` (f2p pixels, camera depth) with
        shared (F, 3) faces into an image of ``image_size`` = (H, W)."""
        ...


def check_inputs(screen_verts: Tensor, faces: Tensor, image_size: tuple[int, int]) -> None:
    """Raise ValueError naming the problem with a rasterizer's inputs."""
    if screen_verts.ndim != 3 or screen_verts.shape[-1] != 3:
        raise ValueError(f"screen_verts must have shape (B, V, 3), got {tuple(screen_verts.shape)}")
    if not screen_verts.is_floating_point():
        raise ValueError(f"screen_verts must be floating point, got {screen_verts.dtype}")
    check_faces(faces, screen_verts.shape[1])
    if len(image_size) != 2 or any(int(s) != s or s <= 0 for s in image_size):
        raise ValueError(f"image_size must be (H, W) positive integers, got {image_size}")


def empty_fragments(screen_verts: Tensor, image_size: tuple[int, int]) -> Fragments:
    """Fragments with no covered pixel (still connected to ``screen_verts`` for autograd)."""
    B = screen_verts.shape[0]
    H, W = image_size
    zero = torch.nan_to_num(screen_verts).sum() * 0.0  # keeps a graph: losses on empty renders backpropagate 0
    return Fragments(
        pix_to_face=torch.full((B, H, W), -1, dtype=torch.long, device=screen_verts.device),
        bary=zero + screen_verts.new_zeros(B, H, W, 3),
        zbuf=zero + screen_verts.new_zeros(B, H, W),
    )
