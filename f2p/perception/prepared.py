"""The prepared-photo cache: one JSON record per photo (faces, 68 landmarks, dense landmarks when the detector gives
them, identity embeddings), written by ``python -m f2p prepare`` and read back by training and fitting with
``load_prepared``.

Layout of a prepare folder::

    records/<photo stem>-<10 hex of the photo's absolute path>.json   one record per photo that has a face
    summary.json, summary.csv                                        every photo of the last run, failures too

Record JSON (``RECORD_FORMAT``)::

    {"format": "f2p-prepared/2", "image": "/abs/photo.jpg", "image_size": [H, W],
     "source": {"bytes": N, "mtime_ns": T}, "detector": "dlib-hog", "all_faces": false, "embedder": "dlib" | null,
     "faces": [{"box": [x0, y0, x1, y1], "score": s, "landmarks": [[x, y] x 68], "landmark_confidence": [68],
                "dense_landmarks": [[x, y] x 478] | null, "dense_confidence": [478] | null,
                "embedding": [128 floats] | null}]}

Coordinates are f2p pixels of the upright photo (0-based, centre of the top-left pixel at (0, 0), iBUG 68 order,
dense points in ``f2p.face_mesh``'s order; a box gives the outer pixel edges); faces are largest first, at least
one. ``read_record`` checks every field (a record that is not an object, has no face or points of the wrong shape is
refused) and refuses records of an older format (``f2p-prepared/1`` had no dense landmarks), so they are redone
rather than misread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from f2p.atomic import atomic_writer
from f2p.naming import output_name, path_key
from f2p.conventions import NUM_LANDMARKS
from f2p.errors import PathError
from f2p.face_mesh import NUM_DENSE_POINTS
from f2p.perception.detection import FaceDetection

logger = logging.getLogger("f2p")

RECORD_VERSION = 2
RECORD_FORMAT = f"f2p-prepared/{RECORD_VERSION}"
RECORDS_DIR = "records"
_FORMAT_PATTERN = re.compile(r"f2p-prepared/(\d+)")
T = TypeVar("T")


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

        def listed(values: Tensor | None) -> list | None:
            return None if values is None else values.tolist()

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
                "dense_landmarks": listed(face.detection.dense_landmarks),
                "dense_confidence": listed(face.detection.dense_confidence),
                "embedding": listed(face.embedding),
            } for face in self.faces],
        }

    @classmethod
    def from_json(cls, data: object) -> PreparedRecord:
        """Inverse of ``to_json``; raises ValueError (one line, naming the field) for a record of another format or
        with a missing or malformed field, "older record format" for records of an earlier f2p."""
        if not isinstance(data, dict):
            raise ValueError(f"not a record: a JSON {type(data).__name__} instead of an object")
        version = _FORMAT_PATTERN.fullmatch(str(data.get("format")))
        if version is not None and int(version.group(1)) < RECORD_VERSION:
            raise ValueError(f"older record format {data['format']!r} (this f2p reads {RECORD_FORMAT})")
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"not an {RECORD_FORMAT} record (format {data.get('format')!r:.40})")
        source = _field(data, "source", dict)
        image_size = _field(data, "image_size", list)
        if len(image_size) != 2 or not all(_is_count(n) and n > 0 for n in image_size):
            raise ValueError(f"image_size must be [H, W], two positive integers, got {image_size!r:.40}")
        sizes = {key: source.get(key) for key in ("bytes", "mtime_ns")}
        if not all(map(_is_count, sizes.values())):
            raise ValueError(f"source must hold the photo's bytes and mtime_ns as integers, got {sizes!r}")
        detector = _field(data, "detector", str)
        embedder = data.get("embedder")
        if embedder is not None and not isinstance(embedder, str):
            raise ValueError(f"embedder must be a name or null, got {embedder!r:.40}")
        faces = _field(data, "faces", list)
        if not faces:
            raise ValueError("no faces (a record lists at least one)")
        return cls(_field(data, "image", str), (image_size[0], image_size[1]), sizes["bytes"], sizes["mtime_ns"],
                   detector, _field(data, "all_faces", bool), embedder,
                   tuple(_face(face, detector, f"faces[{number}]") for number, face in enumerate(faces)))


def _is_count(value: object) -> bool:
    """True for a JSON integer (not a boolean) >= 0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _field(data: dict, key: str, kind: type[T]) -> T:
    """``data[key]`` if it is a ``kind`` (a string: not empty); ValueError naming the field otherwise."""
    value = data.get(key)
    if value is None:
        raise ValueError(f"{key} is missing")
    if not isinstance(value, kind) or (kind is str and not value):
        wanted = {dict: "an object", list: "a list", str: "a non-empty string", bool: "true or false"}[kind]
        raise ValueError(f"{key} must be {wanted}, got {type(value).__name__} {value!r:.40}")
    return value


