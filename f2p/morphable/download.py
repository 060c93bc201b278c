"""Fetching the open face models from their public repositories, checked by SHA-256, converted once.

ICT FaceKit (MIT) comes as the original ``FaceXModel`` OBJ files of ICT-VGL/ICT-FaceKit and SFM (non-commercial
model data, Apache-2.0 eos) as the ``share/`` files of patrikhuber/eos, both from raw.githubusercontent.com
at pinned commits. Each file is written atomically (temporary file + rename) and checked against its pinned
SHA-256 where one is known; the folder is then converted into one f2p ``.npz`` and the raw files deleted.

Pinned hashes: every file. The four SFM files' are written below; ICT's 155 (``vertex_indices.json`` and the OBJ
files) are in ``ict_facekit_sha256.json`` beside this module, computed from the files of ICT-VGL/ICT-FaceKit at
``ICT_COMMIT`` (a git snapshot of the repository, whose converted model matched the compact ICT npz within
3e-8 m).

Offline use. While the environment variable ``F2P_OFFLINE`` is set (to anything but "" or "0"),
``download_file`` and ``fetch_model``, through which every f2p download goes, refuse before opening any URL
(file:// included) or creating any folder, with a one-line ``DownloadRefusedError``; ``downloads_disabled`` is
that check, for downloads made by other libraries (FAN's weights, see ``f2p.perception.fan_detector``).

Failures. Every error is one line naming the URL and ending with a ``hint``: what to copy where by hand (the
caller's words; by default the destination file). A failed ``fetch_model`` names no temporary file and leaves no
folder it created behind.

Progress. Bars (one for a model's files, one for the bytes of the file being fetched) are drawn on a terminal
only: written to a log file they would be carriage returns and escape codes, so there the log lines ("fetching
...", "downloaded X to Y") are all a download prints.

Several processes (the DDP ranks of one machine, two runs started together) take ``download_lock`` in turn: the
first fetches, the others wait for it and then find the files. Writes are atomic, so processes on other machines
sharing the folder may fetch a file twice, never leave half of one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm import tqdm

from f2p.atomic import atomic_writer
from f2p.morphable import ict, sfm
from f2p.morphable.base import LinearModelData, ModelFileError
from f2p.morphable.npz import save_model

log = logging.getLogger(__name__)

ICT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
SFM_COMMIT = "ce984207a51c2edd2e7568a64fec9b98ef61aeed"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
OFFLINE_ENV = "F2P_OFFLINE"
"""Set (to anything but "" or "0") to forbid every download."""


class DownloadError(ModelFileError):
    """A download failed or its content does not match the pinned SHA-256. The message names the URL."""


class DownloadRefusedError(DownloadError):
    """A download not even tried, because ``F2P_OFFLINE`` forbids downloads."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote model: its path relative to the model's base URL and its pinned SHA-256 (hex)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class RemoteModel:
    """Where a model's source files live online and how to turn the downloaded folder into model data.

    Attributes:
        name: registry name ("ict", "sfm").
        base_url: URL ending in "/" that each ``RemoteFile.path`` is appended to (https:// or file://).
        files: the files to fetch, written under the same relative paths into a temporary folder.
        convert: loader of that folder.
        license: shown before downloading.
    """

    name: str
    base_url: str
    files: tuple[RemoteFile, ...]
    convert: Callable[[Path], LinearModelData]
    license: str


ICT_SHA256: dict[str, str] = json.loads((Path(__file__).with_name("ict_facekit_sha256.json")).read_text())
"""SHA-256 of each ICT FaceKit source file at ``ICT_COMMIT``, by its path under ``FaceXModel/``."""

ICT_REMOTE = RemoteModel(
    name="ict",
    base_url=f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{ICT_COMMIT}/FaceXModel/",
    files=(
        RemoteFile(ict.INDICES_JSON, ICT_SHA256[ict.INDICES_JSON]),
        RemoteFile(ict.NEUTRAL_OBJ, ICT_SHA256[ict.NEUTRAL_OBJ]),
        *(RemoteFile(name, ICT_SHA256[name]) for name in (f"identity{k:03d}.obj" for k in range(ict.NUM_IDENTITIES))),
        *(RemoteFile(name, ICT_SHA256[name]) for name in (f"{shape}.obj" for shape in ict.EXPRESSION_NAMES)),
    ),
    convert=ict.load_ict_obj_folder,
    license="MIT (ICT FaceKit, USC Institute for Creative Technologies)",
)

