"""The fitting system: Lightning runs per-photo test-time optimisation over batches of photos (one pass, each
batch fitted by the staged schedule), writes the per-photo outputs and a summary. ``python -m f2p fit``."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist

from f2p.data.photo_module import PhotoFailure
from f2p.data.photos import PhotoSample
from f2p.export.photo import PhotoOutcome
from f2p.export.summary import completed, output_dirs, summary_row, write_summary
from f2p.fitting.photo_fit import PhotoFitter, regressor_initializer
from f2p.fitting.schedule import Stage, default_schedule
from f2p.morphable.registry import load_model
from f2p.perception.crop import CROP_SIZE
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec

log = logging.getLogger("f2p")


class FittingSystem(L.LightningModule):
    """Per-photo fitting as a LightningModule (manual optimisation: the trainable tensors are each photo's
    parameters, created per batch; the module itself has no weights).

    Args:
        model: face model name or path (``load_model``).
        output_dir: where ``<photo stem>/`` folders and ``summary.csv`` go.
        crop_size: side of the aligned crop (must match the data module's).
        stages: the fitting schedule; None for ``default_schedule()``.
        backend: rasterizer backend ("auto", "torch", "pytorch3d").
        identity: use the identity loss and metric (dlib face-recognition network).
        init_checkpoint: a trained regressor checkpoint whose predictions start each fit, or None for the mean face.
    """

    def __init__(self, model: str = "ict", output_dir: str = "outputs/fit", crop_size: int = CROP_SIZE,
                 stages: list[Stage] | None = None, backend: str = "auto", identity: bool = True,
                 init_checkpoint: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.face_model = load_model(model)
        self.stages = default_schedule() if stages is None else stages
        self.renderer = MeshRenderer(backend=backend)
        self.embedder = None
        if identity:
            from f2p.perception.identity.embedder import DlibFaceEmbedder

            self.embedder = DlibFaceEmbedder.from_default_weights()
        self.output_dir = Path(output_dir)
        self.crop_size = crop_size
        self.init_checkpoint = init_checkpoint
        self.photo_fitter: PhotoFitter | None = None
        self.rows: dict[str, dict[str, str]] = {}

    def configure_optimizers(self) -> None:
        """No module weights: each batch's photo parameters get their own optimiser inside ``training_step``."""
        return None

    def transfer_batch_to_device(self, batch: list, device: torch.device, dataloader_idx: int) -> list:
        """Photos stay where they are: the fitter moves the crops it needs (the full photos stay on the CPU)."""
        return batch

    def on_fit_start(self) -> None:
        spec = SceneSpec(self.face_model, (self.crop_size, self.crop_size))
        initializer = None if self.init_checkpoint is None else regressor_initializer(self.init_checkpoint, spec)
        self.photo_fitter = PhotoFitter(spec, self.renderer, self.stages, self.embedder, initializer)
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def training_step(self, batch: list[PhotoSample | PhotoFailure], batch_idx: int) -> dict[str, list[PhotoOutcome]]:
        """Fit the photos of ``batch`` not done yet and write their outputs; returns their outcomes."""
        paths = [Path(item.path) for item in batch]
        dirs = output_dirs(paths, self.output_dir)
        outcomes: list[PhotoOutcome] = []
        todo: list[PhotoSample] = []
        for item, path in zip(batch, paths):
            if isinstance(item, PhotoFailure):
                outcomes.append(PhotoOutcome(item.path, "failed", item.reason, {}))
            elif (done := completed(path, dirs[path])) is not None:
                outcomes.append(done)
            else:
                todo.append(item)
        if todo:
            with torch.enable_grad():
                outcomes += self.photo_fitter.fit(todo, [dirs[Path(s.path)] for s in todo])
        for outcome in outcomes:
            out_dir = dirs[Path(outcome.path)] if outcome.status == "ok" else None
            self.rows[outcome.path] = summary_row(outcome, out_dir)
            log.info("%s %s %s", "ok    " if outcome.status == "ok" else "FAILED", outcome.path, outcome.error)
        rmse = [o.metrics["landmark_rmse_px"] for o in outcomes if o.status == "ok"]
        if rmse:
            self.log("fit/landmark_rmse_px", sum(rmse) / len(rmse), batch_size=len(rmse), prog_bar=True)
        self.log("fit/failed", float(sum(o.status != "ok" for o in outcomes)), batch_size=len(outcomes),
                 reduce_fx="sum")
        return {"outcomes": outcomes}

    def on_train_end(self) -> None:
        """Gather every rank's rows and write summary.csv once (rank 0)."""
        rows = [self.rows]
        if dist.is_available() and dist.is_initialized():
            rows = [None] * dist.get_world_size()
            dist.all_gather_object(rows, self.rows)
        if self.trainer.is_global_zero:
            merged = {path: row for part in rows for path, row in part.items()}
            write_summary(self.output_dir / "summary.csv", [merged[p] for p in sorted(merged)])
            failed = sum(row["status"] != "ok" for row in merged.values())
            log.info("%d/%d photos ok; summary: %s", len(merged) - failed, len(merged),
                     self.output_dir / "summary.csv")
