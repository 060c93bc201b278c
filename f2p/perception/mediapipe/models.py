"""The MediaPipe model files: where f2p finds them, and fetching them from MediaPipe's model store.

A file is looked up as ``<root>/mediapipe/<file>`` in each root of ``f2p.morphable.registry.model_roots()``
(the ``F2P_MODEL_PATH`` folders, then the user cache), the first found wins. ``model_file(..., download=True)``
fetches a missing file into ``<cache>/mediapipe/`` with ``f2p.morphable.download.download_file``, checked against
the SHA-256 pinned here. Nothing is downloaded while the environment variable ``F2P_OFFLINE`` is set (to anything
but "" or "0", see ``f2p.morphable.download.downloads_disabled``): the download is refused with a one-line
``DownloadError``.

URLs and hashes are MediaPipe's own, from ``third_party/external_files.bzl`` of google-ai-edge/mediapipe: the
current store layout first (commit 85c0cdc7d70653888903c88df45962b764296342), then the flat layout under which
earlier versions list the same bytes (commit 142335c01afeef77aae0db85c5f6bf868d36509f). They are the builds the
mediapipe 0.10.21 Python wheel ships; the store's ``modules/face_detection`` and ``modules/face_landmark`` entries
are other builds of the same models, with other hashes. All four models are Apache-2.0.

``CANONICAL_FACE_MODEL`` is MediaPipe's canonical face (``mediapipe/modules/face_geometry/data/``, Apache-2.0), which
the dense-landmark fit needs (``f2p.morphable.correspondence`` reads it from the same ``mediapipe/`` folders); it
is served from the mediapipe repository at commit 85c0cdc7d70653888903c88df45962b764296342. The copy in
``mediapipe``'s Python wheels has two more header lines (``mtllib``, ``usemtl``) and so another hash, with the same
vertices and triangles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from f2p.morphable.correspondence import CANONICAL_FACE
from f2p.morphable.download import DownloadError, DownloadRefusedError, download_file, refuse_offline
from f2p.morphable.registry import ModelNotFoundError, cache_dir, destination, model_roots

log = logging.getLogger(__name__)

MODEL_FOLDER = CANONICAL_FACE.parent.name
"""Sub-folder of each model root that holds the MediaPipe files ("mediapipe")."""
STORE = "https://storage.googleapis.com/mediapipe-assets"
SOURCE_COMMIT = "85c0cdc7d70653888903c88df45962b764296342"
SOURCE = f"https://raw.githubusercontent.com/google-ai-edge/mediapipe/{SOURCE_COMMIT}"


@dataclass(frozen=True)
class ModelAsset:
    """One MediaPipe model file.

    Attributes:
        file: file name inside a ``mediapipe/`` model folder.
        sha256: pinned SHA-256 of the file (hex).
        urls: where MediaPipe's model store serves it, tried in order.
        description: what the model does (for messages).
    """

    file: str
    sha256: str
    urls: tuple[str, ...]
    description: str


FACE_DETECTION_SHORT_RANGE = ModelAsset(
    "face_detection_short_range.tflite",
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    (f"{STORE}/tasks/testdata/vision/face_detection_short_range.tflite?generation=1782184645070605",
     f"{STORE}/face_detection_short_range.tflite?generation=1677044301978921"),
    "BlazeFace short-range face detector (faces within about 2 m)")
FACE_DETECTION_FULL_RANGE = ModelAsset(
    "face_detection_full_range_sparse.tflite",
    "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    (f"{STORE}/tasks/testdata/vision/face_detection_full_range_sparse.tflite?generation=1782184637874534",
     f"{STORE}/face_detection_full_range_sparse.tflite?generation=1674261618323821"),
    "BlazeFace full-range face detector (faces up to about 5 m)")
FACE_LANDMARK = ModelAsset(
    "face_landmark.tflite",
    "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    (f"{STORE}/tasks/testdata/vision/face_landmark.tflite?generation=1782184659286057",
     f"{STORE}/face_landmark.tflite?generation=1676316347980492"),
    "Face Mesh: 468 face landmarks and a face-presence score")
IRIS_LANDMARK = ModelAsset(
    "iris_landmark.tflite",
    "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    (f"{STORE}/modules/iris_landmark/iris_landmark.tflite?generation=1782183567532581",
     f"{STORE}/iris_landmark.tflite?generation=1662065468653224"),
    "Iris: 71 eye-contour and 5 iris landmarks of one eye")
ASSETS = (FACE_DETECTION_SHORT_RANGE, FACE_DETECTION_FULL_RANGE, FACE_LANDMARK, IRIS_LANDMARK)
"""The detector's models (``MediaPipeDetector``)."""
CANONICAL_FACE_MODEL = ModelAsset(
    CANONICAL_FACE.name,
    "8bac80443397e113f41a8b565ea72c59390bc031d9defab289dba7bc0c54e618",
    (f"{SOURCE}/mediapipe/modules/face_geometry/data/{CANONICAL_FACE.name}",),
    "MediaPipe's canonical face, which the dense-landmark fit registers to the face model")
