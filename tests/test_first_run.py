"""A user's first run: the default model and MediaPipe's files fetched into the cache (from file:// URLs here, a
local folder standing in for the servers, F2P_OFFLINE unset), by `reconstruct` and by the Lightning commands;
offline, one line saying what to copy where; `model ict --download` failures leave nothing behind and name no
temporary folder; a process that waited for another's download finds its files; progress bars on terminals only."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import shutil
import threading
from pathlib import Path

import pytest

from f2p.cli import main
from f2p.commands.first_run import fetch_detector_models, fetch_for_arguments
from f2p.morphable import download, ict
from f2p.morphable.download import (OFFLINE_ENV, DownloadError, DownloadRefusedError, RemoteFile, RemoteModel,
                                    download_file, download_lock)
from f2p.morphable.npz import read_npz
from f2p.morphable.registry import load_model, locate_model
from f2p.naming import output_name
from f2p.perception.mediapipe import models

COMPACT_ICT = "ict_facekit_light_v1_skin14062.npz"
REPO = Path(__file__).resolve().parents[1]
FIT_CONFIG = REPO / "configs" / "fit.yaml"
PHOTO = "lfpw_image_0010.png"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No model on disk and downloads allowed: F2P_MODEL_PATH an empty folder, F2P_CACHE_DIR a folder not yet made."""
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("F2P_MODEL_PATH", str(tmp_path / "models"))
    monkeypatch.setenv("F2P_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def servers(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ICT FaceKit (its compact npz, converted by the ICT reader) and MediaPipe's files served from file:// URLs."""
    sources = [models_dir / "ict_facekit" / COMPACT_ICT, *(models_dir / "mediapipe" / a.file for a in
                                                           models.DENSE_FIT_ASSETS)]
    if not all(path.is_file() for path in sources):
        pytest.skip(f"the shared ICT FaceKit npz and MediaPipe files are not all in {models_dir}")
    store = tmp_path / "store"
    store.mkdir()
    for path in sources:
        shutil.copy(path, store)
    remote = RemoteModel("ict", store.as_uri() + "/", (RemoteFile(COMPACT_ICT, sha256(store / COMPACT_ICT)),),
                         lambda folder: ict.ict_data_from_arrays(read_npz(folder / COMPACT_ICT), folder),
                         download.ICT_REMOTE.license)
    monkeypatch.setitem(download.REMOTE_MODELS, "ict", remote)
    served = tuple(dataclasses.replace(asset, urls=((store / asset.file).as_uri(),)) for asset in models.ASSETS)
    assert all(asset.sha256 == sha256(store / asset.file) for asset in served)  # the pinned hashes, unchanged
    canonical = store / models.CANONICAL_FACE_MODEL.file  # the wheel's copy: two more header lines, another hash
    served += (dataclasses.replace(models.CANONICAL_FACE_MODEL, urls=(canonical.as_uri(),), sha256=sha256(canonical)),)
    monkeypatch.setattr(models, "ASSETS", served[:-1])
    monkeypatch.setattr(models, "DENSE_FIT_ASSETS", served)


def test_offline_the_first_run_says_what_to_copy_where(cache, monkeypatch, caplog) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DownloadRefusedError) as refused:
        fetch_detector_models("mediapipe")
    message = str(refused.value)
    assert "\n" not in message and "F2P_OFFLINE" in message
    assert f"into {cache / 'mediapipe'}/" in message
    assert all(asset.file in message and asset.urls[-1] in message for asset in models.DENSE_FIT_ASSETS)
    with caplog.at_level(logging.WARNING, logger="f2p"):
        fetch_detector_models("auto")  # auto goes on without MediaPipe, saying so
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith(message) and "without MediaPipe" in warning
    assert not cache.exists()


