"""PyTorch3D's mesh rasterizer behind f2p's interface: the reference backend, the default on CUDA.

This file holds every PyTorch3D convention flip. PyTorch3D's NDC has +X left and +Y up, the shorter
image side spans [-1, 1] and pixel centres sit at odd multiples of 1 / S (S = min(H, W)). An f2p
pixel ``(u, v)`` (x right, y down, centre of the top-left pixel at (0, 0)) is therefore::

    x_ndc = (W - 1 - 2 u) / S        y_ndc = (H - 1 - 2 v) / S

and the depth is passed through unchanged, as ``MeshRasterizer`` does with view-space depth. The
mapping is a similarity with positive determinant, so barycentrics are unchanged and no winding
flips. We call ``rasterize_meshes`` (the kernel behind ``MeshRasterizer``) directly because our
vertices are already in screen space: one face per pixel, no blur, no back-face culling, no
clipping, PyTorch3D's own bin-size heuristic (naive, un-binned, on CPU).

PyTorch3D's outputs are mapped back to f2p's ``Fragments``: face indices per mesh (PyTorch3D packs
``b * F + f``), and 0 instead of -1 in ``bary`` and ``zbuf`` of empty pixels. PyTorch3D adds
``kEpsilon = 1e-8`` to every triangle's NDC area; with ``perspective_correct=False`` (orthographic
cameras) this leaves the barycentrics of sub-pixel triangles summing to less than 1 (by up to ~0.2 %
for ICT at 128 px), so we renormalise them (a no-op for perspective-correct ones, already
normalised). The same bias shifts such triangles' depth by up to millimetres, which can change the
visible face on a few pixels (about 1 in 10^4 for ICT); that part is PyTorch3D's result and is kept.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes
from torch import Tensor

from f2p.render.rasterize.fragments import Fragments, check_inputs, empty_fragments

_BEHIND_CAMERA = (0.0, 0.0, -1.0)
"""Stand-in for non-finite vertices: PyTorch3D skips every face with a corner behind the camera."""


def screen_to_pytorch3d_ndc(screen_verts: Tensor, image_size: tuple[int, int]) -> Tensor:
    """(B, V, 3) f2p screen ``(u, v, Z)`` -> (B, V, 3) PyTorch3D NDC ``(x_ndc, y_ndc, Z)``."""
    H, W = image_size
    S = min(H, W)
    u, v, Z = screen_verts.unbind(-1)
    return torch.stack([(W - 1 - 2.0 * u) / S, (H - 1 - 2.0 * v) / S, Z], -1)


class PyTorch3DRasterizer:
    """Hard rasterization with ``pytorch3d.renderer.mesh.rasterize_meshes`` (gradients from its own backward)."""

    name = "pytorch3d"

    def __call__(self, screen_verts: Tensor, faces: Tensor, image_size: tuple[int, int],
                 perspective_correct: bool) -> Fragments:
        """(B, V, 3) screen-space ``(u, v, Z)`` vertices, (F, 3) faces -> ``Fragments`` of size (H, W)."""
        check_inputs(screen_verts, faces, image_size)
        B, V, _ = screen_verts.shape
        F = faces.shape[0]
        if F == 0 or V == 0:
            return empty_fragments(screen_verts, image_size)
        finite = torch.isfinite(screen_verts).all(-1, keepdim=True)
        behind = screen_verts.new_tensor(_BEHIND_CAMERA)
        ndc = screen_to_pytorch3d_ndc(torch.where(finite, screen_verts, behind), image_size)
        meshes = Meshes(verts=ndc.float(), faces=faces.long().expand(B, F, 3))
        pix_to_face, zbuf, bary, _ = rasterize_meshes(
            meshes, image_size=tuple(image_size), blur_radius=0.0, faces_per_pixel=1,
            perspective_correct=perspective_correct, clip_barycentric_coords=False, cull_backfaces=False)
        pix_to_face, zbuf, bary = pix_to_face[..., 0], zbuf[..., 0], bary[..., 0, :]  # drop the K = 1 axis
        covered = pix_to_face >= 0
        batch_offset = (torch.arange(B, device=faces.device) * F).view(B, 1, 1)
        return Fragments(
            pix_to_face=torch.where(covered, pix_to_face - batch_offset, -1),
            bary=torch.where(covered[..., None], bary / bary.sum(-1, keepdim=True), 0.0).to(screen_verts.dtype),
            zbuf=torch.where(covered, zbuf, torch.zeros_like(zbuf)).to(screen_verts.dtype),
        )
