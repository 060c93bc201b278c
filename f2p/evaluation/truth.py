"""Ground truth for evaluation, read with ``f2p.perception.annotations`` and keyed for matching photos.

Accepted layouts (``--annotations FILE_OR_DIR``):
    annotations.json, or a folder holding one   the shared face-set layout (``read_face_set``): landmarks per
                                                family, AFLW2000-3D pose and 3DDFA re-annotation, person labels
                                                (``identity``, or 300-VW ``video_id``)
    a folder of ``.pts`` and/or ``.mat`` files  iBUG (300-W style) and AFLW2000-3D annotations, searched recursively
    one ``.pts`` or ``.mat`` file               a single photo
Photos match annotations by file name (annotations.json keys) or by stem (``image00050.jpg`` <-> ``image00050.mat``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from f2p.perception.annotations import (FACE_SET_FILE, Annotation, AnnotationError, is_face_set, read_annotation,
                                        read_face_set_file)

ANNOTATION_SUFFIXES = (".pts", ".mat")


@dataclass(frozen=True)
class GroundTruth:
    """What is known about one photo.

    Attributes:
        key: file name (annotations.json) or stem (annotation files) the photo is matched by.
        annotation: landmarks (68 or 5 points, or None), family, pose.
        reannotated: 3DDFA's re-annotation of an AFLW2000-3D photo, or None.
        person: person label for identity comparisons (annotations.json ``identity``; 300-VW frames get
            ``"video:<id>"``), or None.
    """

    key: str
    annotation: Annotation
    reannotated: Annotation | None = None
    person: str | None = None


def _from_face_set(index: Path) -> dict[str, GroundTruth]:
    truth = {}
    for key, entry in read_face_set_file(index).items():
        name = Path(key).name
        person = entry.annotation.identity or (None if entry.video_id is None else f"video:{entry.video_id}")
        truth[name] = GroundTruth(name, entry.annotation, entry.reannotated, person)
    return truth


def read_ground_truth(path: str | os.PathLike) -> dict[str, GroundTruth]:
    """Annotations at ``path`` (see the module docstring) -> {key: GroundTruth}.

    Raises:
        AnnotationError: missing path, unreadable file, or a folder without annotations.
    """
    path = Path(path)
    if path.is_file() and is_face_set(path):
        return _from_face_set(path)
    if path.is_file():
        if path.suffix.lower() not in ANNOTATION_SUFFIXES:
            raise AnnotationError(path, f"not an annotation file (expected {FACE_SET_FILE}, .pts or .mat)")
        return {path.stem: GroundTruth(path.stem, read_annotation(path))}
    if not path.is_dir():
        raise AnnotationError(path, "no such annotation file or folder")
    if (path / FACE_SET_FILE).is_file():
        return _from_face_set(path / FACE_SET_FILE)
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in ANNOTATION_SUFFIXES)
    if not files:
        raise AnnotationError(path, f"no {FACE_SET_FILE}, .pts or .mat annotation files in this folder")
    return {f.stem: GroundTruth(f.stem, read_annotation(f)) for f in files}


def truth_matcher(truth: dict[str, GroundTruth]) -> Callable[[str], GroundTruth | None]:
    """A function from a photo path (or stem) to its ground truth, matched by file name first, then by stem; None
    when there is none."""
    by_stem = {Path(key).stem: gt for key, gt in truth.items()}

    def match(image: str) -> GroundTruth | None:
        name = Path(image).name
        return truth.get(name) or by_stem.get(Path(name).stem)

    return match
