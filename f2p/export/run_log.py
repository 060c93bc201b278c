"""Loss curves and per-photo results of a reconstruct run: to Weights & Biases (offline needs no account) or,
when W&B is off, to ``fit_log.csv`` next to the results."""

from __future__ import annotations

import csv
from pathlib import Path

from f2p.export.photo import PhotoOutcome

LOG_EVERY = 10
"""Loss rows are written every this many steps of a stage (and at its last step)."""


class RunLog:
    """Records fitting losses per step and metrics plus the fit figure per photo.

    Args:
        out: the run's output folder.
        wandb_mode: "off" (CSV log), "offline" or "online".
        config: the run's settings, stored with a W&B run.
    """

    def __init__(self, out: Path, wandb_mode: str, config: dict[str, str]) -> None:
        self.batch = 0
        self.run = None
        self.csv_file = None
        if wandb_mode == "off":
            path = out / "fit_log.csv"
            new = not path.exists()
            self.csv_file = path.open("a", newline="")
            self.writer = csv.writer(self.csv_file)
            if new:
                self.writer.writerow(["batch", "stage", "step", "mean_loss"])
        else:
            import wandb

            self.run = wandb.init(project="f2p", job_type="reconstruct", dir=str(out), mode=wandb_mode, config=config)

    def next_batch(self) -> None:
        self.batch += 1

    def step(self, stage: str, step: int, loss: float, last: bool) -> None:
        """One optimisation step's mean loss over the batch."""
        if step % LOG_EVERY and not last:
            return
        if self.run is not None:
            self.run.log({f"loss/{stage}": loss, "batch": self.batch})
        else:
            self.writer.writerow([self.batch, stage, step, f"{loss:.6g}"])

    def photo(self, name: str, outcome: PhotoOutcome, figure: Path) -> None:
        """A finished photo's numbers and its photo | render | overlay figure (W&B only; the CSV has summary.csv)."""
        if self.run is None or outcome.status != "ok":
            return
        import wandb

        numbers = {f"{name}/{k}": v for k, v in outcome.metrics.items() if isinstance(v, float)}
        self.run.log(numbers | {f"{name}/fit": wandb.Image(str(figure))})

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
        if self.csv_file is not None:
            self.csv_file.close()
