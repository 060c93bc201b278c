"""Reading torch files that f2p did not write itself (checkpoints, shipped or user weights, pretrained encoders):
weights only, so that a file can never choose code to run, and any failure is one line naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from f2p.errors import ModelFileError, one_line


def read_weights_only(path: str | os.PathLike, what: str) -> object:
    """The content of a torch file read with ``torch.load(weights_only=True)`` (tensors and plain containers, no
    code), on the CPU.

    Args:
        path: the file.
        what: what it should have been, for the message ("a checkpoint", "a weights file", ...).

    Raises:
        ModelFileError: the file is missing or cannot be read that way, one line naming it and ``what`` it should have been. Any
            error counts: on bytes that are not a torch file the weights-only unpickler fails in many ways
            (``KeyError`` and ``IndexError`` as well as ``UnpicklingError``).
    """
    if not Path(path).is_file():
        raise ModelFileError(path, f"no such file (expected {what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (see the docstring)
        raise ModelFileError(path, f"not {what} f2p can load ({type(error).__name__}: {one_line(error)})") from error


def read_checkpoint(path: str | os.PathLike, what: str, tables: tuple[str, ...] = ("state_dict",)) -> dict:
    """A Lightning-style checkpoint (``read_weights_only``) whose entries ``tables`` are all dicts.

    Args:
        path: the file.
        what: what it should have been, for the message ("a regressor checkpoint", ...).
        tables: entries the checkpoint must hold as dicts (``state_dict``; ``hyper_parameters`` to rebuild it).

    Raises:
        ModelFileError: ``read_weights_only``'s, or the file lacks one of ``tables`` (one line naming it).
    """
    content = read_weights_only(path, what)
    if not isinstance(content, dict) or not all(isinstance(content.get(name), dict) for name in tables):
        raise ModelFileError(path, f"not {what} (no {' and '.join(tables)})")
    return content
