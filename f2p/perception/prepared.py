"""The prepared-photo cache: one JSON record per photo (faces, 68 landmarks, identity embeddings), written by
``python -m f2p prepare`` and read back by training and fitting with ``load_prepared``.

Layout of a prepare folder::

    records/<photo stem>-<10 hex of the photo's absolute path>.json   one record per photo that has a face
    summary.json, summary.csv                                        every photo of the last run, failures too

Record JSON (``RECORD_FORMAT``)::

    {"format": "f2p-prepared/1", "image": "/abs/photo.jpg", "image_size": [H, W],
     "source": {"bytes": N, "mtime_ns": T}, "detector": "dlib-hog", "all_faces": false, "embedder": "dlib" | null,
     "faces": [{"box": [x0, y0, x1, y1], "score": s, "landmarks": [[x, y] x 68], "landmark_confidence": [68],
                "embedding": [128 floats] | null}]}

Coordinates are f2p pixels of the upright photo (0-based, centre of the top-left pixel at (0, 0), iBUG 68 order;
a box gives the outer pixel edges); faces are largest first.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from f2p.atomic import atomic_writer
from f2p.perception.detection import FaceDetection

RECORD_FORMAT = "f2p-prepared/1"
RECORDS_DIR = "records"


@dataclass(frozen=True)
class PreparedFace:
    """One face of a prepared photo: its detection and, when an embedder ran, its (128,) identity embedding."""

    detection: FaceDetection
    embedding: Tensor | None


@dataclass(frozen=True)
class PreparedRecord:
    """Everything ``prepare`` learnt about one photo.

    Attributes:
        image: absolute path of the photo.
        image_size: (H, W) of the upright photo.
        source_bytes, source_mtime_ns: size and modification time of the photo file when it was prepared.
        detector: name of the landmark detector.
        all_faces: whether every face was kept (else only the largest).
        embedder: name of the identity embedder, or None when embeddings were not computed.
        faces: largest first, at least one.
    """

    image: str
    image_size: tuple[int, int]
    source_bytes: int
    source_mtime_ns: int
    detector: str
    all_faces: bool
    embedder: str | None
    faces: tuple[PreparedFace, ...]

    def to_json(self) -> dict:
        """The record as JSON-serialisable data (see the module docstring)."""
        return {
            "format": RECORD_FORMAT,
            "image": self.image,
            "image_size": list(self.image_size),
            "source": {"bytes": self.source_bytes, "mtime_ns": self.source_mtime_ns},
            "detector": self.detector,
            "all_faces": self.all_faces,
            "embedder": self.embedder,
            "faces": [{
                "box": face.detection.box.tolist(),
                "score": face.detection.score,
                "landmarks": face.detection.landmarks.tolist(),
                "landmark_confidence": face.detection.landmark_confidence.tolist(),
                "embedding": None if face.embedding is None else face.embedding.tolist(),
            } for face in self.faces],
        }

    @classmethod
    def from_json(cls, data: dict) -> PreparedRecord:
        """Inverse of ``to_json``; raises ValueError for another format or missing fields."""
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"not an {RECORD_FORMAT} record (format {data.get('format')!r})")
        try:
            faces = tuple(PreparedFace(
                FaceDetection(torch.tensor(face["box"]), float(face["score"]), torch.tensor(face["landmarks"]),
                              torch.tensor(face["landmark_confidence"]), data["detector"]),
                None if face["embedding"] is None else torch.tensor(face["embedding"]),
            ) for face in data["faces"])
            return cls(data["image"], tuple(data["image_size"]), int(data["source"]["bytes"]),
                       int(data["source"]["mtime_ns"]), data["detector"], bool(data["all_faces"]),
                       data["embedder"], faces)
        except (KeyError, TypeError) as error:
            raise ValueError(f"incomplete record ({type(error).__name__}: {error})") from error


def photo_key(path: str | os.PathLike) -> str:
    """The key of a photo in the cache: its absolute path."""
    return str(Path(path).resolve())


def record_path(prepare_dir: str | os.PathLike, photo: str | os.PathLike) -> Path:
    """Where the record of ``photo`` lives (stem plus a hash of the absolute path: same names never collide)."""
    key = photo_key(photo)
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
    return Path(prepare_dir) / RECORDS_DIR / f"{Path(key).stem}-{digest}.json"


def write_record(prepare_dir: str | os.PathLike, record: PreparedRecord) -> Path:
    """Write ``record`` atomically (temporary file, then rename) and return its path."""
    path = record_path(prepare_dir, record.image)
    with atomic_writer(path) as handle:
        handle.write(json.dumps(record.to_json()).encode("utf-8"))
    return path


def read_record(path: str | os.PathLike) -> PreparedRecord:
    """One record file; raises ValueError with ``"path: reason"`` when it is unreadable."""
    try:
        return PreparedRecord.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def load_prepared(prepare_dir: str | os.PathLike) -> dict[str, PreparedRecord]:
    """Every record of a prepare folder, keyed by the photo's absolute path (``photo_key``).

    Raises:
        ValueError: a record file that cannot be read (``"path: reason"``).
    """
    paths = sorted((Path(prepare_dir) / RECORDS_DIR).glob("*.json"))
    return {record.image: record for record in map(read_record, paths)}
