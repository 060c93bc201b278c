"""Landmark annotation readers; everything comes out in f2p's pixel convention (0-based, pixel centres at integers).

On-disk conventions and what is done with them:

- iBUG ``.pts`` (300-W, LFPW, 300-VW, menpo): 1-based (MATLAB); ``PTS_OFFSET`` (-1) is added.
- AFLW2000-3D ``.mat`` ``pt3d_68`` and 300W-LP landmarks: produced by the MATLAB 3DMM fitting of Zhu et al., taken as
  1-based and shifted by -1 like ``.pts``. Evidence: 3DDFA, trained on these fits, subtracts 1 "for Python
  compatibility"; and on the shared photos dlib (0-based) sits about 1 px left of and above the raw values,
  as it does for ``.pts`` files.
- 3DDFA's AFLW2000-3D re-annotation (``lm68_reannotated_3ddfa``): published by 3DDFA (Python) and compared there
  with its 0-based predictions, so taken as 0-based. Its points are integers (+-0.5 px).
- Plain arrays (``.npy``, ``.json``, ``.txt``/``.csv`` with one "x y" row per point) and 5-point detections
  (Deep3DFaceRecon ``lm5``, from a Python detector): taken as already 0-based.
- Face-set files (the shared face set's ``annotations.json`` layout, any file name): the stored values are the
  sources' own; each entry's ``origin`` (1 for the 1-based sources above, else 0) is subtracted.

Families. AFLW2000-3D and 300W-LP jaw points follow the 3D jaw line of a fitted face model even where it is hidden
("3D-consistent"); 300-W, LFPW, 300-VW and menpo jaw points follow the visible silhouette. Evaluate the two apart
(``Annotation.contour_3d``) or on the 51 inner points only. The family and the jaw come from the annotation itself
(a face-set entry's ``markup`` and ``jaw``, or the file format), never from file names.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS, PTS_OFFSET
from f2p.errors import PathError

NUM_LANDMARKS_5 = 5
"""5-point markup: eye centre on the image left, eye centre on the image right, nose tip, mouth corner on the image
left, mouth corner on the image right."""

MATLAB_OFFSET = -1.0
"""Added to 1-based MATLAB pixel coordinates (AFLW2000-3D, 300W-LP) to get f2p pixels."""

THREE_D_CONSISTENT_FAMILIES = frozenset({"aflw2000-3d", "300w-lp"})
"""Families whose jaw points are 3D-consistent; used when an annotation does not say how its jaw was marked."""

JAW_3D = "3d-consistent"
"""``jaw`` of annotations whose 17 jaw points follow the 3D jaw line, hidden or not."""
JAW_VISIBLE = "visible-contour"
"""``jaw`` of annotations whose 17 jaw points follow the visible silhouette."""

FACE_SET_FILE = "annotations.json"
"""The face-set file of a folder (``read_face_set``); face-set files of any other name are read by content."""
MARKUP_NONE = "none"
"""Face-set ``markup`` of an entry without landmarks (identity label only)."""
MARKUP_OTHER = "other"
"""Family of a face-set entry with landmarks whose ``markup`` is not given."""
POSE_FIELD = "pose_pitch_yaw_roll_rad"
"""Face-set field of AFLW2000-3D's head pose (``Pose_Para[0:3]``, radians)."""
POINT_FIELDS = {"lm68": NUM_LANDMARKS, "lm5": NUM_LANDMARKS_5}
"""Face-set fields holding the landmarks of an entry, with their point counts; ``lm68`` wins when both are given."""


class AnnotationError(PathError):
    """An annotation file that cannot be read."""


@dataclass(frozen=True)
class Annotation:
    """Ground truth of one face.

    Attributes:
        points: (L, 2) pixels in f2p's convention, L = 68 (iBUG order) or 5 (see ``NUM_LANDMARKS_5``); None when
            the photo has no landmarks (identity label only).
        confidence: (L,) per-point weight in [0, 1]; ones from these readers (none of the formats marks missing
            points); None with ``points``.
        family: source markup: a face-set entry's ``markup`` ("aflw2000-3d", "300w-lp", "300w", "300vw", "menpo",
            "5pt-detected", "none", ...; ``MARKUP_OTHER`` when the entry gives none), "aflw2000-3d" for ``.mat``
            files, "ibug-pts" for ``.pts`` files, "array" for plain arrays.
        pose_deg: (pitch, yaw, roll) in degrees as given by the source (AFLW2000-3D ``Pose_Para``), or None.
        identity: person label (same label = same person), or None.
        jaw: how the jaw points were marked, ``JAW_3D`` or ``JAW_VISIBLE``, when the source says so, else None.
    """

    points: Tensor | None
    confidence: Tensor | None
    family: str
    pose_deg: tuple[float, float, float] | None = None
    identity: str | None = None
    jaw: str | None = None

    @property
    def contour_3d(self) -> bool:
        """True when jaw points follow the 3D jaw line, False for the visible silhouette: ``jaw`` when given, else
        whether ``family`` is one of ``THREE_D_CONSISTENT_FAMILIES``."""
        return self.jaw == JAW_3D if self.jaw is not None else self.family in THREE_D_CONSISTENT_FAMILIES


