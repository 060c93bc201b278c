"""The mesh renderer: mesh + camera + SH light -> image, mask, depth, normals, albedo, landmarks.

Composition: camera (world -> screen space) -> rasterizer backend (``Fragments``) -> per-pixel
interpolation of camera-frame vertex normals and albedo (vertex colours or a UV texture) ->
Lambertian SH shading in the light frame -> optional antialiasing of silhouettes (``soft``).

Winding and culling: no back-face culling, so a mesh renders the same whatever its winding and
open meshes (ICT's skin, SFM) show their inside where it faces the camera. Normals follow the
counter-clockwise (outward) winding of f2p's models; see ``vertex_normals``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F_nn
from torch import Tensor, nn

from f2p.render.antialias import antialias, face_neighbours
from f2p.render.cameras import Camera
from f2p.render.interpolate import interpolate_at
from f2p.render.lighting import CAMERA_TO_LIGHT, NUM_SH, sh_shading_indexed
from f2p.render.normals import check_faces, vertex_normals
from f2p.render.rasterize.barycentric import CoveredPixels
from f2p.render.rasterize.factory import get_rasterizer, resolve_backend
from f2p.render.rasterize.fragments import MIN_DEPTH, Fragments, Rasterizer
from f2p.render.texture import UVTexture

DEFAULT_ALBEDO = 0.7
"""Grey albedo used when neither vertex colours nor a texture are given (shape-only models)."""

LANDMARK_DEPTH_TOLERANCE = 0.01
"""Metres. A landmark is occluded when the surface at its pixel is nearer than this margin."""


@dataclass(frozen=True, eq=False)  # tensors inside: compare by identity
class RenderOutput:
    """Everything the renderer produces for a batch of B meshes in (H, W) images.

    Attributes:
        image: (B, 3, H, W) RGB radiance, ``albedo * shading`` on the face and the background colour
            elsewhere (soft mode blends the two along silhouettes). Not clamped, so gradients are kept;
            with albedo and light in the usual ranges it lies in [0, 1].
        mask: (B, 1, H, W) float coverage: 0/1 in hard mode, antialiased with gradients in soft mode.
        depth: (B, 1, H, W) camera depth Z in metres, 0 where empty.
        normals: (B, 3, H, W) unit normals in the OpenCV camera frame, 0 where empty.
        albedo: (B, 3, H, W) unshaded colour, 0 where empty.
        pix_to_face: (B, H, W) long face index, -1 where empty.
        bary: (B, H, W, 3) barycentrics of the face's corners, 0 where empty.
        landmarks2d: (B, L, 2) landmarks in f2p pixels, or None without landmarks.
        landmarks_visible: (B, L) bool, True when a landmark is in the image, in front of the
            camera and not hidden by the surface, or None without landmarks.
    """

    image: Tensor
    mask: Tensor
    depth: Tensor
    normals: Tensor
    albedo: Tensor
    pix_to_face: Tensor
    bary: Tensor
    landmarks2d: Tensor | None = None
    landmarks_visible: Tensor | None = None


def _channels_first(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W)."""
    return x.permute(0, 3, 1, 2)


