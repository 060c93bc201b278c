"""Reading and writing Wavefront OBJ meshes (positions, optional vertex colours, UVs, polygons)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from f2p.morphable.base import ModelFileError


@dataclass(frozen=True)
class ObjMesh:
    """An OBJ file's content.

    Attributes:
        verts: (V, 3) float64 positions in the file's units.
        faces: (F, 3) int64 0-based triangles (polygons fan-triangulated: (0,1,2), (0,2,3), ...).
        uv: (T, 2) float64 texture coordinates, or None.
        faces_uv: (F, 3) int64 0-based indices into ``uv``, or None.
        colors: (V, 3) float64 vertex colours from ``v x y z r g b`` lines, or None.
    """

    verts: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    faces_uv: np.ndarray | None = None
    colors: np.ndarray | None = None


def _index(token: str, count: int, path: Path, line_no: int) -> int:
    """1-based (or negative, relative) OBJ index -> 0-based index."""
    value = int(token)
    index = value - 1 if value > 0 else count + value
    if not 0 <= index < count:
        raise ModelFileError(path, f"line {line_no}: index {value} out of range (have {count})")
    return index


def read_obj(path: str | os.PathLike) -> ObjMesh:
    """Read an OBJ file; raise ``ModelFileError`` naming the file and line on malformed content."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "file not found")
    verts, colors, uvs, faces, faces_uv = [], [], [], [], []
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, OSError) as error:
        raise ModelFileError(path, f"not a readable text OBJ file ({error.__class__.__name__})") from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if parts[0] == "v":
                values = [float(p) for p in parts[1:]]
                if len(values) not in (3, 4, 6, 7):
                    raise ValueError(f"vertex with {len(values)} numbers")
                verts.append(values[:3])
                if len(values) >= 6:
                    colors.append(values[-3:])
            elif parts[0] == "vt":
                uvs.append([float(p) for p in parts[1:3]])
            elif parts[0] == "f":
                corners = [c.split("/") for c in parts[1:]]
                if len(corners) < 3:
                    raise ValueError("face with fewer than 3 corners")
                vi = [_index(c[0], len(verts), path, line_no) for c in corners]
                ti = [_index(c[1], len(uvs), path, line_no) if len(c) > 1 and c[1] else -1 for c in corners]
                for k in range(1, len(vi) - 1):
                    faces.append((vi[0], vi[k], vi[k + 1]))
                    faces_uv.append((ti[0], ti[k], ti[k + 1]))
        except ValueError as error:
            raise ModelFileError(path, f"line {line_no}: {error}") from None
    if not verts:
        raise ModelFileError(path, "no vertices ('v' lines) found; is this an OBJ file?")
    verts_arr = np.asarray(verts, dtype=np.float64)
    if not np.all(np.isfinite(verts_arr)):
        raise ModelFileError(path, "vertex positions contain NaN or infinite values")
    faces_arr = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    faces_uv_arr = np.asarray(faces_uv, dtype=np.int64).reshape(-1, 3)
    has_uv = len(uvs) > 0 and len(faces_uv_arr) > 0 and bool((faces_uv_arr >= 0).all())
    if colors and len(colors) != len(verts):
        raise ModelFileError(path, "only some vertices have colours")
    return ObjMesh(
        verts=verts_arr,
        faces=faces_arr,
        uv=np.asarray(uvs, dtype=np.float64) if has_uv else None,
        faces_uv=faces_uv_arr if has_uv else None,
        colors=np.asarray(colors, dtype=np.float64) if colors else None,
    )


VERTEX_FORMAT = "v %.6f %.6f %.6f\n"
COLORED_VERTEX_FORMAT = "v %.6f %.6f %.6f %.4f %.4f %.4f\n"
FACE_FORMAT = "f %d %d %d\n"
"""printf formats of one OBJ line: positions to the micrometre (metres), colours to 1e-4, 1-based indices."""


def _format_rows(line_format: str, rows: np.ndarray) -> str:
    """(N, C) numbers -> N lines of ``line_format`` (C fields each), formatted by one ``%`` over all of them."""
    return (line_format * len(rows)) % tuple(rows.reshape(-1).tolist())


@functools.lru_cache(maxsize=4)
def _face_lines(faces: bytes) -> str:
    """The face lines of (F, 3) 0-based int64 faces given as bytes: the same for every mesh of a model, so formatted
    once per model (ICT: about 8 ms a mesh)."""
    return _format_rows(FACE_FORMAT, np.frombuffer(faces, dtype=np.int64).reshape(-1, 3) + 1)


def format_obj(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None, header: str = "") -> str:
    """Format (V, 3) vertices, (F, 3) 0-based faces and optional (V, 3) colours in [0, 1] as OBJ text."""
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    if colors is None:
        vertex_lines = _format_rows(VERTEX_FORMAT, np.asarray(verts))
    else:
        vertex_lines = _format_rows(COLORED_VERTEX_FORMAT, np.concatenate([verts, colors], axis=1))
    return comments + vertex_lines + _face_lines(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
