"""The fitting system: Lightning runs per-photo test-time optimisation over batches of photos (one pass, each
batch fitted by the staged schedule) through the photo pipeline (``pipeline.PhotoRun``), which writes the
per-photo outputs and the summary. ``python -m f2p fit --config configs/fit.yaml``."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from f2p.data.photo_module import PhotoBatch
from f2p.export.photo import PhotoExporter, PhotoOutcome
from f2p.fitting.estimate import FittingEstimator
from f2p.fitting.fitter import Fitter
from f2p.fitting.schedule import Stage, schedule_for
from f2p.morphable.registry import load_model
from f2p.output_sets import DEFAULT_OUTPUTS, OutputSet
from f2p.perception.crop import CROP_SIZE
from f2p.perception.identity.embedder import create_embedder
from f2p.quality import DEFAULT_QUALITY, Quality
from f2p.pipeline import PhotoRun, outcome_line, run_renders
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec
from f2p.systems.landmark_weights import load_initializer

log = logging.getLogger("f2p")


class FittingSystem(L.LightningModule):
    """Per-photo fitting as a LightningModule (manual optimisation: the trainable tensors are each photo's
    parameters, created per batch; the module itself has no weights).

    Args:
        model: face model name or path (``load_model``).
        output_dir: where ``<photo stem>/`` folders and ``summary.csv`` go.
        crop_size: side of the aligned crop (must match the data module's).
        quality: the fitting schedule's quality level (``f2p.quality.QUALITIES``, as ``reconstruct --quality``).
        stages: an explicit fitting schedule instead of ``quality``'s (None: ``schedule_for(quality)``).
        backend: rasterizer backend ("auto", "torch", "pytorch3d").
        identity: use the identity loss and metric (dlib face-recognition network).
        init_checkpoint: a trained regressor checkpoint whose predictions start each fit, or None for the mean face.
        outputs: the files per photo (``f2p.output_sets.OUTPUTS``, as ``reconstruct --outputs``): all, or data (no
            pictures, no head.glb).
        sliding_contour: fit the jaw and face-oval points to the model's current silhouette (as ``reconstruct
            --sliding-contour``), for detectors that mark the visible outline of turned faces.
    """

    def __init__(self, model: str = "ict", output_dir: str = "outputs/fit", crop_size: int = CROP_SIZE,
                 quality: Quality = DEFAULT_QUALITY, stages: list[Stage] | None = None, backend: str = "auto",
                 identity: bool = True, init_checkpoint: str | None = None,
                 outputs: OutputSet = DEFAULT_OUTPUTS, sliding_contour: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.face_model = load_model(model)
        self.stages = schedule_for(quality) if stages is None else stages
        self.renderer = MeshRenderer(backend=backend)
        self.embedder = create_embedder("dlib") if identity else None
        self.output_dir = Path(output_dir)
        self.crop_size = crop_size
        self.init_checkpoint = init_checkpoint
        self.outputs = outputs
        self.sliding_contour = sliding_contour
        self.estimator: FittingEstimator | None = None
        self.run: PhotoRun | None = None
        self.exit_code = 0
        """What ``python -m f2p fit`` exits with: 0 all photos ok, 1 some failed, 2 no photos."""

    def configure_optimizers(self) -> None:
        """No module weights: each batch's photo parameters get their own optimiser inside ``training_step``."""
        return None

    def transfer_batch_to_device(self, batch: PhotoBatch, device: torch.device, dataloader_idx: int) -> PhotoBatch:
        """Photos stay where they are: the pipeline moves the crops it needs (the full photos stay on the CPU)."""
        return batch

    def on_fit_start(self) -> None:
        spec = SceneSpec(self.face_model, (self.crop_size, self.crop_size))
        initializer = None
        if self.init_checkpoint is not None:
            initializer = load_initializer(self.init_checkpoint, map_location=self.device, expect=spec)
        renders = run_renders(self.stages, self.outputs, identity=self.embedder is not None)
        self.estimator = FittingEstimator(Fitter(spec, self.renderer, self.stages, self.embedder,
                                                 sliding_contour=self.sliding_contour, final_render=renders),
                                          initializer)
        settings = {"model": str(self.hparams.model), "crop_size": self.crop_size,
                    "identity": self.embedder is not None, "steps": self.estimator.steps, "init": self.init_checkpoint,
                    "outputs": self.outputs, "sliding_contour": self.sliding_contour}
        self.run = PhotoRun(self.output_dir, PhotoExporter(spec, self.renderer, self.embedder, self.outputs),
                            self.embedder, settings)

    def training_step(self, batch: PhotoBatch, batch_idx: int) -> dict[str, list[PhotoOutcome]]:
        """Fit the photos of ``batch`` not done yet and write their outputs; returns their outcomes."""
        with torch.enable_grad():
            outcomes = self.run.process(batch.paths, batch.names, batch.load, self.estimator)
        for outcome in outcomes:
            log.info("%s", outcome_line(outcome))
        rmse = [o.metrics["landmark_rmse_px"] for o in outcomes if o.status == "ok"]
        if rmse:
            self.log("fit/landmark_rmse_px", sum(rmse) / len(rmse), batch_size=len(rmse), prog_bar=True)
        self.log("fit/failed", float(sum(o.status != "ok" for o in outcomes)), batch_size=len(outcomes),
                 reduce_fx="sum")
        return {"outcomes": outcomes}

    def on_train_end(self) -> None:
        """Gather every rank's rows and write summary.csv once (rank 0)."""
        rows = self.run.finish()
        failed = sum(row["status"] != "ok" for row in rows)
        self.exit_code = 2 if not rows else 1 if failed or self.run.summary_error else 0
        if self.trainer.is_global_zero:
            if not rows:
                log.error("no photos found (data.images)")
            else:
                log.info("%d/%d photos ok; summary: %s", len(rows) - failed, len(rows), self.output_dir / "summary.csv")
