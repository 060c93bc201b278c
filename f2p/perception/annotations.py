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

Families. AFLW2000-3D and 300W-LP jaw points follow the 3D jaw line of a fitted face model even where it is hidden
("3D-consistent"); 300-W, LFPW, 300-VW and menpo jaw points follow the visible silhouette. Evaluate the two apart
(``Annotation.contour_3d``) or on the 51 inner points only.
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

# File-name prefix in the shared face set -> (family, offset added to the "lm68"/"lm5" values of annotations.json,
# which are copied unchanged from the sources). See /work/shared/data/faces/README.txt, "Groups".
FACE_SET_GROUPS: dict[str, tuple[str, float]] = {
    "aflw2000_": ("aflw2000-3d", MATLAB_OFFSET),
    "300wlp_": ("300w-lp", MATLAB_OFFSET),
    "300vw_": ("300vw", PTS_OFFSET),
    "lfpw_": ("300w", PTS_OFFSET),
    "menpo_": ("menpo", PTS_OFFSET),
    "celeba_": ("celeba-5pt", 0.0),
    "idpair_": ("identity-only", 0.0),
}


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
        family: source markup, e.g. "aflw2000-3d", "300w-lp", "300w", "300vw", "menpo", "celeba-5pt", "ibug-pts",
            "array".
        pose_deg: (pitch, yaw, roll) in degrees as given by the source (AFLW2000-3D ``Pose_Para``), or None.
        identity: person label (same label = same person), or None.
    """

    points: Tensor | None
    confidence: Tensor | None
    family: str
    pose_deg: tuple[float, float, float] | None = None
    identity: str | None = None

    @property
    def contour_3d(self) -> bool:
        """True when jaw points follow the 3D jaw line (AFLW2000-3D, 300W-LP), False for the visible silhouette."""
        return self.family in THREE_D_CONSISTENT_FAMILIES


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


def _points(values: object, path: str | os.PathLike, offset: float = 0.0) -> Tensor:
    """Nested numbers -> (L, 2) float32 tensor (L = 68 or 5) plus ``offset``; raises AnnotationError otherwise."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AnnotationError(path, f"not a numeric point array ({error})") from error
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] not in (NUM_LANDMARKS, NUM_LANDMARKS_5):
        raise AnnotationError(path, f"expected {NUM_LANDMARKS}x2 or {NUM_LANDMARKS_5}x2 points, got shape "
                                    f"{array.shape}")
    if not np.isfinite(array).all():
        raise AnnotationError(path, "points contain NaN or infinity")
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


def read_face_set(faces_dir: str | os.PathLike) -> dict[str, FaceSetImage]:
    """The shared face set (``annotations.json`` layout) -> ``FaceSetImage`` per key ``"images/<file>"``.

    ``lm68``/``lm5`` are shifted per group (``FACE_SET_GROUPS``) since annotations.json keeps the source values.
    """
    faces_dir = Path(faces_dir)
    index = faces_dir / "annotations.json"
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError) as error:
        raise AnnotationError(index, f"cannot read ({error})") from error
    images = {}
    for key, entry in entries.items():
        name = Path(key).name
        group = next((prefix for prefix in FACE_SET_GROUPS if name.startswith(prefix)), None)
        if group is None:
            raise AnnotationError(index, f"{key}: unknown group (known file prefixes: {', '.join(FACE_SET_GROUPS)})")
        family, offset = FACE_SET_GROUPS[group]
        raw = entry.get("lm68", entry.get("lm5"))
        points = None if raw is None else _points(raw, index, offset)
        pose = entry.get("pose_pitch_yaw_roll_rad")
        annotation = Annotation(
            points, None if points is None else torch.ones(len(points)), family,
            pose_deg=None if pose is None else tuple(math.degrees(angle) for angle in pose),
            identity=entry.get("identity"))
        reannotated = entry.get("lm68_reannotated_3ddfa")
        images[key] = FaceSetImage(
            image=faces_dir / key,
            image_size=(int(entry["height"]), int(entry["width"])),
            annotation=annotation,
            reannotated=None if reannotated is None else Annotation(
                _points(reannotated, index), torch.ones(NUM_LANDMARKS), family, annotation.pose_deg),
            video_id=entry.get("video_id"))
    return images