def test_model_download_offline_names_the_destination_and_leaves_no_folder(cache, monkeypatch, capsys) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert main(["model", "ict", "--download"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "F2P_OFFLINE" in line and f"into {cache / 'ict_facekit'}/" in line
    assert ".download-" not in line
    assert not cache.exists()


def test_model_download_failing_online_names_no_temporary_folder_and_leaves_no_folder(cache, tmp_path, monkeypatch,
                                                                                       capsys) -> None:
    gone = dataclasses.replace(download.ICT_REMOTE, base_url=(tmp_path / "unreachable").as_uri() + "/")
    monkeypatch.setitem(download.REMOTE_MODELS, "ict", gone)
    assert main(["model", "ict", "--download"]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("f2p model: ")]
    assert "download failed" in line and f"into {cache / 'ict_facekit'}/" in line
    assert ".download-" not in line
    assert not cache.exists()


def test_the_main_command_on_a_fresh_machine_fetches_what_it_needs(servers, cache, tmp_path, faces_dir, capsys,
                                                                   caplog) -> None:
    photo = faces_dir / "images" / "lfpw_image_0010.png"
    out = tmp_path / "results"
    with caplog.at_level(logging.INFO):
        assert main(["reconstruct", str(photo), "--out", str(out), "--quality", "fast", "--steps", "4",
                     "--crop-size", "64", "--no-identity", "--threads", "1"]) == 0  # defaults: ict, landmarks auto
    assert "1/1 photos ok" in capsys.readouterr().out
    fetched = sorted(path.relative_to(cache).as_posix() for path in cache.rglob("*")
                     if path.is_file() and path.parts[len(cache.parts)] != "correspondence")
    assert fetched == sorted(["ict_facekit/ict_facekit.npz", *(f"mediapipe/{a.file}" for a in models.DENSE_FIT_ASSETS)])
    messages = [record.getMessage() for record in caplog.records]
    downloaded = [line for line in messages if line.startswith("downloaded ")]
    assert len(downloaded) == len(fetched)  # one line per fetched model, naming where it went
    assert any(line.endswith(f" to {cache / 'ict_facekit' / 'ict_facekit.npz'}") for line in downloaded)
    assert f"downloaded face_landmark.tflite to {cache / 'mediapipe' / 'face_landmark.tflite'}" in downloaded
    assert any(line.startswith("landmark detector: mediapipe+dlib") for line in messages)  # auto's default detector

    caplog.clear()
    with caplog.at_level(logging.INFO):
        fetch_detector_models("auto")
        load_model("ict", download=True)
    assert not [record for record in caplog.records if record.getMessage().startswith("downloaded ")]


def test_offline_the_main_command_stops_with_one_line_naming_the_folder(cache, tmp_path, faces_dir, monkeypatch,
                                                                        capsys) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    photo = faces_dir / "images" / "lfpw_image_0010.png"
    assert main(["reconstruct", str(photo), "--out", str(tmp_path / "results")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("f2p reconstruct: ict: model not found.") and "F2P_OFFLINE" in line
    assert f"into {cache / 'ict_facekit'}/" in line
    assert not cache.exists()


def test_a_failed_mediapipe_download_names_every_file_still_to_copy(cache, tmp_path, monkeypatch) -> None:
    gone = tuple(dataclasses.replace(asset, urls=((tmp_path / "unreachable" / asset.file).as_uri(),))
                 for asset in models.DENSE_FIT_ASSETS)
    monkeypatch.setattr(models, "DENSE_FIT_ASSETS", gone)
    with pytest.raises(DownloadError) as failed:
        fetch_detector_models("mediapipe")
    message = str(failed.value)
    assert "\n" not in message and "download failed" in message and f"into {cache / 'mediapipe'}/" in message
    assert all(asset.urls[-1] in message for asset in gone)
    assert not cache.exists()


def fit_command(photo: Path, out: Path) -> list[str]:
    """`python -m f2p fit --config configs/fit.yaml` on one photo, small and fast (the model and landmarks are the
    config's: ict, auto)."""
    return ["fit", "--config", str(FIT_CONFIG), "--data.images", f"[{photo}]", "--model.output_dir", str(out),
            "--trainer.logger", "false", "--trainer.default_root_dir", str(out), "--trainer.callbacks", "[]",
            "--trainer.accelerator", "cpu", "--model.identity", "false", "--model.crop_size", "64", "--data.crop_size", "64",
            "--model.stages", '[{"name": "rigid", "steps": 4, "groups": ["pose", "translation"]}]']


def test_the_fit_command_on_a_fresh_machine_fetches_what_it_needs(servers, cache, tmp_path, faces_dir,
                                                                  caplog) -> None:
    photo = faces_dir / "images" / PHOTO
    out = tmp_path / "results"
    with caplog.at_level(logging.INFO):
        assert main(fit_command(photo, out)) == 0
    assert (out / output_name(photo) / "params.json").is_file()
    assert (cache / "ict_facekit" / "ict_facekit.npz").is_file()
    assert all((cache / "mediapipe" / asset.file).is_file() for asset in models.DENSE_FIT_ASSETS)
    messages = [record.getMessage() for record in caplog.records]
    downloaded = [line for line in messages if line.startswith("downloaded ")]
    assert len(downloaded) == 1 + len(models.DENSE_FIT_ASSETS)  # one line per file or model, naming where it went
    assert any(line.endswith(f" to {cache / 'ict_facekit' / 'ict_facekit.npz'}") for line in downloaded)
    assert any(line.startswith("landmark detector: mediapipe+dlib") for line in messages)  # the fetched detector


def test_offline_the_fit_command_stops_with_one_line_naming_the_folder(cache, tmp_path, faces_dir, monkeypatch,
                                                                       capsys) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert main(fit_command(faces_dir / "images" / PHOTO, tmp_path / "results")) == 2  # caught: no traceback
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("f2p fit: ")]
    assert line.startswith("f2p fit: ict: model not found.") and "F2P_OFFLINE" in line  # reconstruct's message
    assert f"into {cache / 'ict_facekit'}/" in line
    assert not cache.exists() and not (tmp_path / "results").exists()


def test_config_values_that_name_no_open_model_or_mediapipe_fetch_nothing(cache, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")  # anything fetched would be refused, with an error
    fetch_for_arguments([{"model": str(tmp_path / "mine.npz"), "landmarks": "dlib", "crop_size": 64},
                         {"face_model": "flame", "detector": "fan"}, {"model": None, "landmarks": str(tmp_path)}])
    assert not cache.exists()


def test_a_process_that_waited_for_another_download_finds_its_files(cache, tmp_path, monkeypatch) -> None:
    gone = dataclasses.replace(download.ICT_REMOTE, base_url=(tmp_path / "unreachable").as_uri() + "/")
    monkeypatch.setitem(download.REMOTE_MODELS, "ict", gone)  # a download of its own would fail
    waiting = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("waiting for another process downloading into "):
                waiting.set()

    handler = Waiting()
    logging.getLogger("f2p").addHandler(handler)
    monkeypatch.setattr(logging.getLogger("f2p"), "level", logging.INFO)
    found: list[Path] = []
    try:
        with download_lock(cache):  # the other process, downloading
            thread = threading.Thread(target=lambda: found.append(locate_model("ict", download=True)))
            thread.start()
            assert waiting.wait(timeout=120), "locate_model did not wait for the lock"
            target = cache / "ict_facekit" / "ict_facekit.npz"
            target.parent.mkdir(parents=True)
            target.write_bytes(b"the other process's model")
        thread.join()
    finally:
        logging.getLogger("f2p").removeHandler(handler)
    assert found == [target]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_download_bars_are_drawn_on_a_terminal_and_not_into_a_log(tmp_path, monkeypatch, terminal) -> None:
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    source = tmp_path / "weights.bin"
    source.write_bytes(b"x" * 5000)
    stderr = Terminal() if terminal else io.StringIO()  # a log file is no terminal
    monkeypatch.setattr("sys.stderr", stderr)
    download_file(source.as_uri(), tmp_path / "copy.bin", sha256(source))
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    assert ("copy.bin" in stderr.getvalue()) == terminal  # the bar names the file
    assert ("\r" in stderr.getvalue()) == terminal
