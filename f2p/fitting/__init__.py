"""Per-photo test-time optimisation (fitting)."""

from f2p.fitting.fitter import Fitter, FitResult
from f2p.fitting.schedule import QUALITIES, Stage, default_schedule, schedule_for

__all__ = ["QUALITIES", "FitResult", "Fitter", "Stage", "default_schedule", "schedule_for"]
