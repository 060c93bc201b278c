"""Fetching the open face models from their public repositories, checked by SHA-256, converted once.

ICT FaceKit (MIT) comes as the original ``FaceXModel`` OBJ files of ICT-VGL/ICT-FaceKit and SFM (non-commercial
model data, Apache-2.0 eos) as the ``share/`` files of patrikhuber/eos, both from raw.githubusercontent.com
at pinned commits. Each file is written atomically (temporary file + rename) and checked against its pinned
SHA-256 where one is known; the folder is then converted into one f2p ``.npz`` and the raw files deleted.

Pinned hashes: the four SFM files and ICT's ``vertex_indices.json`` (byte-for-byte copies of the upstream
files were available to compute them). The ICT OBJ files have no pinned hash yet: for them integrity rests
on the commit-pinned HTTPS URL, and their hashes are logged so that they can be pinned.

Offline use. While the environment variable ``F2P_OFFLINE`` is set (to anything but "" or "0"),
``download_file``, through which every f2p download goes, refuses before opening any URL (file:// included)
with a one-line ``DownloadRefusedError``; ``downloads_disabled`` is that check, for downloads made by other
libraries (FAN's weights, see ``f2p.perception.fan_detector``).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
    """One file of a remote model: its path relative to the model's base URL and its SHA-256, if pinned."""

    path: str
    sha256: str | None = None


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


ICT_REMOTE = RemoteModel(
    name="ict",
    base_url=f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{ICT_COMMIT}/FaceXModel/",
    files=(
        RemoteFile(ict.INDICES_JSON, "4f9b35306299980dd46bee4a6b79bb95dfae1953693b74b35a64f7febfd081a5"),
        RemoteFile(ict.NEUTRAL_OBJ),
        *(RemoteFile(f"identity{k:03d}.obj") for k in range(ict.NUM_IDENTITIES)),
        *(RemoteFile(f"{name}.obj") for name in ict.EXPRESSION_NAMES),
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


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None, *, progress: bool = True) -> str:
    """Download ``url`` to ``dest`` atomically, with a progress bar; return the content's SHA-256 (hex).

    Raises ``DownloadRefusedError`` when ``F2P_OFFLINE`` is set (nothing is opened), ``DownloadError`` when the
    download fails or ``sha256`` is given and differs; ``dest`` is then left untouched (no partial file).
    """
    dest = Path(dest)
    if downloads_disabled():
        raise DownloadRefusedError(url, f"download refused because {OFFLINE_ENV} is set; copy the file to {dest} by "
                                 f"hand, or unset {OFFLINE_ENV}")
    log.info("downloading %s -> %s", url, dest)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_writer(dest) as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if sha256 is not None and digest.hexdigest() != sha256.lower():
                raise DownloadError(url, f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}; "
                                         f"nothing was written to {dest}")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DownloadError(url, f"download failed ({error}); check the network connection or fetch the file "
                                 f"by hand into {dest.parent}") from None
    return digest.hexdigest()


def fetch_model(remote: RemoteModel, target: str | os.PathLike, *, progress: bool = True) -> Path:
    """Download ``remote``'s files into a temporary folder next to ``target``, convert them, save ``target``.

    ``target`` is an f2p ``.npz`` (see ``f2p.morphable.npz``); the raw files are deleted afterwards.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching model %r (%d files, licence: %s) from %s", remote.name, len(remote.files), remote.license,
             remote.base_url)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        unpinned = []
        for file in remote.files:
            digest = download_file(remote.base_url + file.path, Path(tmp) / file.path, file.sha256, progress=progress)
            if file.sha256 is None:
                unpinned.append(f"{file.path} {digest}")
        if unpinned:
            log.warning("%d files of %r have no pinned SHA-256; trusting the commit-pinned URL", len(unpinned),
                        remote.name)
            log.info("their SHA-256:\n%s", "\n".join(unpinned))
        save_model(remote.convert(Path(tmp)), target)
    log.info("saved %r to %s", remote.name, target)
    return target