@dataclass(frozen=True)
class FaceSetImage:
    """One photo of the shared face set.

    Attributes:
        image: path of the photo.
        image_size: (H, W).
        annotation: its landmarks (68 or 5 points) or identity label.
        reannotated: AFLW2000-3D only: 3DDFA's cleaner 2D re-annotation of the 68 points, else None.
        video_id: 300-VW only: frames with the same id show the same person.
    """

    image: Path
    image_size: tuple[int, int]
    annotation: Annotation
    reannotated: Annotation | None = None
    video_id: str | None = None


def _points(values: object, path: str | os.PathLike, offset: float = 0.0, where: str = "",
            counts: tuple[int, ...] = (NUM_LANDMARKS, NUM_LANDMARKS_5)) -> Tensor:
    """Nested numbers -> (L, 2) float32 tensor (L one of ``counts``) plus ``offset``; raises AnnotationError
    (``where`` prefixed to its reason) otherwise."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AnnotationError(path, f"{where}not a numeric point array ({error})") from error
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] not in counts:
        expected = " or ".join(f"{count}x2" for count in counts)
        raise AnnotationError(path, f"{where}expected {expected} points, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise AnnotationError(path, f"{where}points contain NaN or infinity")
    return torch.from_numpy(array + offset).float()


def read_pts(path: str | os.PathLike) -> Tensor:
    """iBUG ``.pts`` file -> (L, 2) points, shifted from 1-based to f2p pixels.

    Format: ``version: 1`` / ``n_points: L`` / ``{`` / L lines ``x y`` / ``}``.
    """
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(path, f"cannot read ({error})") from error
    header = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in lines if ":" in line)}
    if not header.get("n_points", "").isdigit() or "{" not in lines or "}" not in lines:
        raise AnnotationError(path, "not an iBUG .pts file (needs 'n_points: N' and a '{ ... }' block)")
    body = lines[lines.index("{") + 1:lines.index("}")]
    if len(body) != int(header["n_points"]):
        raise AnnotationError(path, f"n_points is {header['n_points']} but {len(body)} points are listed")
    return _points([line.split() for line in body], path, PTS_OFFSET)


def read_aflw2000_mat(path: str | os.PathLike) -> Annotation:
    """AFLW2000-3D ``.mat`` -> 68 points (``pt3d_68`` rows x, y; 1-based, shifted) and pose (``Pose_Para``)."""
    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError) as error:
        raise AnnotationError(path, f"cannot read MATLAB file ({error})") from error
    if "pt3d_68" not in mat or "Pose_Para" not in mat:
        raise AnnotationError(path, "not an AFLW2000-3D file (needs pt3d_68 and Pose_Para)")
    points = _points(mat["pt3d_68"][:2].T, path, MATLAB_OFFSET)
    pitch, yaw, roll = (math.degrees(float(angle)) for angle in mat["Pose_Para"].reshape(-1)[:3])
    return Annotation(points, torch.ones(len(points)), "aflw2000-3d", pose_deg=(pitch, yaw, roll))


def read_point_array(path: str | os.PathLike) -> Tensor:
    """Plain 0-based (L, 2) points from ``.npy``, ``.json`` (nested list) or text (``.txt``/``.csv``, one point a row,
    separated by spaces, tabs or commas)."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix == ".json":
            values = json.loads(Path(path).read_text())
        else:
            values = [line.replace(",", " ").split() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, ValueError, EOFError) as error:
        raise AnnotationError(path, f"cannot read point array ({error})") from error
    return _points(values, path)


