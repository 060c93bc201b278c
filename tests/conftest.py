"""Shared fixtures. Real data is found through F2P_MODEL_PATH / F2P_DATA_PATH with ../shared as fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from f2p.morphable.base import LinearMorphableModel
from f2p.morphable.procedural import procedural_data

REPO = Path(__file__).resolve().parents[1]


def shared_models_dir() -> Path:
    return Path(os.environ.get("F2P_MODEL_PATH", REPO.parent / "shared" / "models"))


def shared_faces_dir() -> Path:
    return Path(os.environ.get("F2P_DATA_PATH", REPO.parent / "shared" / "data")) / "faces"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
"""Variables a Lightning run sets in its own process for torch.distributed."""


@pytest.fixture(autouse=True)
def _no_leftover_process_group():
    """A Lightning run inside the test process (``main(["fit", ...])``) leaves its process group, still listening on
    its port, and ``MASTER_PORT`` in the environment; a later test's DDP subprocesses would inherit that port and
    fail with EADDRINUSE. Each test ends without either."""
    before = {name: os.environ.get(name) for name in DISTRIBUTED_ENV}
    yield
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def procedural_model() -> LinearMorphableModel:
    return LinearMorphableModel(procedural_data())


@pytest.fixture(scope="session")
def models_dir() -> Path:
    path = shared_models_dir()
    if not path.is_dir():
        pytest.skip(f"shared models not found at {path} (set F2P_MODEL_PATH)")
    os.environ.setdefault("F2P_MODEL_PATH", str(path))  # load_model("ict") finds the fallback too
    return path


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    path = shared_faces_dir()
    if not (path / "annotations.json").is_file():
        pytest.skip(f"shared face photos not found at {path} (set F2P_DATA_PATH)")
    return path
