"""Per-photo test-time optimisation (fitting)."""

from f2p.fitting.fitter import Fitter, FitResult
from f2p.fitting.observations import Observations
from f2p.fitting.schedule import Stage, default_schedule

__all__ = ["FitResult", "Fitter", "Observations", "Stage", "default_schedule"]