def read_annotation(path: str | os.PathLike) -> Annotation:
    """Any supported annotation file -> ``Annotation``, by suffix: ``.pts``, ``.mat`` (AFLW2000-3D), else a plain
    array (``.npy``, ``.json``, ``.txt``, ``.csv``). Missing points are not marked by these formats: confidence is 1.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".mat":
        return read_aflw2000_mat(path)
    points = read_pts(path) if suffix == ".pts" else read_point_array(path)
    return Annotation(points, torch.ones(len(points)), "ibug-pts" if suffix == ".pts" else "array")


def is_face_set(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a face-set file (read with ``read_face_set_file``) rather than one photo's annotation:
    a ``.json`` file named ``FACE_SET_FILE`` or whose top level is a JSON object (plain point arrays are lists)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return False
    if path.name == FACE_SET_FILE:
        return True
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def read_face_set(faces_dir: str | os.PathLike) -> dict[str, FaceSetImage]:
    """The face set of a folder: ``read_face_set_file`` of its ``FACE_SET_FILE``."""
    return read_face_set_file(Path(faces_dir) / FACE_SET_FILE)


def read_face_set_file(path: str | os.PathLike) -> dict[str, FaceSetImage]:
    """A face-set JSON file (the shared face set's ``annotations.json`` layout, any file name) -> ``FaceSetImage``
    per key (an image path relative to the file's folder, e.g. ``"images/<file>"``).

    Each entry is an object with ``width`` and ``height`` (pixels) and, unless its ``markup`` is ``MARKUP_NONE``,
    ``lm68`` (68 [x, y]) or ``lm5`` (5 [x, y]). The family is the entry's ``markup`` (``MARKUP_OTHER`` when absent);
    ``origin`` (default 0) is subtracted from the stored points; ``jaw`` is ``JAW_3D`` or ``JAW_VISIBLE``. Optional:
    ``lm68_reannotated_3ddfa`` (68 points, 0-based), ``pose_pitch_yaw_roll_rad``, ``identity``, ``video_id``; other
    fields are ignored.

    Raises:
        AnnotationError: an unreadable file or a malformed entry, one line naming the file and the entry.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AnnotationError(path, f"cannot read ({error})") from error
    if not isinstance(entries, dict):
        raise AnnotationError(path, f"not a face-set file: the top level must be a JSON object of entries keyed by "
                                    f"image path, got a JSON {_json_type(entries)}")
    return {key: _face_set_image(key, entry, path) for key, entry in entries.items()}


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def _face_set_image(key: str, entry: object, path: Path) -> FaceSetImage:
    """One face-set entry, validated (see ``read_face_set_file``)."""
    where = f"entry {key!r}: "
    if not isinstance(entry, dict):
        raise AnnotationError(path, f"{where}must be a JSON object, got a JSON {_json_type(entry)}")
    size = [entry.get("height"), entry.get("width")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size):
        raise AnnotationError(path, f"{where}needs 'width' and 'height', positive integers (pixels), got "
                                    f"width {entry.get('width')!r} and height {entry.get('height')!r}")
    field = next((name for name in POINT_FIELDS if name in entry), None)
    markup = entry.get("markup", MARKUP_NONE if field is None else MARKUP_OTHER)
    if not isinstance(markup, str) or not markup:
        raise AnnotationError(path, f"{where}'markup' must be a non-empty string, got {markup!r}")
    if field is None and markup != MARKUP_NONE:
        raise AnnotationError(path, f"{where}markup {markup!r} but no points ('lm68' or 'lm5')")
    origin = entry.get("origin", 0)
    if not _is_finite_number(origin):
        raise AnnotationError(path, f"{where}'origin' must be a finite number (pixels), got {origin!r}")
    jaw = entry.get("jaw")
    if jaw not in (None, JAW_3D, JAW_VISIBLE):
        raise AnnotationError(path, f"{where}'jaw' must be {JAW_3D!r} or {JAW_VISIBLE!r}, got {jaw!r}")
    points = None if field is None else _points(entry[field], path, -origin, f"{where}{field}: ",
                                                (POINT_FIELDS[field],))
    pose = entry.get(POSE_FIELD)
    if pose is not None:
        if not (isinstance(pose, list) and len(pose) == 3 and all(map(_is_finite_number, pose))):
            raise AnnotationError(path, f"{where}{POSE_FIELD!r} must be a list of 3 finite numbers (radians)")
        pose = tuple(math.degrees(angle) for angle in pose)
    identity, video_id = (_label(entry, name, path, where) for name in ("identity", "video_id"))
    annotation = Annotation(points, None if points is None else torch.ones(len(points)), markup, pose, identity, jaw)
    reannotated = entry.get("lm68_reannotated_3ddfa")
    return FaceSetImage(
        image=path.parent / key,
        image_size=(size[0], size[1]),
        annotation=annotation,
        reannotated=None if reannotated is None else Annotation(
            _points(reannotated, path, 0.0, f"{where}lm68_reannotated_3ddfa: ", (NUM_LANDMARKS,)),
            torch.ones(NUM_LANDMARKS), markup, pose, jaw=jaw),
        video_id=video_id)


def _is_finite_number(value: object) -> bool:
    """True for a JSON number (not a boolean) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _label(entry: dict, name: str, path: Path, where: str) -> str | None:
    """An optional string field of a face-set entry (``identity``, ``video_id``)."""
    value = entry.get(name)
    if value is not None and not isinstance(value, str):
        raise AnnotationError(path, f"{where}{name!r} must be a string, got a JSON {_json_type(value)}")
    return value