class MeshRenderer(nn.Module):
    """Differentiable renderer of meshes with shared topology.

    Args:
        backend: rasterizer, "auto" (PyTorch3D on CUDA, the torch backend elsewhere), "torch" or
            "pytorch3d"; resolved per call from the device of the vertices.
        soft: antialias silhouettes so that mask and edge pixels get gradients with respect to the
            vertex positions. Hard mode (default) gives a 0/1 mask without positional gradient.
            Per backend: ``torch`` and ``pytorch3d`` both use the same analytic antialiasing step on
            their hard fragments (``f2p.render.antialias``), so soft renders agree across backends
            like hard ones do. PyTorch3D's own soft rasterization (``blur_radius`` with several
            faces per pixel) is not used: it would change what ``pix_to_face`` and ``bary`` mean.
        background: background colour, a grey level or an (R, G, B) triple in [0, 1].
    """

    def __init__(self, backend: str = "auto", soft: bool = False,
                 background: float | tuple[float, float, float] = 0.0) -> None:
        super().__init__()
        resolve_backend(backend, "cpu")  # fail early on unknown names
        self.backend = backend
        self.soft = soft
        self.background = (float(background),) * 3 if isinstance(background, (int, float)) else tuple(background)
        if len(self.background) != 3:
            raise ValueError(f"background must be a float or an (R, G, B) triple, got {background}")
        self._rasterizers: dict[str, Rasterizer] = {}
        self._topology: tuple[Tensor, int, Tensor] | None = None  # (faces, version, face_neighbours)

    def rasterizer(self, device: torch.device) -> Rasterizer:
        """The backend used for tensors on ``device``."""
        name = resolve_backend(self.backend, device)
        if name not in self._rasterizers:
            self._rasterizers[name] = get_rasterizer(name, device)
        return self._rasterizers[name]

    def forward(self, verts: Tensor, faces: Tensor, camera: Camera, sh_coeffs: Tensor,
                colors: Tensor | None = None, texture: UVTexture | None = None,
                landmarks: Tensor | None = None) -> RenderOutput:
        """Render a batch.

        Args:
            verts: (B, V, 3) vertices in model space (metres). Non-finite vertices drop their faces.
            faces: (F, 3) triangles shared by the batch.
            camera: a ``PinholeCamera`` or ``OrthographicCamera`` of batch size B.
            sh_coeffs: (B, 9, 3) SH light in the light frame (``f2p.render.lighting``).
            colors: (B, V, 3) per-vertex albedo in [0, 1], or None.
            texture: a ``UVTexture``, or None. At most one of ``colors`` and ``texture``; with neither
                the albedo is ``DEFAULT_ALBEDO`` grey.
            landmarks: (B, L, 3) landmark positions in model space, or None.

        Returns:
            ``RenderOutput``.
        """
        if verts.ndim != 3 or verts.shape[-1] != 3:
            raise ValueError(f"verts must have shape (B, V, 3), got {tuple(verts.shape)}")
        B, V, _ = verts.shape
        H, W = camera.image_size
        check_faces(faces, V)
        faces = faces.long()
        self._check_inputs(B, V, camera, sh_coeffs, colors, texture, landmarks)

        # Non-finite vertices (rare: checked once for the batch) are replaced by zeros for the arithmetic,
        # so no NaN reaches a gradient, then marked NaN in screen space so the rasterizers drop their
        # faces, and left out of the normals.
        valid = None if bool(torch.isfinite(verts).all()) else torch.isfinite(verts).all(-1)  # (B, V)
        if valid is not None:
            verts = torch.where(valid[..., None], verts, 0.0)
        verts_cam = camera.to_camera(verts)
        screen = camera.screen_from_camera(verts_cam)
        if valid is not None:
            screen = torch.where(valid[..., None], screen, float("nan"))
        fragments = self.rasterizer(verts.device)(screen, faces, (H, W), camera.is_perspective)

        # Shading runs on the M covered pixels only, then is scattered into the frame.
        pixels = CoveredPixels.from_pix_to_face(fragments.pix_to_face)
        albedo, normals = self._surface(verts_cam, valid, faces, pixels, pixels.gather(fragments.bary), colors,
                                        texture)  # (M, 3) each
        image = self._shade(pixels, albedo, normals, sh_coeffs)  # (B, H, W, 3)
        mask = fragments.mask[..., None].to(image.dtype)  # (B, H, W, 1)
        if self.soft:
            blended = antialias(torch.cat([image, mask], -1), fragments, screen, faces, self._neighbours(faces, V))
            image, mask = blended[..., :3], blended[..., 3:]

        landmarks2d = visible = None
        if landmarks is not None:
            landmarks2d, visible = self._landmarks(landmarks, camera, fragments)
        return RenderOutput(
            image=_channels_first(image), mask=_channels_first(mask), depth=fragments.zbuf[:, None],
            normals=_channels_first(pixels.scatter(normals)), albedo=_channels_first(pixels.scatter(albedo)),
            pix_to_face=fragments.pix_to_face, bary=fragments.bary, landmarks2d=landmarks2d,
            landmarks_visible=visible)

    def reshade(self, render: RenderOutput, faces: Tensor, colors: Tensor, sh_coeffs: Tensor) -> Tensor:
        """The (B, 3, H, W) image of an earlier hard-mode ``render`` of the same geometry (its ``pix_to_face``,
        ``bary`` and ``normals``) with new (B, V, 3) vertex ``colors`` and (B, 9, 3) ``sh_coeffs``, without
        rasterizing again: what ``forward`` draws for them (fitting stages that move only colour and light).

        Raises:
            ValueError: a soft renderer (its silhouettes blend with the geometry's screen positions).
        """
        if self.soft:
            raise ValueError("reshade needs a hard renderer: soft mode antialiases with the geometry")
        pixels = CoveredPixels.from_pix_to_face(render.pix_to_face)
        albedo = interpolate_at(colors, faces.long(), pixels, pixels.gather(render.bary.detach()))  # (M, 3)
        normals = pixels.gather(render.normals.detach().permute(0, 2, 3, 1))  # (M, 3) unit, camera frame
        return _channels_first(self._shade(pixels, albedo, normals, sh_coeffs))

    def _shade(self, pixels: CoveredPixels, albedo: Tensor, normals: Tensor, sh_coeffs: Tensor) -> Tensor:
        """(M, 3) albedo and unit camera-frame normals of the covered pixels -> (B, H, W, 3) Lambertian SH image
        over the background."""
        light_normals = normals @ CAMERA_TO_LIGHT.to(normals).T
        radiance = albedo * sh_shading_indexed(light_normals, sh_coeffs, pixels.batch)  # (M, 3)
        background = torch.tensor(self.background, device=radiance.device, dtype=radiance.dtype)
        return pixels.scatter(radiance, fill=background)

    def _neighbours(self, faces: Tensor, num_vertices: int) -> Tensor:
        """``face_neighbours`` of ``faces``, cached while the same faces tensor comes back unchanged."""
        cached = self._topology
        if cached is None or cached[0] is not faces or cached[1] != faces._version:
            self._topology = (faces, faces._version, face_neighbours(faces, num_vertices))
        return self._topology[2]

    @staticmethod
    def _check_inputs(B: int, V: int, camera: Camera, sh_coeffs: Tensor, colors: Tensor | None,
                      texture: UVTexture | None, landmarks: Tensor | None) -> None:
        if camera.batch_size != B:
            raise ValueError(f"camera batch size {camera.batch_size} differs from verts batch size {B}")
        if sh_coeffs.shape != (B, NUM_SH, 3):
            raise ValueError(f"sh_coeffs must have shape ({B}, {NUM_SH}, 3), got {tuple(sh_coeffs.shape)}")
        if colors is not None and texture is not None:
            raise ValueError("give per-vertex colors or a UV texture, not both")
        if colors is not None and colors.shape != (B, V, 3):
            raise ValueError(f"colors must have shape ({B}, {V}, 3), got {tuple(colors.shape)}")
        if landmarks is not None and (landmarks.ndim != 3 or landmarks.shape[0] != B or landmarks.shape[2] != 3):
            raise ValueError(f"landmarks must have shape ({B}, L, 3), got {tuple(landmarks.shape)}")

    @staticmethod
    def _surface(verts_cam: Tensor, valid: Tensor | None, faces: Tensor, pixels: CoveredPixels, bary: Tensor,
                 colors: Tensor | None, texture: UVTexture | None) -> tuple[Tensor, Tensor]:
        """Albedo (M, 3) and unit camera-frame normals (M, 3) at the covered pixels."""
        vertex_n = vertex_normals(verts_cam, faces, valid)
        per_vertex = vertex_n if colors is None else torch.cat([vertex_n, colors.to(vertex_n.dtype)], -1)
        interpolated = interpolate_at(per_vertex, faces, pixels, bary)  # one gather for both
        normals = F_nn.normalize(interpolated[:, :3], dim=-1)
        if colors is not None:
            albedo = interpolated[:, 3:]
        elif texture is not None:
            albedo = texture.sample(pixels, bary)
        else:
            albedo = torch.full_like(normals, DEFAULT_ALBEDO)
        return albedo, normals

    @staticmethod
    def _landmarks(landmarks: Tensor, camera: Camera, fragments: Fragments) -> tuple[Tensor, Tensor]:
        """(B, L, 3) model-space landmarks -> (B, L, 2) pixels and (B, L) visibility."""
        B, H, W = fragments.pix_to_face.shape
        screen = camera.to_screen(landmarks)  # (B, L, 3)
        u, v, Z = screen.detach().unbind(-1)
        col, row = torch.round(u), torch.round(v)
        inside = torch.isfinite(screen.detach()).all(-1) & (Z > MIN_DEPTH)
        inside &= (col >= 0) & (col <= W - 1) & (row >= 0) & (row <= H - 1)
        pixel = torch.where(inside, row * W + col, torch.zeros_like(row)).long()  # (B, L)
        surface = fragments.zbuf.detach().reshape(B, H * W).gather(1, pixel)
        covered = fragments.pix_to_face.reshape(B, H * W).gather(1, pixel) >= 0
        visible = inside & (~covered | (Z <= surface + LANDMARK_DEPTH_TOLERANCE))
        return screen[..., :2], visible
