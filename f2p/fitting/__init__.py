"""Per-photo test-time optimisation (fitting)."""

from f2p.fitting.fitter import Fitter, FitResult
from f2p.fitting.schedule import Stage, default_schedule

__all__ = ["FitResult", "Fitter", "Stage", "default_schedule"]
