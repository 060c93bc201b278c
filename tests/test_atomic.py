"""``f2p.atomic.atomic_writer``: a write either replaces the file completely or leaves the old one untouched,
and never leaves a temporary file behind (what makes rerunning ``reconstruct`` after a crash safe)."""

import os

import numpy as np
import pytest

from f2p.atomic import atomic_writer

OLD = bytes(range(256)) * 4 + b"\r\n\x00 old results\n"
NEW = b"new results\n" * 100


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "params.json"
    path.write_bytes(OLD)
    return path


def test_a_successful_write_replaces_the_file(target):
    with atomic_writer(target) as handle:
        handle.write(NEW[:500])
        handle.write(NEW[500:])
    assert target.read_bytes() == NEW
    assert os.listdir(target.parent) == [target.name]  # no temporary file left next to it


def test_readers_see_the_old_file_until_the_write_completes(target):
    with atomic_writer(target) as handle:
        handle.write(NEW)
        handle.flush()
        assert target.read_bytes() == OLD
    assert target.read_bytes() == NEW


@pytest.mark.parametrize("error", [RuntimeError("render failed"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_failed_write_keeps_the_old_file_byte_identical(target, error):
    with pytest.raises(type(error)):
        with atomic_writer(target) as handle:
            handle.write(NEW[:300])  # a partial new content, flushed to disk
            handle.flush()
            raise error
    assert target.read_bytes() == OLD
    assert os.listdir(target.parent) == [target.name]  # the partial temporary file is gone


def test_a_failed_first_write_leaves_no_file(tmp_path):
    path = tmp_path / "new" / "metrics.json"
    with pytest.raises(ValueError):
        with atomic_writer(path) as handle:
            handle.write(b'{"landmark_rmse_px": ')
            raise ValueError("metric is NaN")
    assert not path.exists()
    assert os.listdir(path.parent) == []  # the missing folder was created, and nothing is left in it


def test_binary_writers_write_through_the_handle(tmp_path):
    # results.py writes params.npz with np.savez into the handle: the file must load back
    path = tmp_path / "deep" / "params.npz"
    with atomic_writer(path) as handle:
        np.savez(handle, pose=np.arange(3.0), camera_K=np.eye(3))
    with np.load(path) as arrays:
        assert np.array_equal(arrays["pose"], np.arange(3.0)) and np.array_equal(arrays["camera_K"], np.eye(3))
    assert os.listdir(path.parent) == [path.name]
