"""Exporting one photo's parameters (from fitting or a regressor) as the per-photo output contract."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from f2p.conventions import MODEL_TO_OPENCV
from f2p.export.arkit import ArkitMap, arkit_document, arkit_map, unavailable_document
from f2p.export.diagnostics import landmarks_outside, region_residuals
from f2p.export.figures import ShapeView
from f2p.export.gltf import HeadGlb
from f2p.export.results import PhotoPictures, PhotoResult, write_photo_outputs
from f2p.export.texture_bake import UVLayout, bake_texture, uv_layout
from f2p.morphable.registry import ModelNotFoundError
from f2p.output_sets import DEFAULT_OUTPUTS, OUTPUTS, OutputSet
from f2p.perception.align import apply_affine
from f2p.perception.identity.base import FaceEmbedder, identity_similarity
from f2p.perception.photo import PhotoSample
from f2p.render.cameras import PinholeCamera, default_focal_px
from f2p.render.lighting import LAMBERT_BAND, NUM_SH, sh_basis
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import euler_to_matrix
from f2p.scene.compose import SceneOutput, mesh_scene, paint_sockets, render_scene
from f2p.scene.params import SceneSpec
from f2p.scene.uncrop import uncrop_camera

log = logging.getLogger("f2p")

OVERLAY_MAX_SIDE = 1024
"""The photo-sized overlay is rendered at most this large, then resized to the photo."""

CLAY_ALBEDO = 0.75
"""Grey albedo of the shape views of fit.png."""

SHAPE_YAWS_DEG = (0.0, 70.0)
"""Head yaw of the shape views of fit.png, front then side (+yaw turns the face to the subject's left)."""

SHAPE_LIGHT_DIRECTION = (0.0, 0.5, 1.0)
"""Where the light of the shape views comes from, in the light frame (x right, y up, z to the viewer): front-top."""

SHAPE_AMBIENT, SHAPE_DIRECT = 0.3, 0.8
"""Shading of the shape views' light on a surface it does not reach, and the extra on one facing it."""

SHAPE_MARGIN = 1.3
"""The box of the fitted landmarks (brows to chin) fills 1 / SHAPE_MARGIN of the shape views' image."""


def clay_light(batch_size: int, device: torch.device | str | None = None) -> Tensor:
    """(B, 9, 3) white SH light of the shape views: ``SHAPE_AMBIENT`` plus a directional light from
    ``SHAPE_LIGHT_DIRECTION`` whose second-order SH approximation gives ``SHAPE_DIRECT`` on a surface facing it.

    A delta light from unit direction d has radiance coefficients ``Y_k(d)``; ``sh_basis(d)_k = A_l / pi * Y_k(d)``
    and ``LAMBERT_BAND[l] = A_l / pi`` give them back.
    """
    d = F.normalize(torch.tensor(SHAPE_LIGHT_DIRECTION, dtype=torch.float64), dim=0)
    basis = sh_basis(d)  # (9,)
    band = torch.tensor([LAMBERT_BAND[0]] + [LAMBERT_BAND[1]] * 3 + [LAMBERT_BAND[2]] * 5, dtype=torch.float64)
    directional = basis / band  # Y_k(d)
    directional = directional * SHAPE_DIRECT / float(directional @ basis)  # shading SHAPE_DIRECT at n = d
    directional[0] += SHAPE_AMBIENT / basis[0]
    return directional.float()[None, :, None].expand(batch_size, NUM_SH, 3).to(device).clone()


def shape_cameras(points: Tensor, image_size: tuple[int, int],
                  yaws_deg: tuple[float, ...] = SHAPE_YAWS_DEG) -> PinholeCamera:
    """A camera per yaw (batch of K) that frames ``points`` of an unposed mesh with the head turned by that yaw.

    Args:
        points: (N, 3) what to frame (the mesh's landmarks), model space, without head pose.
        image_size: (H, W).
        yaws_deg: the K head yaws, degrees.

    Each view centres the points' bounding box; all share the distance at which the frontal box, times
    ``SHAPE_MARGIN``, fits the image, so that the views have the same scale.
    """
    H, W = image_size
    focal = default_focal_px(image_size)
    angles = points.new_tensor([[yaw, 0.0, 0.0] for yaw in yaws_deg])  # (K, 3) yaw, pitch, roll
    R_head = euler_to_matrix(angles)  # (K, 3, 3)
    turned = points @ R_head.transpose(1, 2)  # (K, N, 3) model space
    low, high = turned.amin(1), turned.amax(1)  # (K, 3)
    centre = (low + high) / 2
    width, height = (high - low)[0, :2].unbind()
    distance = focal * SHAPE_MARGIN * torch.maximum(width / W, height / H)
    to_opencv = MODEL_TO_OPENCV.to(points)
    R = to_opencv @ R_head
    t = distance * points.new_tensor([0.0, 0.0, 1.0]) - centre @ to_opencv.T  # X_cam = M (R_head X - centre) + D z
    K = len(yaws_deg)

    def full(value: float) -> Tensor:
        return points.new_full((K,), value)

    return PinholeCamera(fx=full(focal), fy=full(focal), cx=full((W - 1) / 2), cy=full((H - 1) / 2), R=R, t=t,
                         image_size=(H, W))


@dataclass(frozen=True)
class PhotoOutcome:
    """One photo's result: "ok" with its ``metrics`` (as in metrics.json) and output folder, or "failed" with a
    one-line ``error``."""

    path: str
    status: Literal["ok", "failed"]
    error: str
    metrics: dict[str, float | int | str]
    out_dir: Path | None = None


class PhotoExporter:
    """Renders a photo's parameters in crop and photo pixels and its shape from the front and the side, measures
    them and writes ``out_dir``.

    Args:
        spec: scene specification the parameters belong to.
        renderer: mesh renderer.
        embedder: identity network for the identity-similarity metric, or None.
        outputs: ``output_sets.OUTPUTS``'s choice: "all" files, or "data" (no pictures, no head.glb, and none of the
            renders, shape views and texture bake they need).

    Raises:
        ValueError: an unknown ``outputs``.
    """

    def __init__(self, spec: SceneSpec, renderer: MeshRenderer, embedder: FaceEmbedder | None = None,
                 outputs: OutputSet = DEFAULT_OUTPUTS) -> None:
        if outputs not in OUTPUTS:
            raise ValueError(f"unknown outputs {outputs!r}; use one of {', '.join(OUTPUTS)}")
        self.spec = spec
        self.renderer = renderer
        self.embedder = embedder
        self.pictures = outputs == "all"
        self.head = HeadGlb(spec.model)
        """head.glb's builder, which keeps what no photo changes (the model's morph targets) from photo to photo."""
        self._arkit: ArkitMap | str | None = None
        """The model's ARKit map, or why it has none, once the first photo needed it."""
        self._uv_layout: UVLayout | None = None
        """Where the model's UV triangles cover head.glb's texture, once the first photo needed it."""

    def arkit_document(self, params: dict[str, Tensor]) -> dict:
        """arkit.json of one photo's {group: (K,)} ``params``; the model's map is built once (a model mapped by least
        squares needs ICT: without it arkit.json says so, with a warning logged once)."""
        model = self.spec.model
        if self._arkit is None:
            try:
                self._arkit = arkit_map(model)
            except ModelNotFoundError as error:
                self._arkit = f"no ARKit map for {model.name!r} (least squares against ICT FaceKit): {error}"
                log.warning("%s", self._arkit)
        if isinstance(self._arkit, str):
            return unavailable_document(model, self._arkit)
        return arkit_document(model, params, self._arkit)

    @torch.no_grad()
    def export(self, sample: PhotoSample, params: dict[str, Tensor], out_dir: Path,
               metrics: dict[str, float | int | str], photo_embedding: Tensor | None = None,
               scene: SceneOutput | None = None, render_embedding: Tensor | None = None) -> PhotoOutcome:
        """Write the outputs of one photo.

        Args:
            sample: the photo as prepared for fitting.
            params: {group: (1, K)} parameters of this photo in the crop's scene.
            out_dir: its output folder.
            metrics: extra numbers for metrics.json (steps, seconds, losses, ...).
            photo_embedding: (1, D) identity embedding of the photo crop, or None.
            scene: the full-resolution render of ``params`` in the crop (batch of 1, every triangle, by this
                exporter's renderer or one of the same mode) when the estimator made one; None, or a scene without
                a mesh, is rendered here (without a render when neither pictures nor the identity metric need one).
            render_embedding: (1, D) ``render_embeddings`` of ``scene``'s render when the caller embedded a batch's
                renders at once (``pipeline.PhotoRun.export``: 8 cost about 0.6 of 8 one by one), else None
                (embedded here).
        """
        renders = self.pictures or (self.embedder is not None and photo_embedding is not None)
        if scene is None or scene.mesh is None or (renders and scene.render is None):
            scene = render_scene(self.spec, params, self.renderer) if renders else mesh_scene(self.spec, params)
        fitted_crop = scene.landmarks2d[0]
        device_to_photo = sample.to_photo[None].to(fitted_crop.device)
        fitted = apply_affine(sample.to_photo[None], fitted_crop[None].cpu())[0]
        metrics = {"landmark_rmse_px": float(((fitted - sample.landmarks) ** 2).sum(-1).mean().sqrt()),
                   **region_residuals(fitted, sample.landmarks),
                   "landmarks_outside": landmarks_outside(sample.landmarks, tuple(sample.photo.shape[-2:])),
                   "landmarks_from": sample.source, "faces_found": sample.faces_found, **metrics}
        if self.embedder is not None and photo_embedding is not None:
            rendered = (self.render_embeddings(scene.render.image, fitted_crop[None]) if render_embedding is None
                        else render_embedding)
            metrics["identity_similarity"] = float(identity_similarity(rendered, photo_embedding)[0])
        photo_params = {k: v[0] for k, v in params.items()}
        camera = uncrop_camera(scene.camera, device_to_photo, tuple(sample.photo.shape[-2:]))
        result = PhotoResult(image_path=sample.path, params=photo_params, camera=camera, verts=scene.mesh.verts[0],
                             faces=self.spec.model.faces, colors=scene.colors[0], detected=sample.landmarks,
                             fitted=fitted, metrics=metrics)
        pictures = self._pictures(sample, params, scene, camera, device_to_photo) if self.pictures else None
        write_photo_outputs(out_dir, self.spec.model, result, self.arkit_document(photo_params), self.head, pictures)
        return PhotoOutcome(sample.path, "ok", "", metrics, out_dir)

    def _pictures(self, sample: PhotoSample, params: dict[str, Tensor], scene: SceneOutput, camera: PinholeCamera,
                  to_photo: Tensor) -> PhotoPictures:
        """overlay.png's, fit.png's and head.glb's texture's content: the renders of ``params`` (batch of 1) with
        ``scene``'s colours in the crop (``scene``'s render) and in the photo (``camera``; ``to_photo``: (1, 2, 3)
        crop to photo pixels), the shape views and the texture baked from the photo."""
        model = self.spec.model
        photo_render, photo_mask, photo_depth = self._render_photo(params, scene, to_photo,
                                                                   tuple(sample.photo.shape[-2:]))
        texture = None if getattr(model, "uv", None) is None else bake_texture(
            scene.mesh.verts[0], model.faces, self.uv_layout(scene.mesh.verts.device), scene.colors[0], camera,
            sample.photo, photo_depth).image
        return PhotoPictures(photo=sample.photo, photo_render=photo_render.cpu(), photo_mask=photo_mask.cpu(),
                             crop=sample.crop, crop_render=scene.render.image[0].cpu(),
                             crop_mask=scene.render.mask[0].cpu(),
                             crop_detected=sample.crop_landmarks, crop_fitted=scene.landmarks2d[0].cpu(),
                             shape_views=self.shape_views(scene.mesh.verts[0], scene.mesh.landmarks[0]),
                             texture=texture)

    @torch.no_grad()
    def render_embeddings(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """(B, D) identity embeddings of (B, 3, S, S) crop renders aligned by their (B, 68, 2) fitted landmarks, for
        the identity-similarity metric; needs an embedder."""
        return self.embedder.embed(images, landmarks)

    def uv_layout(self, device: torch.device) -> UVLayout:
        """The model's ``texture_bake.uv_layout`` on ``device``, built at the first photo and kept."""
        if self._uv_layout is None or self._uv_layout.bary.device != device:
            self._uv_layout = uv_layout(self.spec.model.uv, self.spec.model.faces_uv, device=device)
        return self._uv_layout

    def shape_views(self, verts: Tensor, landmarks: Tensor) -> tuple[ShapeView, ...]:
        """Grey (clay) renders of the (V, 3) unposed mesh at the crop's size, framed on its (68, 3) ``landmarks``, one
        per ``SHAPE_YAWS_DEG``, with the fixed ``clay_light`` and the model's sockets in their ``SOCKET_GREYS``; on the
        device of ``verts``."""
        model = self.spec.model
        K, (V, _) = len(SHAPE_YAWS_DEG), verts.shape
        camera = shape_cameras(landmarks, self.spec.image_size)
        clay = paint_sockets(model, verts.new_full((K, V, 3), CLAY_ALBEDO))
        render = self.renderer(verts.expand(K, V, 3), model.faces, camera, clay_light(K, verts.device), colors=clay)
        captions = [f"shape, yaw {yaw:g} deg" if yaw else "shape, front" for yaw in SHAPE_YAWS_DEG]
        return tuple(ShapeView(caption, render.image[k].cpu(), render.mask[k].cpu())
                     for k, caption in enumerate(captions))

    def _render_photo(self, params: dict[str, Tensor], scene: SceneOutput, to_photo: Tensor,
                      photo_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """Render ``scene``'s mesh in its colours in the photo's pixels, at most OVERLAY_MAX_SIDE on a side (the
        photo's aspect) -> (3, h, w) image, (1, h, w) mask and (h, w) depth at that size (``figures.overlay`` resizes
        the first two onto the photo; the texture bake's visibility test reads the depth)."""
        H, W = photo_size
        factor = min(1.0, OVERLAY_MAX_SIDE / max(H, W))
        size = (max(1, round(H * factor)), max(1, round(W * factor)))
        scale = to_photo.new_tensor([[size[1] / W, 0.0], [0.0, size[0] / H]])
        # photo pixels -> small pixels with the pixel-centre rule x_s = (x + 0.5) * s - 0.5
        to_small = torch.cat([scale @ to_photo[0, :, :2], (scale @ (to_photo[0, :, 2:] + 0.5)) - 0.5], 1)[None]
        camera = uncrop_camera(scene.camera, to_small, size)
        render = self.renderer(scene.mesh.verts, self.spec.model.faces, camera, self.spec.lighting(params),
                               colors=scene.colors)
        return render.image[0], render.mask[0], render.depth[0, 0]
