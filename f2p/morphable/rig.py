"""Game-character blendshape rigs: a folder of OBJ files (a base mesh and one full-strength target per
blendshape, all with the base's vertex order) described by a manifest ``rig.json``.

Manifest (keys other than these are refused, so a typo does not pass silently)::

    {
      "name": "hero_head",                  model name (default: the folder name)
      "base": "neutral.obj",                base mesh, relative to the folder (every file the manifest
                                            names must lie in the rig folder or below it)
      "units": "cm",                        "m" (default), "cm" or "mm"; converted to metres on load
      "up": "y",                            "y" (default): y up, the face looking towards +z;
                                            "z": z up, the face looking towards -y (Blender, 3ds Max),
                                            turned into f2p's frame by (x, y, z) -> (x, z, -y)
      "sliders": [                          the "sliders" group: bounded [min, max] per slider
        {"name": "jawOpen", "file": "jawOpen.obj", "min": 0, "max": 1, "default": 0},
        ...
      ],
      "identity": [...],                    optional "identity" group, same entries; unbounded
                                            unless every entry gives min and max
      "landmarks": [68 ints] or "lmk.txt",  optional iBUG-68 vertex indices, 0-based, -1 = none
      "face_region": [ints] or "face.txt"   optional vertex indices of the face area (default: all)
    }

Each entry: ``name`` and ``file`` (required), ``min``/``max`` (sliders default to 0 and 1),
``default`` (default 0, must lie in [min, max]) and ``prior_std`` (default (max - min) / 2 when
bounded, else 1). A target OBJ is the mesh at value 1 with everything else at 0, so
``mesh = base + sum_i value_i * (target_i - base)``; a target may omit its faces (``v`` lines only),
else they must equal the base's. ``default`` is the value a fresh character has in the game; f2p's
parameters start at 0 (the base mesh), so the defaults are kept in ``metadata["defaults"]`` (JSON)
for exporters. Index files are ``.npy`` or text (see ``landmark_index.read_index_file``).

A rig without landmarks still loads, with a warning: every landmark sits at vertex 0 with confidence
0, so landmark losses ignore them and fitting is photometric only. With landmarks,
``landmark_index.check_frame`` verifies the declared units and up axis.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from f2p import conventions as C
from f2p.morphable.base import LinearModelData, ModelFileError, ParamGroup
from f2p.morphable.landmark_index import (NO_LANDMARK, check_frame, read_index_file, read_landmark_indices,
                                          vertex_landmarks)
from f2p.morphable.obj_io import ObjMesh, read_obj

MANIFEST = "rig.json"
UNITS = {"m": 1.0, "cm": C.M_PER_CM, "mm": C.M_PER_MM}
UP_AXES = {
    "y": np.eye(3),
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # (x, y, z) -> (x, z, -y)
}
"""Rotation from a rig's frame to f2p's model frame, by the rig's up axis."""
SLIDER_RANGE = (0.0, 1.0)
"""Default [min, max] of a slider."""
TARGET_GROUPS = ("sliders", "identity")
_MANIFEST_KEYS = {"name", "base", "units", "up", "landmarks", "face_region", *TARGET_GROUPS}
_ENTRY_KEYS = {"name", "file", "min", "max", "default", "prior_std"}


def load_rig(path: str | os.PathLike) -> LinearModelData:
    """Load a blendshape rig from its folder (or its ``rig.json``) as ``LinearModelData`` (see module doc)."""
    path = Path(path)
    manifest_path = path if path.suffix == ".json" else path / MANIFEST
    folder = manifest_path.parent
    manifest = _read_manifest(manifest_path)
    scale = UNITS[_choice(manifest, "units", "m", UNITS, manifest_path)]
    rotation = UP_AXES[_choice(manifest, "up", "y", UP_AXES, manifest_path)]

    def to_model(points: np.ndarray) -> np.ndarray:  # (N, 3) rig coordinates -> metres in f2p's frame
        return points * scale @ rotation.T

    base = read_obj(_rig_file(folder, _string(manifest, "base", manifest_path), manifest_path, "'base': "))
    mean = to_model(base.verts)
    groups, bases, defaults = [], {}, {}
    for group in TARGET_GROUPS:
        entries = manifest.get(group, [])
        if not isinstance(entries, list):
            raise ModelFileError(manifest_path, f"{group!r} must be a list of blendshape entries")
        if entries:
            spec, targets, group_defaults = _target_group(group, entries, folder, manifest_path, base)
            groups.append(spec)
            bases[group] = np.stack([to_model(t.verts) - mean for t in targets]).astype(np.float32)
            defaults[group] = group_defaults
    if not groups:
        raise ModelFileError(manifest_path, f"the rig has no blendshapes: list targets under {' or '.join(TARGET_GROUPS)}")

    V = len(mean)
    indices = (_indices(manifest["landmarks"], folder, manifest_path, "landmarks", read_landmark_indices)
               if "landmarks" in manifest else np.full(C.NUM_LANDMARKS, NO_LANDMARK))
    lmk_vertices, lmk_weights, confidence = vertex_landmarks(indices, V, manifest_path)
    data = LinearModelData(
        name=_string(manifest, "name", manifest_path) if "name" in manifest else folder.name,
        mean=mean.astype(np.float32), faces=base.faces, groups=tuple(groups), bases=bases,
        landmark_vertices=lmk_vertices, landmark_weights=lmk_weights, landmark_confidence=confidence,
        face_region=_face_region(manifest, folder, manifest_path, V),
        uv=None if base.uv is None else base.uv.astype(np.float32), faces_uv=base.faces_uv,
        metadata={"source": str(manifest_path), "format": "OBJ blendshape rig", "defaults": json.dumps(defaults)})
    data.validate(manifest_path)
    check_frame(data.mean, lmk_vertices, lmk_weights, confidence, manifest_path)
    return data


def _face_region(manifest: dict, folder: Path, manifest_path: Path, num_vertices: int) -> np.ndarray:
    """(V,) bool: the manifest's ``face_region`` vertices, or every vertex."""
    if "face_region" not in manifest:
        return np.ones(num_vertices, dtype=bool)
    region = _indices(manifest["face_region"], folder, manifest_path, "face_region", read_index_file)
    if region.size == 0 or region.min() < 0 or region.max() >= num_vertices:
        raise ModelFileError(manifest_path, f"face_region must list vertex indices in [0, {num_vertices})")
    mask = np.zeros(num_vertices, dtype=bool)
    mask[region] = True
    return mask


def _read_manifest(path: Path) -> dict:
    if not path.is_file():
        raise ModelFileError(path, f"rig manifest not found (a rig folder needs a {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelFileError(path, f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except UnicodeDecodeError:
        raise ModelFileError(path, "not a UTF-8 text file") from None
    if not isinstance(manifest, dict):
        raise ModelFileError(path, "the manifest must be a JSON object")
    unknown = set(manifest) - _MANIFEST_KEYS
    if unknown:
        raise ModelFileError(path, f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_MANIFEST_KEYS)}")
    return manifest


def _rig_file(folder: Path, name: str, manifest_path: Path, where: str) -> Path:
    """``folder / name`` for a file the manifest names; ModelFileError when it lies outside the rig folder (an
    absolute path, ``..``, or a symbolic link that leads out)."""
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError) as error:  # a symbolic-link loop, a NUL byte in the name
        raise ModelFileError(manifest_path, f"{where}file {name!r} cannot be resolved ({error})") from None
    if not inside:
        raise ModelFileError(manifest_path, f"{where}file {name!r} is outside the rig folder (rig files must lie in "
                                            f"{folder} or below it)")
    return path