SFM_REMOTE = RemoteModel(
    name="sfm",
    base_url=f"https://raw.githubusercontent.com/patrikhuber/eos/{SFM_COMMIT}/share/",
    files=(
        RemoteFile(sfm.SHAPE_FILE, "43750338ae533e7fb981e924b6f67ebde3d292f15ec4fc886ae5af14308ad980"),
        RemoteFile(sfm.BLENDSHAPES_FILE, "a77c81712fc5e8b08a1be4cd2824d51514e5bde6578109ae5240dfb3489efd43"),
        RemoteFile(sfm.MAPPING_FILE, "810810c457184526c7d54305ecbc5da764e2431b5e66025d921a7d424aebfac9"),
        RemoteFile(sfm.CONTOURS_FILE, "c9e69bfa995ab19ac6b27abb07729eb0520a00bb192be12426ca6bce76f3fded"),
    ),
    convert=sfm.load_sfm,
    license="Surrey Face Model data: non-commercial use only (cvssp.org/facemodel); eos files: Apache-2.0",
)

REMOTE_MODELS = {remote.name: remote for remote in (ICT_REMOTE, SFM_REMOTE)}


def downloads_disabled() -> bool:
    """True when ``F2P_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def progress_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a download bar: off when ``progress`` is False, else drawn on a terminal only (None)."""
    return None if progress else True


@contextmanager
def download_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the machine-wide lock of downloads into ``folder``, waiting (with one log line) while another process
    holds it. Callers check for their files again inside: the process that waited finds what the other fetched.

    The lock file is in the system's temporary folder, named by ``folder``'s absolute path, so that taking the lock
    creates nothing in or above ``folder``.
    """
    key = hashlib.sha256(str(Path(folder).expanduser().absolute()).encode()).hexdigest()[:16]
    lock = FileLock(Path(tempfile.gettempdir()) / f"f2p-download-{key}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process downloading into %s", folder)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None, *, progress: bool = True,
                  hint: str | None = None) -> str:
    """Download ``url`` to ``dest`` atomically, with a progress bar; return the content's SHA-256 (hex).

    Args:
        hint: the end of every error message, what to do by hand (default: copy the file to ``dest``).

    Raises ``DownloadRefusedError`` when ``F2P_OFFLINE`` is set (nothing is opened), ``DownloadError`` when the
    download fails or ``sha256`` is given and differs; ``dest`` is then left untouched (no partial file).
    """
    dest = Path(dest)
    hint = hint or f"copy the file to {dest} by hand"
    refuse_offline(url, hint)
    log.debug("downloading %s -> %s", url, dest)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_writer(dest) as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, leave=False,
                      disable=progress_disabled(progress)) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if sha256 is not None and digest.hexdigest() != sha256.lower():
                raise DownloadError(url, f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}; nothing "
                                         f"was saved; {hint}")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DownloadError(url, f"download failed ({error}); check the network connection, or {hint}") from None
    return digest.hexdigest()


def refuse_offline(url: str, hint: str) -> None:
    """Raise the one-line ``DownloadRefusedError`` (naming ``url``, ending with ``hint``) when downloads are off."""
    if downloads_disabled():
        raise DownloadRefusedError(url, f"download refused because {OFFLINE_ENV} is set; {hint}, or unset "
                                        f"{OFFLINE_ENV}")


def fetch_model(remote: RemoteModel, target: str | os.PathLike, *, progress: bool = True,
                hint: str | None = None) -> Path:
    """Download ``remote``'s files into a temporary folder next to ``target``, convert them, save ``target``.

    ``target`` is an f2p ``.npz`` (see ``f2p.morphable.npz``); the raw files are deleted afterwards. One progress
    bar counts the files (and one the bytes of the file being fetched); one log line says where the model went.

    Args:
        hint: the end of every error message, what to copy where by hand (default: the files into the folder of
            ``target``).

    Raises:
        DownloadRefusedError: ``F2P_OFFLINE`` is set; nothing is created.
        DownloadError: a file failed, differs from its pinned SHA-256, or the files do not load; nothing is saved,
            and the folders this call created are removed again.
    """
    target = Path(target)
    hint = hint or f"copy the files of {remote.base_url} into {target.parent}"
    refuse_offline(remote.base_url, hint)
    created = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching model %r (%d files, licence: %s) from %s", remote.name, len(remote.files), remote.license,
             remote.base_url)
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
            _fetch_files(remote, Path(tmp), progress, hint)
            try:
                data = remote.convert(Path(tmp))
            except ModelFileError as error:
                inside = Path(error.path).relative_to(tmp) if Path(error.path).is_relative_to(tmp) else ""
                raise DownloadError(f"{remote.base_url}{inside}", f"downloaded, but does not load ({error.reason}); "
                                                                  f"nothing was saved; {hint}") from None
            save_model(data, target)
    except BaseException:
        for folder in created:  # deepest first; a folder something else wrote into stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    log.info("downloaded %r (%d files from %s) to %s", remote.name, len(remote.files), remote.base_url, target)
    return target


def _fetch_files(remote: RemoteModel, folder: Path, progress: bool, hint: str) -> None:
    """Download every file of ``remote`` under its relative path into ``folder``, checking pinned SHA-256s."""
    for file in tqdm(remote.files, desc=f"fetching {remote.name}", unit="file", disable=progress_disabled(progress)):
        download_file(remote.base_url + file.path, folder / file.path, file.sha256, progress=progress, hint=hint)
