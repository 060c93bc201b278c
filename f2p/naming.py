"""What identifies an input and where its results go: the one rule every run uses (``reconstruct``, the Lightning
fitting system, ``predict``).

An input's output folder is named from its path alone: the file's stem and 10 hex digits of a hash of its absolute
path (``img-3fa9c1d2e4``). Two inputs never share a folder (``a/img.jpg`` and ``a/img.png``, ``x/a/img.jpg`` and
``y/a/img.jpg``), and the name is the same on every rerun, whatever else the run holds. What a folder's results
were made from is recorded in its ``metrics.json`` (``source_record``): the absolute path and a SHA-256 of the
file's bytes, so that a rerun never takes another photo's results for this one's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HASH_DIGITS = 10
"""Hex digits of the path hash in a folder name."""
CHUNK_BYTES = 1 << 20


def path_key(path: str | os.PathLike) -> str:
    """The identity of an input path: its absolute, resolved form."""
    return str(Path(path).resolve())


def output_name(path: str | os.PathLike) -> str:
    """The output folder name of the input at ``path``: ``<stem>-<hash of its absolute path>``."""
    digest = hashlib.sha1(path_key(path).encode("utf-8")).hexdigest()[:HASH_DIGITS]
    return f"{Path(path).stem}-{digest}"


def output_names(inputs: list[Path]) -> dict[Path, str]:
    """{input: ``output_name(input)``} for a run's inputs."""
    return {path: output_name(path) for path in inputs}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def source_record(path: str | os.PathLike) -> dict[str, str]:
    """What a result was made from, for metrics.json: {"path": absolute path, "sha256": content hash}."""
    return {"path": path_key(path), "sha256": file_sha256(path)}
