"""The LightningCLI config saver of f2p: ``config.yaml`` in the log folder, and the resolved config in the logger."""

from __future__ import annotations

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Saves ``config.yaml`` in the log folder (LightningCLI's default) and logs the resolved config (every
    default filled in) as ``config`` to the logger, e.g. the W&B run's config. Runs on global rank 0."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            trainer.logger.log_hyperparams({"config": resolved})
