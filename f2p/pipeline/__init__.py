"""The run loop over photos (skip what is done, perceive, estimate, export, summary), one copy used by
``reconstruct``, the Lightning fitting system and the regressor's ``predict``."""

from f2p.pipeline.photo_run import PhotoRun, outcome_line, run_renders

__all__ = ["PhotoRun", "outcome_line", "run_renders"]
