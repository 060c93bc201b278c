"""Callbacks that show fitting results to a person: fit figures to W&B."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger


class LogFitFigures(L.Callback):
    """After each batch, send the ``fit.png`` figures (photo | render | overlay) of its photos to W&B.

    Args:
        max_per_batch: figures logged per batch at most.
    """

    def __init__(self, max_per_batch: int = 4) -> None:
        super().__init__()
        self.max_per_batch = max_per_batch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers or not outputs:
            return
        figures = [(o.path, o.out_dir / "fit.png") for o in outputs["outcomes"] if o.status == "ok"][: self.max_per_batch]
        figures = [(path, fig) for path, fig in figures if fig.is_file()]
        if figures:
            for logger in loggers:
                logger.log_image("fit/figures", images=[str(f) for _, f in figures],
                                 caption=[Path(p).name for p, _ in figures], step=trainer.global_step + batch_idx)
