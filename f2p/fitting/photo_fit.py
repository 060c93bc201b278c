"""Fitting real photos: batches of ``PhotoSample`` in, exported per-photo results out.

The one machinery behind ``python -m f2p reconstruct`` and the Lightning ``FittingSystem``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from f2p.data.photos import PhotoSample
from f2p.export.results import PhotoResult, write_photo_outputs
from f2p.fitting.fitter import Fitter, FitResult
from f2p.fitting.observations import Observations
from f2p.fitting.schedule import Stage
from f2p.perception.align import apply_affine
from f2p.perception.identity.base import identity_similarity
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import render_scene
from f2p.scene.params import LIGHT, NUM_SH, SceneSpec
from f2p.scene.uncrop import uncrop_camera

OVERLAY_MAX_SIDE = 1024
"""The photo-sized overlay is rendered at most this large, then resized to the photo."""


@dataclass(frozen=True)
class PhotoOutcome:
    """One photo's result row: ``status`` is "ok" or "failed" with ``error``; ``metrics`` as in metrics.json."""

    path: str
    status: str
    error: str
    metrics: dict[str, float | int | str]


def observations(samples: list[PhotoSample], embedder: nn.Module | None, device: torch.device) -> Observations:
    """Stack samples into batched observations on ``device`` (embedding the crops when an embedder is given)."""
    crops = torch.stack([s.crop for s in samples]).to(device)
    landmarks = torch.stack([s.crop_landmarks for s in samples]).to(device)
    embedding = None
    if embedder is not None:
        with torch.no_grad():
            embedding = embedder.embed(crops, landmarks)
    return Observations(image=crops, landmarks=landmarks,
                        confidence=torch.stack([s.confidence for s in samples]).to(device),
                        face_mask=torch.stack([s.face_mask for s in samples]).to(device), embedding=embedding)


class PhotoFitter:
    """Fits batches of photos and writes ``DIR/<photo stem>/`` outputs.

    Args:
        spec: scene specification (model, crop size).
        renderer: mesh renderer.
        stages: fitting schedule.
        embedder: identity network (identity term and similarity metric), or None.
    """

    def __init__(self, spec: SceneSpec, renderer: MeshRenderer, stages: list[Stage],
                 embedder: nn.Module | None = None) -> None:
        self.spec = spec
        self.renderer = renderer
        self.embedder = embedder
        self.fitter = Fitter(spec, renderer, stages, embedder)
        self.total_steps = sum(stage.steps for stage in stages)

    def fit(self, samples: list[PhotoSample], out_dirs: list[Path],
            on_step: Callable[[str, int, float], None] | None = None,
            init: dict[str, Tensor] | None = None) -> list[PhotoOutcome]:
        """Fit ``samples`` together and write each photo's outputs into its ``out_dirs`` entry."""
        began = time.perf_counter()
        obs = observations(samples, self.embedder, self.spec.model.device)
        result = self.fitter.fit(obs, init=init, on_step=on_step)
        seconds = (time.perf_counter() - began) / len(samples)
        return [self._export(i, sample, out_dir, obs, result, seconds)
                for i, (sample, out_dir) in enumerate(zip(samples, out_dirs))]

    @torch.no_grad()
    def _export(self, i: int, sample: PhotoSample, out_dir: Path, obs: Observations, result: FitResult,
                seconds: float) -> PhotoOutcome:
        if bool(result.failed[i]):
            return PhotoOutcome(sample.path, "failed", "optimisation diverged (NaN or exploding loss) after "
                                f"{int(result.retries[i])} retries with smaller steps", {})
        params = {name: value[i:i + 1] for name, value in result.params.items()}
        scene = render_scene(self.spec, params, self.renderer)
        crop_render = scene.render
        fitted_crop = scene.landmarks2d[0]
        to_photo = sample.to_photo[None]
        device_to_photo = to_photo.to(fitted_crop.device)
        fitted = apply_affine(to_photo, fitted_crop[None].cpu())[0]
        photo_render, photo_mask = self._render_photo(params, scene, device_to_photo, sample.photo.shape[-2:])
        rmse = float(((fitted - sample.landmarks) ** 2).sum(-1).mean().sqrt())
        metrics: dict[str, float | int | str] = {
            "landmark_rmse_px": rmse,
            "steps": self.total_steps,
            "seconds": seconds,
            "retries": int(result.retries[i]),
            "landmarks_from": sample.source,
            **{f"loss_{name}": float(value[i]) for name, value in result.losses.items()},
        }
        if self.embedder is not None and obs.embedding is not None:
            rendered = self.embedder.embed(crop_render.image, fitted_crop[None])
            metrics["identity_similarity"] = float(identity_similarity(rendered, obs.embedding[i:i + 1])[0])
        write_photo_outputs(out_dir, self.spec.model, PhotoResult(
            image_path=sample.path, params={k: v[0] for k, v in params.items()},
            camera=uncrop_camera(scene.camera, device_to_photo, tuple(sample.photo.shape[-2:])),
            verts=scene.mesh.verts[0], faces=self.spec.model.faces, colors=scene.colors[0], photo=sample.photo,
            photo_render=photo_render.cpu(), photo_mask=photo_mask.cpu(), crop=sample.crop,
            crop_render=crop_render.image[0].cpu(), crop_mask=crop_render.mask[0].cpu(), detected=sample.landmarks,
            fitted=fitted, crop_detected=sample.crop_landmarks, crop_fitted=fitted_crop.cpu(), metrics=metrics))
        return PhotoOutcome(sample.path, "ok", "", metrics)

    def _render_photo(self, params: dict[str, Tensor], scene, to_photo: Tensor,
                      photo_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Render the fit in the photo's pixels (at most OVERLAY_MAX_SIDE, resized up) -> (3, H, W), (1, H, W)."""
        H, W = photo_size
        factor = min(1.0, OVERLAY_MAX_SIDE / max(H, W))
        size = (max(1, round(H * factor)), max(1, round(W * factor)))
        scale = to_photo.new_tensor([[size[1] / W, 0.0], [0.0, size[0] / H]])
        to_small = torch.cat([scale @ to_photo[0, :, :2], (scale @ (to_photo[0, :, 2:] + 0.5)) - 0.5], 1)[None]
        camera = uncrop_camera(scene.camera, to_small, size)
        sh = params[LIGHT].reshape(1, NUM_SH, 3)
        render = self.renderer(scene.mesh.verts, self.spec.model.faces, camera, sh, colors=scene.colors)
        image, mask = render.image, render.mask
        if size != (H, W):
            image = F.interpolate(image, size=(H, W), mode="bilinear", align_corners=False)
            mask = F.interpolate(mask, size=(H, W), mode="bilinear", align_corners=False)
        return image[0], mask[0]
