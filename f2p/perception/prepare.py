"""Preparing a photo once: detect its faces and 68 landmarks and embed their identities into a ``PreparedRecord``.

Used by ``python -m f2p prepare`` and by the regressor's photo data for photos the cache has no record of.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from f2p.perception.detection import DetectionFailure, LandmarkDetector, detect_photo
from f2p.perception.identity.base import FaceEmbedder
from f2p.perception.identity.embedder import create_embedder
from f2p.perception.image_io import load_image
from f2p.perception.prepared import PreparedFace, PreparedRecord, photo_key, read_record

logger = logging.getLogger("f2p")

EMBEDDER = "dlib"
"""The identity network of prepared records (``create_embedder`` name)."""


def optional_identity_embedder(device: str | torch.device) -> FaceEmbedder | None:
    """The ``EMBEDDER`` network on ``device``, or None with the reason logged when its weights cannot be loaded."""
    try:
        embedder = create_embedder(EMBEDDER).to(device)
    except (OSError, ValueError) as error:
        logger.info("identity embedding: skipped, the %s embedder could not be loaded (%s)", EMBEDDER, error)
        return None
    logger.info("identity embedding: %s (%d floats per face)", EMBEDDER, embedder.embedding_dim)
    return embedder


def cached_record(record_file: Path, photo: Path, detector: str, all_faces: bool,
                  embedder: str | None) -> PreparedRecord | None:
    """The record in ``record_file`` if it is readable and was made from the current ``photo`` with the same
    settings, else None."""
    if not record_file.is_file() or not photo.is_file():
        return None
    try:
        record = read_record(record_file)
    except ValueError as error:
        logger.warning("redoing %s: %s", photo, error)
        return None
    stat = photo.stat()
    same = (record.source_bytes, record.source_mtime_ns, record.detector, record.all_faces, record.embedder) == (
        stat.st_size, stat.st_mtime_ns, detector, all_faces, embedder)
    return record if same else None


def prepare_photo(photo: Path, detector: LandmarkDetector, embedder: FaceEmbedder | None, all_faces: bool,
                  max_side: int) -> PreparedRecord | DetectionFailure:
    """Detect the faces of one photo (largest, or all) and, with an embedder, embed each of them."""
    stat = photo.stat() if photo.is_file() else None
    found = detect_photo(photo, detector, all_faces, max_side)
    if isinstance(found, DetectionFailure):
        return found
    embeddings: list[torch.Tensor | None] = [None] * len(found.faces)
    if embedder is not None:
        landmarks = torch.stack([face.landmarks for face in found.faces])  # (F, 68, 2)
        image = load_image(photo)[None].expand(len(found.faces), -1, -1, -1)  # (F, 3, H, W)
        device = next(embedder.parameters()).device
        with torch.no_grad():
            embeddings = list(embedder.embed(image.to(device), landmarks.to(device)).cpu())
    return PreparedRecord(photo_key(photo), found.image_size, stat.st_size, stat.st_mtime_ns, detector.name,
                          all_faces, None if embedder is None else EMBEDDER,
                          tuple(PreparedFace(face, emb) for face, emb in zip(found.faces, embeddings)))