DENSE_FIT_ASSETS = (*ASSETS, CANONICAL_FACE_MODEL)
"""What fitting MediaPipe's dense points needs: the detector's models and the canonical face."""


def search_paths(asset: ModelAsset) -> list[Path]:
    """Where ``asset`` is looked for, in order: ``<root>/mediapipe/<file>`` for each model root."""
    return [root / MODEL_FOLDER / asset.file for root in model_roots()]


def missing_model_files(assets: tuple[ModelAsset, ...] = ASSETS) -> list[str]:
    """File names of the ``assets`` that no model root holds (what a ``MediaPipeDetector`` would need to fetch)."""
    return [asset.file for asset in assets if not any(path.is_file() for path in search_paths(asset))]


def model_file(asset: ModelAsset, download: bool = False) -> Path:
    """The path of a MediaPipe model file, fetching it into the cache first when missing and ``download``.

    Raises:
        ModelNotFoundError: not found and ``download`` is False; the message lists where f2p looked and where to get
            the file.
        DownloadError: the download was refused (``F2P_OFFLINE``), failed, or its SHA-256 differs.
    """
    found = next((path for path in search_paths(asset) if path.is_file()), None)
    if found is not None:
        return found
    if download:
        return download_model_file(asset)
    where = ", ".join(str(path.parent) for path in search_paths(asset))
    raise ModelNotFoundError(asset.file, f"MediaPipe model not found ({asset.description}); looked in {where}. "
                                         f"Allow downloads (create_detector(\"mediapipe\", allow_download=True)) "
                                         f"or {copy_hint((asset,))}")


def copy_hint(assets: tuple[ModelAsset, ...]) -> str:
    """What to copy where by hand for ``assets``: their URLs, then the folder (``registry.destination``)."""
    return f"copy {', '.join(asset.urls[-1] for asset in assets)} into {destination(MODEL_FOLDER)}"


def fetch_missing(assets: tuple[ModelAsset, ...]) -> list[Path]:
    """Fetch the ``assets`` that no model root holds into ``<cache>/mediapipe/`` (``download_model_file``, one log
    line each); return their paths.

    Raises:
        DownloadRefusedError: ``F2P_OFFLINE`` is set and a file is missing; nothing is fetched, and the one line names
            every missing file, its URL and the folder to copy it into.
        DownloadError: a download failed or gave other bytes (files fetched before it are kept; the message names
            the ones still to copy).
    """
    missing = tuple(asset for asset in assets if asset.file in missing_model_files(assets))
    if missing:
        refuse_offline(", ".join(asset.file for asset in missing), copy_hint(missing))
    return [download_model_file(asset, copy_hint(missing[k:])) for k, asset in enumerate(missing)]


def download_model_file(asset: ModelAsset, hint: str | None = None) -> Path:
    """Fetch ``asset`` from MediaPipe's model store into ``<cache>/mediapipe/``, checked by its SHA-256.

    The URLs of ``asset.urls`` are tried in order until one gives the pinned bytes. ``hint`` ends every error
    message (default: ``copy_hint`` of ``asset``).

    Raises:
        DownloadRefusedError: ``F2P_OFFLINE`` is set (nothing is fetched).
        DownloadError: the last URL failed or gave other bytes.
    """
    target = cache_dir() / MODEL_FOLDER / asset.file
    hint = hint or copy_hint((asset,))
    for url in asset.urls[:-1]:
        try:
            download_file(url, target, asset.sha256, hint=hint)
            break
        except DownloadRefusedError:
            raise
        except DownloadError as error:
            log.warning("%s; trying the next URL", error)
    else:
        download_file(asset.urls[-1], target, asset.sha256, hint=hint)
    log.info("downloaded %s to %s", asset.file, target)
    return target
