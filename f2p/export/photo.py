"""Exporting one photo's parameters (from fitting or a regressor) as the per-photo output contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from f2p.export.results import PhotoResult, write_photo_outputs
from f2p.perception.align import apply_affine
from f2p.perception.identity.base import FaceEmbedder, identity_similarity
from f2p.perception.photo import PhotoSample
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import SceneOutput, render_scene
from f2p.scene.params import SceneSpec
from f2p.scene.uncrop import uncrop_camera

OVERLAY_MAX_SIDE = 1024
"""The photo-sized overlay is rendered at most this large, then resized to the photo."""


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
    """Renders a photo's parameters in crop and photo pixels, measures them and writes ``out_dir``.

    Args:
        spec: scene specification the parameters belong to.
        renderer: mesh renderer.
        embedder: identity network for the identity-similarity metric, or None.
    """

    def __init__(self, spec: SceneSpec, renderer: MeshRenderer, embedder: FaceEmbedder | None = None) -> None:
        self.spec = spec
        self.renderer = renderer
        self.embedder = embedder

    @torch.no_grad()
    def export(self, sample: PhotoSample, params: dict[str, Tensor], out_dir: Path,
               metrics: dict[str, float | int | str], photo_embedding: Tensor | None = None,
               scene: SceneOutput | None = None) -> PhotoOutcome:
        """Write the outputs of one photo.

        Args:
            sample: the photo as prepared for fitting.
            params: {group: (1, K)} parameters of this photo in the crop's scene.
            out_dir: its output folder.
            metrics: extra numbers for metrics.json (steps, seconds, losses, ...).
            photo_embedding: (1, D) identity embedding of the photo crop, or None.
            scene: the full-resolution render of ``params`` in the crop (batch of 1) when the estimator made one;
                None renders it here.
        """
        if scene is None:
            scene = render_scene(self.spec, params, self.renderer)
        fitted_crop = scene.landmarks2d[0]
        device_to_photo = sample.to_photo[None].to(fitted_crop.device)
        fitted = apply_affine(sample.to_photo[None], fitted_crop[None].cpu())[0]
        photo_render, photo_mask = self._render_photo(params, scene, device_to_photo, tuple(sample.photo.shape[-2:]))
        metrics = {"landmark_rmse_px": float(((fitted - sample.landmarks) ** 2).sum(-1).mean().sqrt()),
                   "landmarks_from": sample.source, **metrics}
        if self.embedder is not None and photo_embedding is not None:
            rendered = self.embedder.embed(scene.render.image, fitted_crop[None])
            metrics["identity_similarity"] = float(identity_similarity(rendered, photo_embedding)[0])
        write_photo_outputs(out_dir, self.spec.model, PhotoResult(
            image_path=sample.path, params={k: v[0] for k, v in params.items()},
            camera=uncrop_camera(scene.camera, device_to_photo, tuple(sample.photo.shape[-2:])),
            verts=scene.mesh.verts[0], faces=self.spec.model.faces, colors=scene.colors[0], photo=sample.photo,
            photo_render=photo_render.cpu(), photo_mask=photo_mask.cpu(), crop=sample.crop,
            crop_render=scene.render.image[0].cpu(), crop_mask=scene.render.mask[0].cpu(), detected=sample.landmarks,
            fitted=fitted, crop_detected=sample.crop_landmarks, crop_fitted=fitted_crop.cpu(), metrics=metrics))
        return PhotoOutcome(sample.path, "ok", "", metrics, out_dir)

    def _render_photo(self, params: dict[str, Tensor], scene: SceneOutput, to_photo: Tensor,
                      photo_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Render in the photo's pixels (at most OVERLAY_MAX_SIDE, resized up) -> (3, H, W) image, (1, H, W) mask."""
        H, W = photo_size
        factor = min(1.0, OVERLAY_MAX_SIDE / max(H, W))
        size = (max(1, round(H * factor)), max(1, round(W * factor)))
        scale = to_photo.new_tensor([[size[1] / W, 0.0], [0.0, size[0] / H]])
        # photo pixels -> small pixels with the pixel-centre rule x_s = (x + 0.5) * s - 0.5
        to_small = torch.cat([scale @ to_photo[0, :, :2], (scale @ (to_photo[0, :, 2:] + 0.5)) - 0.5], 1)[None]
        camera = uncrop_camera(scene.camera, to_small, size)
        render = self.renderer(scene.mesh.verts, self.spec.model.faces, camera, self.spec.lighting(params),
                               colors=scene.colors)
        image, mask = render.image, render.mask
        if size != (H, W):
            image = F.interpolate(image, size=(H, W), mode="bilinear", align_corners=False)
            mask = F.interpolate(mask, size=(H, W), mode="bilinear", align_corners=False)
        return image[0], mask[0]
