"""A UV texture of the fitted head baked from the photo, for head.glb's base colour (models with UVs).

Each texel of a ``TEXTURE_SIZE`` x ``TEXTURE_SIZE`` image (glTF's top-left UV origin: texel (i, j) has its centre at
``u = (j + 0.5) / S``, ``v_obj = 1 - (i + 0.5) / S``) is found on the mesh by rasterizing the model's UV triangles
(f2p's rasterizer, UVs scaled to texel pixels as screen positions at a constant depth, affine barycentrics). Its
surface point, interpolated from the fitted mesh, is projected into the photo by the fitted camera:

- where that point faces the camera (its triangle's normal at more than ``MIN_FACING_COS`` to the ray) and is not
  hidden (its depth within ``DEPTH_TOLERANCE_M`` of a depth buffer of the mesh in photo pixels, or in a grid of the
  photo scaled down: the exporter passes the depth of its overlay render, so the mesh is rasterized once in the
  photo for both), the texel is the photo's colour there (bilinear);
- elsewhere it is the fitted vertex colour interpolated over the triangle;
- texels in no UV triangle take the colour of the nearest texel in one (so filtering at UV seams reads no black).

The colours are sRGB-encoded as the photo and f2p's vertex colours are, which is what glTF's base colour texture
holds. Photo texels keep the photo's shading (the fitted light is not divided out), vertex-colour texels are the
fitted albedo, so they can differ in brightness at the edge of what the photo sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from f2p.render.cameras import PinholeCamera
from f2p.render.interpolate import interpolate_at
from f2p.render.rasterize import get_rasterizer
from f2p.render.rasterize.barycentric import CoveredPixels

TEXTURE_SIZE = 512
"""Side of head.glb's baked texture, texels."""
MIN_FACING_COS = 0.1
"""A texel is taken from the photo only where its triangle's normal is more than this cosine from grazing."""
DEPTH_TOLERANCE_M = 0.005
"""Metres. A texel's point is hidden when the photo-space depth buffer there is nearer by more than this."""
UV_DEPTH = 1.0
"""Constant depth of the UV triangles when they are rasterized in texel pixels."""


@dataclass(frozen=True)
class BakedTexture:
    """A baked texture.

    Attributes:
        image: (S, S, 3) uint8 sRGB-encoded colours, row 0 at glTF's v = 0 (the top).
        from_photo: (S, S) bool, True where the texel is the photo's colour, False where it is a vertex colour or
            fills a texel in no UV triangle.
    """

    image: np.ndarray
    from_photo: np.ndarray


def _visible(points_cam: Tensor, normals_cam: Tensor, screen: Tensor, photo_size: tuple[int, int],
             depth: Tensor) -> Tensor:
    """(M,) bool: texel points (M, 3) in the camera frame with their triangles' (M, 3) unit normals and (M, 3)
    ``(u, v, Z)`` in the pixels of an (H, W) ``photo_size`` photo that face the camera and are not hidden by the
    mesh whose (h, w) ``depth`` buffer (0 where empty) covers the photo's grid scaled to h x w."""
    H, W = photo_size
    h, w = depth.shape
    scale = screen.new_tensor([w / W, h / H, 1.0])
    shift = screen.new_tensor([0.5, 0.5, 0.0])  # pixel-centre rule x_s = (x + 0.5) * s - 0.5
    at = ((screen + shift) * scale - shift)[:, :2].round().long()
    inside = (at[:, 0] >= 0) & (at[:, 0] < w) & (at[:, 1] >= 0) & (at[:, 1] < h)
    nearest = depth[at[:, 1].clamp(0, h - 1), at[:, 0].clamp(0, w - 1)]
    facing = -(normals_cam * F.normalize(points_cam, dim=1)).sum(1) > MIN_FACING_COS
    return inside & facing & (nearest > 0) & (screen[:, 2] <= nearest + DEPTH_TOLERANCE_M)


@dataclass(frozen=True)
class UVLayout:
    """Where a model's UV triangles cover a texture: the same for every face of the model, built once
    (``uv_layout``) and reused by ``bake_texture``.

    Attributes:
        pixels: the M covered texels and their triangles.
        bary: (M, 3) their barycentric coordinates in those triangles.
        fill_from: (S * S,) long, for each texel in row-major order the covered texel (an index into ``pixels``)
            whose colour it takes: itself where covered, else the nearest covered one, so that the texture has no
            black gaps at its seams; empty when no texel is covered.
        size: the texture's side S.
    """

    pixels: CoveredPixels
    bary: Tensor
    fill_from: Tensor
    size: int