def _array(values: object, shape: tuple[int | None, ...], where: str) -> Tensor:
    """Finite numbers of ``shape`` (None: any positive size) as a float32 tensor; ValueError naming ``where``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be numbers of shape {shape}") from None
    if array.ndim != len(shape) or any(n != want if want is not None else n == 0
                                       for n, want in zip(array.shape, shape)):
        raise ValueError(f"{where} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{where} contains NaN or infinity")
    return torch.from_numpy(array).float()


def _face(face: object, detector: str, where: str) -> PreparedFace:
    """One entry of a record's ``faces`` (see the module docstring), validated."""
    if not isinstance(face, dict):
        raise ValueError(f"{where} must be an object, got {type(face).__name__}")
    score = face.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ValueError(f"{where}.score must be a finite number, got {score!r:.40}")
    dense = {key: face.get(key) for key in ("dense_landmarks", "dense_confidence")}
    if (dense["dense_landmarks"] is None) != (dense["dense_confidence"] is None):
        raise ValueError(f"{where}: dense_landmarks and dense_confidence must both be given or both be null")
    embedding = face.get("embedding")

    def optional(values: object, shape: tuple[int | None, ...], key: str) -> Tensor | None:
        return None if values is None else _array(values, shape, f"{where}.{key}")

    detection = FaceDetection(
        _array(face.get("box"), (4,), f"{where}.box"), float(score),
        _array(face.get("landmarks"), (NUM_LANDMARKS, 2), f"{where}.landmarks"),
        _array(face.get("landmark_confidence"), (NUM_LANDMARKS,), f"{where}.landmark_confidence"), detector,
        optional(dense["dense_landmarks"], (NUM_DENSE_POINTS, 2), "dense_landmarks"),
        optional(dense["dense_confidence"], (NUM_DENSE_POINTS,), "dense_confidence"))
    return PreparedFace(detection, optional(embedding, (None,), "embedding"))


photo_key = path_key
"""The key of a photo in the cache: its absolute path (``naming.path_key``)."""


def record_path(prepare_dir: str | os.PathLike, photo: str | os.PathLike) -> Path:
    """Where the record of ``photo`` lives: named like its output folder (``naming.output_name``, stem plus a hash
    of the absolute path: same names never collide)."""
    return Path(prepare_dir) / RECORDS_DIR / f"{output_name(photo)}.json"


def write_record(prepare_dir: str | os.PathLike, record: PreparedRecord) -> Path:
    """Write ``record`` atomically (temporary file, then rename) and return its path."""
    path = record_path(prepare_dir, record.image)
    with atomic_writer(path) as handle:
        handle.write(json.dumps(record.to_json()).encode("utf-8"))
    return path


def read_record(path: str | os.PathLike) -> PreparedRecord:
    """One record file; raises a ``PathError`` (a ValueError, one line ``"path: reason"``) when it cannot be read,
    is malformed or is of an older format (the reason then starts with "older record format")."""
    try:
        return PreparedRecord.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as error:
        raise PathError(path, str(error)) from error


def load_prepared(prepare_dir: str | os.PathLike) -> dict[str, PreparedRecord]:
    """Every valid record of a prepare folder, keyed by the photo's absolute path (``photo_key``); invalid or
    outdated record files are left out with a warning (``prepare`` redoes them)."""
    records = {}
    for path in sorted((Path(prepare_dir) / RECORDS_DIR).glob("*.json")):
        try:
            record = read_record(path)
        except PathError as error:
            logger.warning("prepare cache: skipping %s", error)
            continue
        records[record.image] = record
    return records
