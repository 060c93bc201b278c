"""Downloads over file:// URLs: SHA-256 checks, atomic writes, fetching and converting a model into the cache, and
F2P_OFFLINE refusing them all."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from f2p.morphable import download
from f2p.morphable.base import LinearMorphableModel, ModelFileError
from f2p.morphable.download import OFFLINE_ENV, DownloadError, DownloadRefusedError, download_file, fetch_model
from f2p.morphable.registry import ModelNotFoundError, load_model
from f2p.morphable.sfm import load_sfm


@pytest.fixture(autouse=True)
def _online(monkeypatch) -> None:
    """The tests run with F2P_OFFLINE unset unless they set it: file:// downloads are downloads too."""
    monkeypatch.delenv(OFFLINE_ENV, raising=False)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "remote" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * 1000)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_checks_the_hash_and_writes_the_file(source, tmp_path):
    dest = tmp_path / "local" / "blob.bin"
    digest = download_file(source.as_uri(), dest, sha256(source), progress=False)
    assert digest == sha256(source) and dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]  # no temporary file left


def test_hash_mismatch_leaves_nothing_behind(source, tmp_path):
    dest = tmp_path / "local" / "blob.bin"
    with pytest.raises(DownloadError, match=r"blob\.bin: SHA-256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        download_file(source.as_uri(), dest, "0" * 64, progress=False)
    assert list(dest.parent.iterdir()) == []
    dest.write_bytes(b"previous content")
    with pytest.raises(DownloadError):
        download_file(source.as_uri(), dest, "0" * 64, progress=False)
    assert dest.read_bytes() == b"previous content"  # the old file is not clobbered
    assert isinstance(DownloadError("u", "p"), ModelFileError)


@pytest.mark.parametrize("value", ["1", "yes"])
def test_offline_refuses_every_download_before_opening_it(source, tmp_path, monkeypatch, value):
    monkeypatch.setenv(OFFLINE_ENV, value)
    assert download.downloads_disabled()
    dest = tmp_path / "local" / "blob.bin"
    opened = []
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *args, **kwargs: opened.append(args))
    with pytest.raises(DownloadRefusedError, match=r"blob\.bin: download refused because F2P_OFFLINE is set") as error:
        download_file(source.as_uri(), dest, sha256(source), progress=False)
    assert isinstance(error.value, DownloadError) and "\n" not in str(error.value)
    assert opened == [] and not dest.parent.exists()


@pytest.mark.parametrize("value", ["", "0"])
def test_offline_unset_or_zero_allows_downloads(source, tmp_path, monkeypatch, value):
    monkeypatch.setenv(OFFLINE_ENV, value)
    assert not download.downloads_disabled()
    assert download_file(source.as_uri(), tmp_path / "blob.bin", sha256(source), progress=False) == sha256(source)


def test_unreachable_url(tmp_path):
    missing = (tmp_path / "missing.bin").as_uri()
    with pytest.raises(DownloadError, match=r"missing\.bin: download failed"):
        download_file(missing, tmp_path / "out" / "missing.bin", progress=False)
    assert not (tmp_path / "out" / "missing.bin").exists()


def test_pinned_urls_and_hashes(models_dir):
    ict, sfm = download.ICT_REMOTE, download.SFM_REMOTE
    assert ict.base_url.startswith(f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{download.ICT_COMMIT}/")
    assert sfm.base_url.startswith(f"https://raw.githubusercontent.com/patrikhuber/eos/{download.SFM_COMMIT}/share/")
    assert len(ict.files) == 2 + 100 + 53
    assert all(len(f.sha256) == 64 for f in (*ict.files, *sfm.files))  # every file is pinned
    assert len({f.sha256 for f in ict.files}) == len(ict.files)  # one hash per file, none copied by mistake
    shared = {"vertex_indices.json": models_dir / "ict_facekit"} | {f.path: models_dir / "sfm_3448" for f in sfm.files}
    pinned = [f for f in (*ict.files, *sfm.files) if f.path in shared]
    if not all((shared[f.path] / f.path).is_file() for f in pinned):
        pytest.skip(f"the shared copies of the upstream files are not all in {models_dir}")
    for file in pinned:
        assert file.sha256 == sha256(shared[file.path] / file.path), file.path  # the upstream bytes


@pytest.fixture
def sfm_from_file_urls(models_dir, monkeypatch) -> download.RemoteModel:
    """The SFM remote, pointed at the shared copies of the upstream files (same bytes, same pinned hashes)."""
    folder = models_dir / "sfm_3448"
    if not folder.is_dir():
        pytest.skip(f"Surrey Face Model not found in {folder}")
    remote = dataclasses.replace(download.SFM_REMOTE, base_url=folder.as_uri() + "/")
    monkeypatch.setitem(download.REMOTE_MODELS, "sfm", remote)
    return remote


def test_load_model_downloads_converts_and_caches(sfm_from_file_urls, models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("F2P_MODEL_PATH", str(tmp_path / "no_models"))
    monkeypatch.setenv("F2P_CACHE_DIR", str(tmp_path / "cache"))
    model = load_model("sfm", download=True)
    cached = tmp_path / "cache" / "sfm_3448" / "sfm_3448.npz"
    assert sorted(p.name for p in cached.parent.iterdir()) == ["sfm_3448.npz"]  # raw files removed
    reference = LinearMorphableModel(load_sfm(models_dir / "sfm_3448"))
    params = {k: torch.randn_like(v) for k, v in reference.zero_params(2).items()}
    assert torch.equal(model(**params).verts, reference(**params).verts)
    monkeypatch.setitem(download.REMOTE_MODELS, "sfm", dataclasses.replace(sfm_from_file_urls, base_url="file:///gone/"))
    assert load_model("sfm", download=True).num_vertices == 3448  # from the cache, no second download


def test_offline_load_model_fetches_nothing(sfm_from_file_urls, tmp_path, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.setenv("F2P_MODEL_PATH", str(tmp_path / "no_models"))
    monkeypatch.setenv("F2P_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError) as error:
        load_model("sfm", download=True)
    message = str(error.value)
    assert "\n" not in message and "Downloads are off (F2P_OFFLINE is set)" in message
    assert f"into {tmp_path / 'cache' / 'sfm_3448'}/" in message  # exactly where to copy the files
    assert not (tmp_path / "cache").exists()


def test_fetch_with_a_bad_hash_keeps_the_cache_clean(sfm_from_file_urls, tmp_path):
    files = list(sfm_from_file_urls.files)
    files[1] = dataclasses.replace(files[1], sha256="f" * 64)
    remote = dataclasses.replace(sfm_from_file_urls, files=tuple(files))
    target = tmp_path / "cache" / "sfm_3448" / "sfm_3448.npz"
    with pytest.raises(DownloadError, match="expression_blendshapes_3448.bin: SHA-256 mismatch") as error:
        fetch_model(remote, target, progress=False)
    assert ".download-" not in str(error.value)  # no temporary folder, which is gone by now
    assert not (tmp_path / "cache").exists()  # nor the folders the fetch created
