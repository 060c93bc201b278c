"""Atomic writes: permissions from the umask, stale temporary files removed (the old file kept on failure is
tests/test_atomic.py's)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from f2p.atomic import atomic_writer, remove_stale_parts


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_get_the_umask_permissions(tmp_path: Path, umask_022: None) -> None:
    with atomic_writer(tmp_path / "new.json") as handle:
        handle.write(b"{}")
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644


def test_stale_parts_are_removed_and_nothing_else(tmp_path: Path) -> None:
    nested = tmp_path / "photo_1"
    nested.mkdir()
    stale = [tmp_path / ".summary.csv.3f9a0c1b2d4e5f60.part", nested / ".params.npz.k2_x9qzv.part"]
    kept = [tmp_path / "summary.csv", nested / "render.part", nested / ".hidden", tmp_path / "notes.part.txt",
            nested / "a.b.c.part"]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert remove_stale_parts(tmp_path) == 2
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"x" for path in kept)
    assert remove_stale_parts(tmp_path / "missing") == 0


def test_an_interrupted_write_leaves_a_part_that_is_cleared(tmp_path: Path) -> None:
    """A writer that never finishes (the process killed mid-write) leaves exactly the file ``remove_stale_parts``
    removes."""
    writer = atomic_writer(tmp_path / "metrics.json")
    writer.__enter__().write(b"partial")  # never exited: as after kill -9
    assert remove_stale_parts(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []
