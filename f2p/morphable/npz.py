"""f2p's own model format: one ``.npz`` holding every field of a ``LinearModelData``.

Layout (``np.load(path, allow_pickle=False)`` reads it; no pickled objects):

    f2p_header          0-d unicode array, JSON: {"format": "f2p-linear-model", "version": 1, "name": ...,
                        "groups": [{name, size, prior_std, lower, upper, component_names}, ...],
                        "metadata": {str: str}}
    mean                (V, 3) float32, metres
    faces               (F, 3) int64
    basis_<group>       (K, V, 3) float32 for every shape group (identity, expression, ...)
    landmark_vertices   (68, J) int64;  landmark_weights (68, J) float32;  landmark_confidence (68,) float32
    face_region         (V,) bool
    albedo_mean, albedo_basis, uv, faces_uv   optional, present when the model has them

Also the shared helpers that read any ``.npz`` safely (``read_npz``, ``require``), used by other loaders.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from f2p.atomic import atomic_writer
from f2p.morphable.base import LinearModelData, LinearMorphableModel, ModelFileError, ParamGroup

FORMAT = "f2p-linear-model"
VERSION = 1
HEADER_KEY = "f2p_header"
BASIS_PREFIX = "basis_"
_OPTIONAL_ARRAYS = ("albedo_mean", "albedo_basis", "uv", "faces_uv")
_KIND_NAMES = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "float", "U": "text"}


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file; raise ``ModelFileError`` on a missing, truncated or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "file not found")
    try:
        with path.open("rb") as handle:  # our handle, closed even when np.load fails half-way
            archive = np.load(handle, allow_pickle=False)
            if isinstance(archive, np.lib.npyio.NpzFile):
                with archive:
                    return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ModelFileError(path, f"not a readable .npz archive (truncated or corrupt?): {error}") from None
    raise ModelFileError(path, "is a single .npy array, not an .npz archive")


def require(arrays: dict[str, np.ndarray], source: object, key: str, shape: tuple[int | None, ...],
            kinds: str = "biuf") -> np.ndarray:
    """Return ``arrays[key]``, checking it exists, matches ``shape`` (None = any size) and has a dtype kind in ``kinds``."""
    if key not in arrays:
        raise ModelFileError(source, f"missing array {key!r} (found: {', '.join(sorted(arrays))})")
    array = arrays[key]
    if array.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, array.shape)):
        wanted = "(" + ", ".join("*" if n is None else str(n) for n in shape) + ")"
        raise ModelFileError(source, f"array {key!r} has shape {array.shape}, expected {wanted}")
    if array.dtype.kind not in kinds:
        wanted = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
        raise ModelFileError(source, f"array {key!r} has dtype {array.dtype}, expected {wanted} values")
    return array


def save_model(model: LinearMorphableModel | LinearModelData, path: str | os.PathLike) -> Path:
    """Save a linear model (or its data) to ``path`` (must end in ``.npz``) atomically; return the path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: an f2p model file must end in .npz")
    if isinstance(model, LinearMorphableModel):
        data = model.to_data()
    elif isinstance(model, LinearModelData):
        data = model
    else:
        raise TypeError(f"save_model needs a LinearMorphableModel or LinearModelData, got {type(model).__name__}; "
                        "only linear models have an f2p .npz format")
    data.validate(path)
    header = {"format": FORMAT, "version": VERSION, "name": data.name,
              "groups": [asdict(group) for group in data.groups], "metadata": dict(data.metadata)}
    arrays = {HEADER_KEY: np.array(json.dumps(header)), "mean": data.mean, "faces": data.faces,
              "landmark_vertices": data.landmark_vertices, "landmark_weights": data.landmark_weights,
              "landmark_confidence": data.landmark_confidence, "face_region": data.face_region}
    arrays.update({BASIS_PREFIX + name: basis for name, basis in data.bases.items()})
    arrays.update({key: getattr(data, key) for key in _OPTIONAL_ARRAYS if getattr(data, key) is not None})
    with atomic_writer(path) as handle:
        np.savez_compressed(handle, **arrays)
    return path


def is_f2p_npz(arrays: dict[str, np.ndarray]) -> bool:
    """True when the arrays of an ``.npz`` carry an f2p header."""
    return HEADER_KEY in arrays


def data_from_arrays(arrays: dict[str, np.ndarray], source: object) -> LinearModelData:
    """Rebuild ``LinearModelData`` from the arrays of an f2p ``.npz`` (see the module docstring)."""
    header = _parse_header(arrays, source)
    try:
        groups = tuple(ParamGroup(**{key: tuple(value) if isinstance(value, list) else value
                                     for key, value in spec.items()}) for spec in header["groups"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(source, f"bad parameter group in header: {error}") from None
    mean = require(arrays, source, "mean", (None, 3))
    V = mean.shape[0]
    J = require(arrays, source, "landmark_vertices", (68, None)).shape[1]
    data = LinearModelData(
        name=str(header["name"]),
        mean=mean,
        faces=require(arrays, source, "faces", (None, 3)),
        groups=groups,
        bases={g.name: require(arrays, source, BASIS_PREFIX + g.name, (g.size, V, 3))
               for g in groups if g.name != "albedo"},
        landmark_vertices=require(arrays, source, "landmark_vertices", (68, J)),
        landmark_weights=require(arrays, source, "landmark_weights", (68, J)),
        landmark_confidence=require(arrays, source, "landmark_confidence", (68,)),
        face_region=require(arrays, source, "face_region", (V,)),
        **{key: _optional(arrays, source, key) for key in _OPTIONAL_ARRAYS},
        metadata={str(k): str(v) for k, v in header["metadata"].items()},
    )
    data.validate(source)
    return data


def load_npz(path: str | os.PathLike) -> LinearModelData:
    """Load an f2p ``.npz`` model file (exact inverse of ``save_model``)."""
    arrays = read_npz(path)
    if not is_f2p_npz(arrays):
        raise ModelFileError(path, f"not an f2p model file: no {HEADER_KEY!r} array")
    return data_from_arrays(arrays, path)


def _optional(arrays: dict[str, np.ndarray], source: object, key: str) -> np.ndarray | None:
    """An optional array, numeric when present (its shape is checked by ``LinearModelData.validate``)."""
    return require(arrays, source, key, (None,) * arrays[key].ndim) if key in arrays else None


def _parse_header(arrays: dict[str, np.ndarray], source: object) -> dict:
    raw = require(arrays, source, HEADER_KEY, (), kinds="U")
    try:
        header = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise ModelFileError(source, f"{HEADER_KEY} is not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(source, f"{HEADER_KEY} does not describe an {FORMAT!r} file")
    if header.get("version") != VERSION:
        raise ModelFileError(source, f"unsupported f2p model version {header.get('version')!r} (this f2p reads {VERSION})")
    missing = {"name", "groups", "metadata"} - set(header)
    if missing:
        raise ModelFileError(source, f"{HEADER_KEY} lacks {sorted(missing)}")
    return header
