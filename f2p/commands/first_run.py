"""What a command fetches before its first photo: MediaPipe's model files for landmarks "auto" and "mediapipe".

The face model is fetched by ``f2p.morphable.registry.load_model(name, download=True)``; together they make the
first ``python -m f2p reconstruct photo.jpg --out out/`` of a user online work with nothing copied by hand. Files
go into the user cache (``f2p.morphable.registry.cache_dir()``), each checked against its pinned SHA-256, with a
progress bar and one log line saying where it went. Offline (``F2P_OFFLINE``) or when a download fails:
"mediapipe" stops with one line saying what to copy where; "auto" warns with that line and, while MediaPipe's
detector models are missing, runs another detector (``f2p.perception.detectors``).
"""

from __future__ import annotations

import logging

log = logging.getLogger("f2p")

MEDIAPIPE_LANDMARKS = ("auto", "mediapipe")
"""``--landmarks`` / ``--detector`` values that run MediaPipe when its files are there."""


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
    from f2p.morphable.download import DownloadError
    from f2p.perception.mediapipe.models import ASSETS, DENSE_FIT_ASSETS, fetch_missing, missing_model_files

    try:
        fetch_missing(DENSE_FIT_ASSETS)
    except DownloadError as error:
        if landmarks == "mediapipe" or not missing_model_files(ASSETS):
            raise
        log.warning("%s; until then landmarks auto runs without MediaPipe", error)
