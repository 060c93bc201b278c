"""Generic Lightning callbacks of f2p's systems.

``LogFitFigures``  fit figures (photo | render | overlay) of the fitting system to W&B.
``ValidateAtStop`` validates the last step of a run that ``max_steps`` stops in the middle of an epoch.
"""

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


class ValidateAtStop(L.Callback):
    """Validates the last training step of a run that ``max_steps`` ends before the epoch does.

    Lightning validates at the end of an epoch (or every ``val_check_interval`` batches), so a short run
    (``--trainer.max_steps 5`` of a 128-step epoch) would log no ``val/loss``: a ``ModelCheckpoint`` monitoring it
    then warns and keeps no best checkpoint. Asking the trainer to stop on the last step makes Lightning validate
    that step (``Trainer.should_stop`` is the early-stopping path, which validates before leaving); a run whose
    last step ends an epoch validates once, as usual.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
