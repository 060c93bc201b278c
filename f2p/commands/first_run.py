"""What a command fetches before its first photo: MediaPipe's model files for landmarks "auto" and "mediapipe".

The face model is fetched by ``f2p.morphable.registry.load_model(name, download=True)``; together they make the
first ``python -m f2p reconstruct photo.jpg --out out/`` of a user online work with nothing copied by hand. The
Lightning commands (``python -m f2p fit|validate|test|predict --config ...``) fetch both through
``fetch_for_arguments``, from the init arguments of the configured system and data module, in the CLI process
before the trainer starts (DDP ranks started by the launcher then find the files; ranks started together wait on
``f2p.morphable.download.download_lock``). Files
go into the user cache (``f2p.morphable.registry.cache_dir()``), each checked against its pinned SHA-256, with a
progress bar and one log line saying where it went. Offline (``F2P_OFFLINE``) or when a download fails:
"mediapipe" stops with one line saying what to copy where; "auto" warns with that line and, while MediaPipe's
detector models are missing, runs another detector (``f2p.perception.detectors``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextlib import nullcontext

log = logging.getLogger("f2p")

MEDIAPIPE_LANDMARKS = ("auto", "mediapipe")
"""``--landmarks`` / ``--detector`` values that run MediaPipe when its files are there."""
FACE_MODEL_ARGUMENTS = ("model", "face_model")
"""Init arguments of f2p's systems and data modules that name the face model they load (``load_model``)."""
DETECTOR_ARGUMENTS = ("landmarks", "detector")
"""Init arguments of f2p's data modules that name the landmark detector they run."""


def fetch_for_arguments(arguments: Iterable[Mapping[str, object]]) -> None:
    """Fetch what classes built with these init arguments will load and no model root holds: each open face model
    a ``FACE_MODEL_ARGUMENTS`` value names (``ict``, ``sfm``; paths and other values are left to the class), then
    MediaPipe's files for each ``DETECTOR_ARGUMENTS`` value "auto" or "mediapipe" (``fetch_detector_models``).

    Raises:
        ModelNotFoundError: a named open model is missing and ``F2P_OFFLINE`` is set; one line saying what to copy
            where (the message of ``load_model(name, download=True)``).
        DownloadError: a download failed, or one of ``fetch_detector_models``; one line.
    """
    from f2p.morphable.download import REMOTE_MODELS
    from f2p.morphable.registry import locate_model

    arguments = list(arguments)
    for name in _named(arguments, FACE_MODEL_ARGUMENTS):
        if name in REMOTE_MODELS:
            locate_model(name, download=True)
    for landmarks in _named(arguments, DETECTOR_ARGUMENTS):
        fetch_detector_models(landmarks)


def _named(arguments: list[Mapping[str, object]], keys: tuple[str, ...]) -> list[str]:
    """The distinct string values of ``keys`` in ``arguments``, in order."""
    values = (args.get(key) for args in arguments for key in keys)
    return list(dict.fromkeys(value for value in values if isinstance(value, str)))


def fetch_detector_models(landmarks: str) -> None:
    """Fetch the MediaPipe files (detector models and canonical face) that landmarks ``landmarks`` would use and
    no model root holds.

    Raises:
        DownloadError: a file could not be fetched (refused offline, or failed), for "mediapipe", or for "auto" when
            only the canonical face is missing (the detector would run and every fit would need it); one line
            saying what to copy where.
    """
    if landmarks not in MEDIAPIPE_LANDMARKS:
        return
    from f2p.morphable.download import DownloadError, download_lock, downloads_disabled
    from f2p.morphable.registry import cache_dir
    from f2p.perception.mediapipe.models import ASSETS, DENSE_FIT_ASSETS, fetch_missing, missing_model_files

    fetching = bool(missing_model_files(DENSE_FIT_ASSETS)) and not downloads_disabled()
    try:
        with download_lock(cache_dir()) if fetching else nullcontext():
            fetch_missing(DENSE_FIT_ASSETS)  # looks again: a process that waited finds the other's files
    except DownloadError as error:
        if landmarks == "mediapipe" or not missing_model_files(ASSETS):
            raise
        log.warning("%s; until then landmarks auto runs without MediaPipe", error)