@torch.no_grad()
def uv_layout(uv: Tensor, faces_uv: Tensor, size: int = TEXTURE_SIZE,
              device: torch.device | str | None = None) -> UVLayout:
    """The ``UVLayout`` of (T, 2) texture coordinates ``uv`` (OBJ's bottom-left origin, ``MorphableModel.uv``) and
    the (F, 3) triangles' corners ``faces_uv`` in a ``size`` x ``size`` texture, on ``device``."""
    texel = torch.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5,
                         torch.full_like(uv[:, 0], UV_DEPTH)], 1).float().to(device)
    fragments = get_rasterizer("auto", texel.device)(texel[None], faces_uv.long().to(texel.device), (size, size),
                                                     False)
    pixels = CoveredPixels.from_pix_to_face(fragments.pix_to_face)
    covered = fragments.mask[0].cpu().numpy()
    fill_from = torch.zeros(0, dtype=torch.long, device=texel.device)
    if covered.any():
        rows, cols = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
        rank = torch.full((size * size,), -1, dtype=torch.long, device=texel.device)  # texel -> its covered index
        rank[pixels.index] = torch.arange(len(pixels.index), device=texel.device)
        fill_from = rank[torch.from_numpy(rows * size + cols).reshape(-1).to(texel.device)]
    return UVLayout(pixels, pixels.gather(fragments.bary), fill_from, size)


@torch.no_grad()
def bake_texture(verts: Tensor, faces: Tensor, layout: UVLayout, colors: Tensor, camera: PinholeCamera,
                 photo: Tensor, depth: Tensor) -> BakedTexture:
    """Bake the photo onto the mesh's UV layout (module docstring).

    Args:
        verts: (V, 3) fitted mesh, model space (world of ``camera``).
        faces: (F, 3) its triangles.
        layout: the model's ``uv_layout`` (on the device of ``verts``).
        colors: (V, 3) fitted vertex colours in [0, 1], sRGB-encoded.
        camera: batch-of-1 pinhole camera in the photo's pixels.
        photo: (3, H, W) the photo in [0, 1], H, W = ``camera.image_size``.
        depth: (h, w) camera depth of the mesh's render in the photo (``RenderOutput.depth``, 0 where empty), at the
            photo's size or scaled down to h x w (same aspect).

    Returns:
        BakedTexture of S x S texels, S = ``layout.size``.
    """
    verts, colors = verts.detach().float(), colors.detach().float().to(verts.device)
    faces = faces.long().to(verts.device)
    pixels, bary = layout.pixels, layout.bary
    surface = interpolate_at(torch.cat([colors, verts], 1)[None], faces, pixels, bary)  # (M, 6), one gather
    albedo, points = surface[:, :3], surface[:, 3:]  # colour, model-space point
    points_cam = camera.to_camera(points[None])[0]
    corners = camera.to_camera(verts[None])[0][faces]  # (F, 3 corners, 3)
    face_normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]),
                               dim=1)  # (F, 3), per triangle, then per texel
    screen = camera.screen_from_camera(points_cam[None])[0]  # (M, 3) photo pixels and depth
    visible = _visible(points_cam, face_normals[pixels.face], screen, camera.image_size, depth.detach().float())
    H, W = camera.image_size
    grid = torch.stack([screen[:, 0] / max(W - 1, 1), screen[:, 1] / max(H - 1, 1)], 1) * 2 - 1  # align_corners
    sampled = F.grid_sample(photo.float().to(verts.device)[None], grid[None, None], mode="bilinear",
                            align_corners=True)[0, :, 0].T  # (M, 3)
    texels = torch.where(visible[:, None], sampled, albedo)
    S = layout.size
    filled = texels.index_select(0, layout.fill_from) if len(layout.fill_from) else texels.new_zeros(S * S, 3)
    image = filled.clamp(0, 1).view(S, S, 3).cpu().numpy()
    from_photo = pixels.scatter(visible[:, None].float())[0, ..., 0].cpu().numpy() > 0.5
    return BakedTexture(image=np.round(image * 255).astype(np.uint8), from_photo=from_photo)
