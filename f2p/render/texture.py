"""UV textures: an image per batch item and texture coordinates per face corner."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F_nn
from torch import Tensor

from f2p.render.interpolate import interpolate_at
from f2p.render.normals import check_faces
from f2p.render.rasterize.barycentric import CoveredPixels


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class UVTexture:
    """A UV-mapped texture.

    UV convention (OBJ): u to the right, v up, both in [0, 1] across the whole image; (0, 0) is the
    bottom-left corner of the texture image, (1, 1) its top-right corner. Lookups are bilinear and
    clamp at the border.

    Attributes:
        image: (B, 3, Ht, Wt) RGB texture in [0, 1].
        uv: (T, 2) texture coordinates.
        faces_uv: (F, 3) indices into ``uv`` for each face corner (same face order as the mesh).
    """

    image: Tensor
    uv: Tensor
    faces_uv: Tensor

    def __post_init__(self) -> None:
        if self.image.ndim != 4 or self.image.shape[1] != 3:
            raise ValueError(f"texture image must have shape (B, 3, Ht, Wt), got {tuple(self.image.shape)}")
        if self.uv.ndim != 2 or self.uv.shape[1] != 2:
            raise ValueError(f"texture uv must have shape (T, 2), got {tuple(self.uv.shape)}")
        check_faces(self.faces_uv, self.uv.shape[0])

    def sample(self, pixels: CoveredPixels, bary: Tensor) -> Tensor:
        """Colour at covered pixels.

        Args:
            pixels: the M covered pixels of a (B, H, W) render.
            bary: (M, 3) their barycentrics.

        Returns:
            (M, 3) RGB, differentiable with respect to the texture image and the barycentrics.
        """
        B = pixels.shape[0]
        if self.image.shape[0] != B:
            raise ValueError(f"texture image batch {self.image.shape[0]} differs from the render batch {B}")
        uv = interpolate_at(self.uv.expand(B, -1, -1), self.faces_uv.long(), pixels, bary)  # (M, 2)
        grid = pixels.scatter(torch.stack([2.0 * uv[:, 0] - 1.0, 1.0 - 2.0 * uv[:, 1]], -1))  # grid_sample: y down
        colour = F_nn.grid_sample(self.image.to(uv.dtype), grid, mode="bilinear", padding_mode="border",
                                  align_corners=False)  # (B, 3, H, W)
        return pixels.gather(colour.permute(0, 2, 3, 1))
