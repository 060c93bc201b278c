"""Loss curves and per-photo results of a reconstruct run: to Weights & Biases (offline needs no account) or,
when W&B is off, to ``fit_log.csv`` next to the results (flushed after every row, so it can be followed during a
run); and one log line per fitting stage of each batch, so that a run whose output goes to a file is not silent."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from f2p.export.photo import PhotoOutcome

log = logging.getLogger("f2p")

LOG_EVERY = 10
"""Loss rows are written every this many steps of a stage (and at its last step)."""


class RunLog:
    """Records fitting losses per step and metrics plus the fit figure per photo, and logs each finished stage as
    ``batch 1/3, stage shading: 300 steps in 41.2 s, mean loss 0.0123`` (the loss of the stage's last step,
    averaged over the batch's photos). A stage ends at its ``last`` step or, when it stops early (a solver that
    converged), at the next stage's first step or at ``fit_finished``.

    Args:
        out: the run's output folder.
        wandb_mode: "off" (CSV log), "offline" or "online".
        config: the run's settings, stored with a W&B run.
        batches: how many batches the run has (for the log lines).
    """

    def __init__(self, out: Path, wandb_mode: str, config: dict[str, str], batches: int = 0) -> None:
        self.batch = 0
        self.batches = batches
        self.stage_began = time.perf_counter()
        self.stage: tuple[str, int, float] | None = None
        """The open stage's name, last step and its loss."""
        self.run = None
        self.csv_file = None
        if wandb_mode == "off":
            path = out / "fit_log.csv"
            new = not path.exists()
            self.csv_file = path.open("a", newline="")
            self.writer = csv.writer(self.csv_file)
            if new:
                self.writer.writerow(["batch", "stage", "step", "mean_loss"])
                self.csv_file.flush()
        else:
            import wandb

            self.run = wandb.init(project="f2p", job_type="reconstruct", dir=str(out), mode=wandb_mode, config=config)

    def next_batch(self, photos: int) -> None:
        """A batch of ``photos`` photos starts (they are loaded, then fitted)."""
        self.batch += 1
        log.info("%s: %d photo(s)", self._batch_name(), photos)

    def fit_started(self) -> None:
        """The current batch's fit starts: its first stage's clock."""
        self.stage_began = time.perf_counter()
        self.stage = None

    def fit_finished(self) -> None:
        """The current batch's fit has ended: a stage that stopped early is logged now."""
        if self.stage is not None:
            self._end_stage()

    def step(self, stage: str, step: int, loss: float, last: bool) -> None:
        """One optimisation step's mean loss over the batch; ``last``: the stage's last planned step."""
        if self.stage is not None and self.stage[0] != stage:
            self._end_stage()
        self.stage = (stage, step, loss)
        if step % LOG_EVERY == 0:
            self._record(stage, step, loss)
        if last:
            self._end_stage()

    def _record(self, stage: str, step: int, loss: float) -> None:
        if self.run is not None:
            self.run.log({f"loss/{stage}": loss, "batch": self.batch})
        else:
            self.writer.writerow([self.batch, stage, step, f"{loss:.6g}"])
            self.csv_file.flush()

    def _end_stage(self) -> None:
        stage, step, loss = self.stage
        if step % LOG_EVERY:  # a stage's last step is recorded whether or not it falls on LOG_EVERY
            self._record(stage, step, loss)
        now = time.perf_counter()
        log.info("%s, stage %s: %d steps in %.1f s, mean loss %.4g", self._batch_name(), stage, step + 1,
                 now - self.stage_began, loss)
        self.stage_began, self.stage = now, None

    def _batch_name(self) -> str:
        return f"batch {self.batch}/{self.batches}" if self.batches else f"batch {self.batch}"

    def photo(self, name: str, outcome: PhotoOutcome, figure: Path) -> None:
        """A finished photo's numbers and its photo | render | overlay figure where it was written (``--outputs
        all``; W&B only; the CSV has summary.csv)."""
        if self.run is None or outcome.status != "ok":
            return
        import wandb

        numbers = {f"{name}/{k}": v for k, v in outcome.metrics.items() if isinstance(v, float)}
        self.run.log(numbers | ({f"{name}/fit": wandb.Image(str(figure))} if figure.is_file() else {}))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
        if self.csv_file is not None:
            self.csv_file.close()
