"""Lightning callbacks of the regressor: picture grids for the logger, per-photo prediction outputs.

``RenderGrid``        photo | raw render | refined portrait | overlay for the first validation batch, to W&B
                      (``WandbLogger.log_image``) or, with another or no logger, as PNGs in the log folder.
``PredictionWriter``  ``predict`` writes each photo's outputs and ``summary.csv`` through the photo pipeline
                      (``pipeline.PhotoRun``): the same files as ``python -m f2p reconstruct``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import WandbLogger
from PIL import Image, ImageDraw

from f2p.data import batch as keys
from f2p.export.figures import DETECTED_COLOR, FITTED_COLOR, blend, draw_landmarks, to_pil
from f2p.export.photo import PhotoExporter
from f2p.fitting.estimate import Estimate
from f2p.perception.align import apply_affine
from f2p.perception.crop import CROP_SIZE
from f2p.perception.image_io import load_image
from f2p.perception.photo import PhotoSample, align_sample
from f2p.pipeline import PhotoRun
from f2p.scene.params import SceneSpec

GRID_PANEL = 128
"""Side of one panel of the picture grid, pixels."""
GRID_TITLES = ("photo", "raw render", "refined", "overlay")


def render_grid(pl_module: LightningModule, batch: dict, max_rows: int) -> Image.Image:
    """One row per item: photo | raw render | refined portrait | raw render over the photo with the observed
    (green) and predicted (red) landmarks."""
    images, landmarks = batch[keys.IMAGE][:max_rows], batch[keys.LANDMARKS][:max_rows]
    with torch.no_grad():
        out = pl_module(images, landmarks)
    render = out.scene.render
    S = images.shape[-1]
    scale = GRID_PANEL / S
    grid = Image.new("RGB", (4 * GRID_PANEL, GRID_PANEL * len(images)), (255, 255, 255))
    for row in range(len(images)):
        photo, mask = images[row], render.mask[row]
        panels = [photo, render.image[row] * mask, out.refined[row] * mask, blend(photo, render.image[row], mask)]
        panels = [to_pil(p).resize((GRID_PANEL, GRID_PANEL), Image.Resampling.NEAREST) for p in panels]
        draw_landmarks(panels[3], landmarks[row].cpu().numpy(), DETECTED_COLOR, scale)
        draw_landmarks(panels[3], out.scene.landmarks2d[row].detach().cpu().numpy(), FITTED_COLOR, scale)
        for column, panel in enumerate(panels):
            grid.paste(panel, (column * GRID_PANEL, row * GRID_PANEL))
    draw = ImageDraw.Draw(grid)
    for column, title in enumerate(GRID_TITLES):
        draw.text((column * GRID_PANEL + 4, 2), title, fill=(255, 255, 255))
    return grid


class RenderGrid(Callback):
    """Logs a picture grid of the first validation batch every ``every_n_epochs`` epochs (global rank 0 only).

    Args:
        max_rows: items shown.
        every_n_epochs: logging period.
    """

    def __init__(self, max_rows: int = 8, every_n_epochs: int = 1) -> None:
        self.max_rows = max_rows
        self.every_n_epochs = every_n_epochs

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or not trainer.is_global_zero or trainer.sanity_checking:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        grid = render_grid(pl_module, batch, self.max_rows)
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.log_image("val/renders", [grid], step=trainer.global_step,
                                     caption=[" | ".join(GRID_TITLES)])
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "renders"
        folder.mkdir(parents=True, exist_ok=True)
        grid.save(folder / f"epoch{trainer.current_epoch:04d}_step{trainer.global_step:07d}.png")


class PredictionWriter(BasePredictionWriter):
    """Writes ``output_dir/<name>/`` for every predicted item and ``output_dir/summary.csv`` (global rank 0, rows
    of every rank) through ``pipeline.PhotoRun``, as ``reconstruct`` does.

    Photos (items with a ``path``) are reloaded and re-cropped at ``crop_size`` from their landmarks, so that
    ``fit.png`` and the crop renders match ``reconstruct``; synthetic items are exported as their own photo.
    Parameters do not depend on the crop size (see ``RegressorSystem.predict_params``). ``metrics.json`` gets
    ``"method"`` (the system's ``method``, default ``"regressor"``) and the inference seconds per photo. The end of ``predict`` prints one line saying
    where the outputs are (global rank 0).

    Args:
        output_dir: folder of the per-photo folders.
        crop_size: crop size of the exported photo renders.
    """

    def __init__(self, output_dir: str, crop_size: int = CROP_SIZE) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.crop_size = crop_size
        self._began = 0.0
        self.run: PhotoRun | None = None

    def on_predict_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: dict, batch_idx: int,
                               dataloader_idx: int = 0) -> None:
        self._began = time.perf_counter()

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: dict, batch_indices,
                           batch: dict, batch_idx: int, dataloader_idx: int) -> None:
        names = list(batch[keys.NAME])
        seconds = (time.perf_counter() - self._began) / len(names)
        samples = [self._sample(batch, i) for i in range(len(names))]
        if self.run is None:  # photo crops are all crop_size, synthetic items all the data's size
            S = samples[0].crop.shape[-1]
            objective = getattr(pl_module, "objective", None)  # the landmark regressor has none: no identity term
            embedder = None if objective is None else objective.embedder
            exporter = PhotoExporter(SceneSpec(pl_module.face_model, (S, S)), pl_module.renderer, embedder)
            self.run = PhotoRun(self.output_dir, exporter, embedder)
        estimate = Estimate(prediction, [""] * len(names), [{} for _ in names])
        self.run.export(samples, names, estimate, getattr(pl_module, "method", "regressor"), seconds)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.run is None:
            return
        rows = self.run.finish()
        if trainer.is_global_zero:
            ok = sum(row["status"] == "ok" for row in rows)
            print(f"f2p predict: {ok} of {len(rows)} written to {self.output_dir}/ (one folder each, summary.csv)",
                  flush=True)

    def _sample(self, batch: dict, i: int) -> PhotoSample:
        """The ``PhotoSample`` of item ``i``: rebuilt from its photo file, or the synthetic crop as its own photo."""
        crop, landmarks = batch[keys.IMAGE][i].cpu(), batch[keys.LANDMARKS][i].cpu()
        confidence, source = batch[keys.CONFIDENCE][i].cpu(), batch[keys.SOURCE][i]
        if keys.PATH not in batch:
            return PhotoSample(batch[keys.NAME][i], crop, landmarks, confidence, source, crop, landmarks,
                               torch.eye(2, 3), batch[keys.FACE_MASK][i].cpu())
        photo_landmarks = apply_affine(batch[keys.TO_PHOTO][i:i + 1].cpu(), landmarks[None])[0]
        path = batch[keys.PATH][i]
        return align_sample(path, load_image(path), photo_landmarks, confidence, source, self.crop_size)
