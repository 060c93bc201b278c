"""Networks of the learned regressor (plain nn.Modules): image encoder + parameter head, neural refiner.

The names below are the package's (configs and checkpoints say ``f2p.nets.ResNetEncoder``) but are imported on
first use (PEP 562): the encoder needs torchvision, whose import (1.6 s on the 2-core machine) a run that only uses
the landmark network (``f2p.nets.landmark_regressor``) should not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"FaceRegressor": "encoder", "ParamHead": "param_head", "ResNetEncoder": "encoder", "UNetRefiner": "refiner",
          "render_buffers": "refiner"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
