"""Fitting quality levels, named once and importable without torch (command-line help stays instant).

``fitting.schedule.schedule_for`` turns a level into stages; ``reconstruct --quality``, ``evaluate --synthetic
--quality``, the fitting system's ``quality`` and ``benchmarks/fit.py`` offer the same levels.
"""

from typing import Literal, get_args

Quality = Literal["fast", "default", "best"]
"""A quality level as a type (LightningCLI checks config values against it)."""
QUALITIES: tuple[str, ...] = get_args(Quality)
"""Quality levels, cheapest first: ``fast`` the Levenberg-Marquardt landmark stages alone; ``default`` those and
one short shading stage; ``best`` the full photometric and identity schedule."""
DEFAULT_QUALITY = "default"
"""The level used unless told otherwise."""
QUALITY_HELP = ("fitting quality: fast (landmark solver only) | default (plus a short colour-and-light stage; "
                "both about 0.3 s per photo on a 2-core CPU with every output; fast 0.05 s with --outputs data "
                "--no-identity) | best (full photometric and identity schedule, about 5 s per photo)")
INSTANT = "instant"
"""Not a fitting schedule: the shipped landmark network's one-pass prediction, then two Levenberg-Marquardt
iterations on the landmarks from it (``fitting.instant``; ``reconstruct --quality``, ``evaluate --synthetic
--quality``), milliseconds per photo; with ``--steps 0`` the network alone."""
INSTANT_HELP = (" | instant (the shipped landmark network, then two solver iterations from its answer, no render, "
                "milliseconds per photo; --steps 0: the network alone)")