def _string(mapping: dict, key: str, manifest_path: Path, where: str = "") -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise ModelFileError(manifest_path, f"{where}{key!r} must be a non-empty string, got {value!r}")
    return value


def _choice(manifest: dict, key: str, default: str, allowed: dict, manifest_path: Path) -> str:
    value = manifest.get(key, default)
    if value not in allowed:
        raise ModelFileError(manifest_path, f"{key!r} must be one of {sorted(allowed)}, got {value!r}")
    return value


def _number(entry: dict, key: str, default: float | None, manifest_path: Path, where: str) -> float | None:
    value = entry.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelFileError(manifest_path, f"{where}{key!r} must be a finite number, got {value!r}")
    return float(value)


def _indices(value: object, folder: Path, manifest_path: Path, key: str,
             read_file: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Vertex indices given inline as a JSON list of integers or as a file name read by ``read_file``."""
    if isinstance(value, str):
        return read_file(_rig_file(folder, value, manifest_path, f"{key!r}: "))
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ModelFileError(manifest_path, f"{key!r} must be a list of integer vertex indices or a file name")
    return np.asarray(value, dtype=np.int64)


def _target_group(group: str, entries: list, folder: Path, manifest_path: Path,
                  base: ObjMesh) -> tuple[ParamGroup, list[ObjMesh], dict[str, float]]:
    """Validate one group's entries and read their target meshes; returns the spec, targets and defaults."""
    names, lower, upper, prior_std, targets, defaults = [], [], [], [], [], {}
    for number, entry in enumerate(entries):
        where = f"{group}[{number}]: "
        if not isinstance(entry, dict):
            raise ModelFileError(manifest_path, f"{where}each entry must be a JSON object")
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ModelFileError(manifest_path,
                                 f"{where}unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
        name = _string(entry, "name", manifest_path, where)
        where = f"{group} {name!r}: "
        if name in names:
            raise ModelFileError(manifest_path, f"{where}duplicate name")
        default_range = SLIDER_RANGE if group == "sliders" else (None, None)
        lo = _number(entry, "min", default_range[0], manifest_path, where)
        hi = _number(entry, "max", default_range[1], manifest_path, where)
        if (lo is None) != (hi is None):
            raise ModelFileError(manifest_path, f"{where}give both min and max or neither")
        if lo is not None and lo > hi:
            raise ModelFileError(manifest_path, f"{where}min {lo} > max {hi}")
        default = _number(entry, "default", 0.0, manifest_path, where)
        if lo is not None and not lo <= default <= hi:
            raise ModelFileError(manifest_path, f"{where}default {default} outside [{lo}, {hi}]")
        std = _number(entry, "prior_std", 1.0 if lo is None else (hi - lo) / 2, manifest_path, where)
        if std <= 0:
            raise ModelFileError(manifest_path, f"{where}prior_std must be positive, got {std}")
        target_path = _rig_file(folder, _string(entry, "file", manifest_path, where), manifest_path, where)
        target = read_obj(target_path)
        if target.verts.shape != base.verts.shape:
            raise ModelFileError(target_path, f"target {name!r} has {len(target.verts)} vertices, the base mesh "
                                              f"{len(base.verts)}: blendshape targets need the base's topology")
        if len(target.faces) and not np.array_equal(target.faces, base.faces):
            raise ModelFileError(target_path, f"target {name!r} has different faces from the base mesh")
        names.append(name)
        lower.append(lo)
        upper.append(hi)
        prior_std.append(std)
        targets.append(target)
        defaults[name] = default
    bounded = [lo is not None for lo in lower]
    if any(bounded) and not all(bounded):
        raise ModelFileError(manifest_path, f"{group}: give min and max for every entry or for none")
    spec = ParamGroup(group, len(names), prior_std=tuple(prior_std), lower=tuple(lower) if all(bounded) else None,
                      upper=tuple(upper) if all(bounded) else None, component_names=tuple(names))
    return spec, targets, defaults
