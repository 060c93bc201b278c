"""Fitting real photos: batches of ``PhotoSample`` in, exported per-photo results out.

The one machinery behind ``python -m f2p reconstruct`` and the Lightning ``FittingSystem``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from f2p.data.photos import PhotoSample
from f2p.export.photo import PhotoExporter, PhotoOutcome
from f2p.fitting.fitter import Fitter
from f2p.fitting.observations import Observations
from f2p.fitting.schedule import Stage
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec


Initializer = Callable[[Tensor, Tensor], dict[str, Tensor]]
"""(B, 3, S, S) crops and (B, 68, 2) crop landmarks -> {group: (B, K)} starting parameters."""


def regressor_initializer(checkpoint: str | Path, spec: SceneSpec) -> Initializer:
    """Starting parameters from a trained regressor checkpoint; it must be of the same face model as ``spec``.

    Raises:
        ValueError: the checkpoint's face model differs from the one being fitted.
    """
    from f2p.systems.regressor import load_regressor

    regressor = load_regressor(checkpoint, map_location=spec.model.device)
    theirs = {name: group.size for name, group in regressor.spec.model.groups.items()}
    ours = {name: group.size for name, group in spec.model.groups.items()}
    if regressor.spec.model.name != spec.model.name or theirs != ours:
        raise ValueError(f"{checkpoint}: the regressor predicts model {regressor.spec.model.name!r} {theirs}, "
                         f"but the fit uses {spec.model.name!r} {ours}")
    return regressor.predict_params


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
        initializer: predicts starting parameters from crops and their landmarks (a regressor's
            ``predict_params``), or None to start from the mean face.
    """

    def __init__(self, spec: SceneSpec, renderer: MeshRenderer, stages: list[Stage],
                 embedder: nn.Module | None = None, initializer: Initializer | None = None) -> None:
        self.spec = spec
        self.initializer = initializer
        self.renderer = renderer
        self.embedder = embedder
        self.fitter = Fitter(spec, renderer, stages, embedder)
        self.exporter = PhotoExporter(spec, renderer, embedder)
        self.total_steps = sum(stage.steps for stage in stages)

    def fit(self, samples: list[PhotoSample], out_dirs: list[Path],
            on_step: Callable[[str, int, float], None] | None = None,
            ) -> list[PhotoOutcome]:
        """Fit ``samples`` together and write each photo's outputs into its ``out_dirs`` entry."""
        began = time.perf_counter()
        obs = observations(samples, self.embedder, self.spec.model.device)
        init = None
        if self.initializer is not None:
            with torch.no_grad():
                init = self.initializer(obs.image, obs.landmarks)
        result = self.fitter.fit(obs, init=init, on_step=on_step)
        seconds = (time.perf_counter() - began) / len(samples)
        outcomes = []
        for i, (sample, out_dir) in enumerate(zip(samples, out_dirs)):
            if bool(result.failed[i]):
                outcomes.append(PhotoOutcome(sample.path, "failed", "optimisation diverged (NaN or exploding loss) "
                                             f"after {int(result.retries[i])} retries with smaller steps", {}))
                continue
            metrics = {"steps": self.total_steps, "seconds": seconds, "retries": int(result.retries[i]),
                       **{f"loss_{name}": float(value[i]) for name, value in result.losses.items()}}
            params = {name: value[i:i + 1] for name, value in result.params.items()}
            embedding = None if obs.embedding is None else obs.embedding[i:i + 1]
            outcomes.append(self.exporter.export(sample, params, out_dir, metrics, embedding))
        return outcomes
