"""ICT FaceKit Light (USC ICT Vision & Graphics Lab, MIT licence): the open default face model of f2p.

Two sources give the same model:

- the compact ``.npz`` (``ict_facekit_light_v1_skin14062.npz``): ``neutral`` (V, 3) cm, ``faces`` (F, 4)
  quads (-1 in the last column marks a triangle), ``face_uv_idx`` (F, 4), ``uv`` (T, 2),
  ``identity_deltas`` (K_id, V, 3) cm, ``expression_deltas`` (K_exp, V, 3) cm, ``expression_names``
  (K_exp,), ``landmarks68_vertex_idx`` (68,);
- the original ``FaceXModel`` folder of ICT-VGL/ICT-FaceKit: ``generic_neutral_mesh.obj``,
  ``identityNNN.obj``, one OBJ per expression named in ``vertex_indices.json["expressions"]`` (full meshes;
  deltas are taken against the neutral mesh) and the 68 landmark vertices in
  ``vertex_indices.json["idx_to_landmark_verts"]``.

The full ICT head has 26719 vertices (skin, mouth socket, eye sockets, teeth, gums, tongue, eyeballs,
eyelashes). f2p keeps the skin subset, vertices [0, 14062) (face, head and neck, mouth and eye sockets),
the same subset the compact npz holds: when an OBJ mesh has exactly 26719 vertices, the vertices from 14062
on and every face touching them are dropped. Meshes of any other size are taken whole.

Parameters: ``identity`` (100 components) with an N(0, 1) prior as in ICT's own sampling script, unbounded;
``expression`` (53 ARKit-style sliders such as ``jawOpen``, ``eyeBlink_L``) bounded to [0, 1] with prior
std 0.5, so that a fully activated slider costs as much as two standard deviations. Face region: the
"narrow face area" of ICT's README, vertices [0, 6706). Units: cm in the files, metres here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from f2p.conventions import M_PER_CM, NUM_LANDMARKS
from f2p.morphable.base import LinearModelData, ModelFileError, ParamGroup
from f2p.morphable.npz import read_npz, require
from f2p.morphable.obj_io import ObjMesh, read_obj

FULL_HEAD_VERTICES = 26719
SKIN_VERTICES = 14062
FACE_AREA_VERTICES = 6706
MOUTH_SOCKET, EYE_SOCKETS = "mouth socket", "eye sockets"
SOCKET_VERTICES = {MOUTH_SOCKET: (11248, 13294), EYE_SOCKETS: (13294, 14062)}
"""[start, end) vertex ranges of the skin subset's inner surfaces (ICT's README). Without ICT's teeth and eyeballs
they are seen through the open mouth and between the eyelids; the fit renders at most their rim (they lie outside
the face area), so it gives them no colour of its own: every render paints them in ``SOCKET_GREYS``."""
SOCKET_GREYS = {EYE_SOCKETS: 0.55, MOUTH_SOCKET: 0.2}
"""Grey albedo every render gives the inner surfaces (``scene.compose.scene_colors``), as a photo shows them:
the eye sockets a mid grey that reads as an eyeball, the mouth a dark cavity. Without it they took the skin colour
(or, after a fit, the meaningless colours it leaves there: red blobs, dark holes)."""
EXPRESSION_PRIOR_STD = 0.5
NEUTRAL_OBJ = "generic_neutral_mesh.obj"
INDICES_JSON = "vertex_indices.json"
IDENTITY_PATTERN = "identity[0-9][0-9][0-9].obj"
NUM_IDENTITIES = 100
EXPRESSION_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)
"""The 53 expressions of ICT FaceKit, in the order of ``vertex_indices.json["expressions"]``."""

COMPACT_KEYS = frozenset({"neutral", "faces", "face_uv_idx", "uv", "identity_deltas", "expression_deltas",
                          "expression_names", "landmarks68_vertex_idx"})
METADATA = {
    "title": "ICT FaceKit Light (USC Institute for Creative Technologies)",
    "url": "https://github.com/ICT-VGL/ICT-FaceKit",
    "license": "MIT, Copyright (c) 2020 USC Institute for Creative Technologies",
    "cite": "Li et al., Learning Formation of Physically-Based Face Attributes, CVPR 2020",
}


def quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """(F, 4) polygons (-1 in the last column marks a triangle) -> (T, 3) triangles.

    Each quad (a, b, c, d) becomes (a, b, c), (a, c, d), in face order: the same fan split as ``read_obj``.
    """
    tris = np.stack([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]], axis=1)  # (F, 2, 3)
    keep = np.stack([np.ones(len(quads), dtype=bool), quads[:, 3] >= 0], axis=1)  # (F, 2)
    return tris[keep].astype(np.int64)


def is_compact_npz(arrays: dict[str, np.ndarray]) -> bool:
    """True when the arrays of an ``.npz`` are the compact ICT FaceKit export."""
    return COMPACT_KEYS <= set(arrays)


def load_ict_npz(path: str | os.PathLike) -> LinearModelData:
    """Load the compact ICT FaceKit ``.npz`` (see the module docstring)."""
    return ict_data_from_arrays(read_npz(path), path)


def ict_data_from_arrays(arrays: dict[str, np.ndarray], source: object) -> LinearModelData:
    """Build the ICT model from the arrays of the compact ``.npz``."""
    neutral = require(arrays, source, "neutral", (None, 3))
    V = neutral.shape[0]
    faces = require(arrays, source, "faces", (None, 4))
    names = require(arrays, source, "expression_names", (None,), kinds="U")
    return _ict_data(
        neutral_cm=neutral,
        faces=quads_to_triangles(faces),
        identity_cm=require(arrays, source, "identity_deltas", (None, V, 3)),
        expression_cm=require(arrays, source, "expression_deltas", (len(names), V, 3)),
        expression_names=tuple(str(n) for n in names),
        landmarks=require(arrays, source, "landmarks68_vertex_idx", (NUM_LANDMARKS,), kinds="iu"),
        uv=require(arrays, source, "uv", (None, 2)),
        faces_uv=quads_to_triangles(require(arrays, source, "face_uv_idx", faces.shape)),
        source=source,
    )


def load_ict_obj_folder(folder: str | os.PathLike) -> LinearModelData:
    """Load ICT FaceKit from its original ``FaceXModel`` folder of OBJ files (see the module docstring)."""
    folder = Path(folder)
    names, landmarks = _read_vertex_indices(folder / INDICES_JSON)
    neutral = read_obj(folder / NEUTRAL_OBJ)
    identity_files = sorted(folder.glob(IDENTITY_PATTERN))
    if not identity_files:
        raise ModelFileError(folder, f"no identity meshes ({IDENTITY_PATTERN}) found")
    V = len(neutral.verts)
    keep = SKIN_VERTICES if V == FULL_HEAD_VERTICES else V

    def deltas(paths: list[Path]) -> np.ndarray:
        """(K, keep, 3) offsets of each mesh from the neutral mesh, in the files' units."""
        return np.stack([_same_topology(read_obj(p), V, p).verts[:keep] - neutral.verts[:keep] for p in paths])

    inside = (neutral.faces < keep).all(axis=1)
    return _ict_data(
        neutral_cm=neutral.verts[:keep],
        faces=neutral.faces[inside],
        identity_cm=deltas(identity_files),
        expression_cm=deltas([folder / f"{name}.obj" for name in names]),
        expression_names=names,
        landmarks=landmarks,
        uv=neutral.uv,
        faces_uv=None if neutral.faces_uv is None else neutral.faces_uv[inside],
        source=folder,
    )


def socket_vertices(model_name: str, num_vertices: int) -> dict[str, np.ndarray]:
    """{``MOUTH_SOCKET``, ``EYE_SOCKETS``: (V,) bool} (``SOCKET_VERTICES``) when ``model_name`` and ``num_vertices``
    are those of f2p's ICT skin mesh; {} for any other mesh."""
    if model_name != "ict" or num_vertices != SKIN_VERTICES:
        return {}
    index = np.arange(num_vertices)
    return {name: (index >= start) & (index < end) for name, (start, end) in SOCKET_VERTICES.items()}


def _metres(array_cm: np.ndarray) -> np.ndarray:
    return (np.asarray(array_cm, dtype=np.float64) * M_PER_CM).astype(np.float32)


def _same_topology(mesh: ObjMesh, num_vertices: int, path: Path) -> ObjMesh:
    if len(mesh.verts) != num_vertices:
        raise ModelFileError(path, f"has {len(mesh.verts)} vertices, {NEUTRAL_OBJ} has {num_vertices}")
    return mesh


def _read_vertex_indices(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Expression names and the (68,) landmark vertex indices from ICT's ``vertex_indices.json``."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(str(name) for name in content["expressions"])
        landmarks = np.asarray(content["idx_to_landmark_verts"], dtype=np.int64)
    except FileNotFoundError:
        raise ModelFileError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(path, f"not a valid ICT vertex_indices.json ({error.__class__.__name__}: {error})") from None
    if landmarks.shape != (NUM_LANDMARKS,):
        raise ModelFileError(path, f"idx_to_landmark_verts has {landmarks.size} entries, expected {NUM_LANDMARKS}")
    return names, landmarks


def _ict_data(neutral_cm: np.ndarray, faces: np.ndarray, identity_cm: np.ndarray, expression_cm: np.ndarray,
              expression_names: tuple[str, ...], landmarks: np.ndarray, uv: np.ndarray | None,
              faces_uv: np.ndarray | None, source: object) -> LinearModelData:
    """Assemble ``LinearModelData`` from ICT arrays in cm (V, 3), (K_id, V, 3), (K_exp, V, 3)."""
    V = neutral_cm.shape[0]
    K_id, K_exp = identity_cm.shape[0], expression_cm.shape[0]
    groups = (
        ParamGroup("identity", K_id, prior_std=(1.0,) * K_id),
        ParamGroup("expression", K_exp, prior_std=(EXPRESSION_PRIOR_STD,) * K_exp, lower=(0.0,) * K_exp,
                   upper=(1.0,) * K_exp, component_names=expression_names),
    )
    mesh = (f"skin subset [0, {SKIN_VERTICES}) of the {FULL_HEAD_VERTICES}-vertex ICT head" if V == SKIN_VERTICES
                else f"{V} vertices")
    data = LinearModelData(
        name="ict",
        mean=_metres(neutral_cm),
        faces=np.asarray(faces, dtype=np.int64),
        groups=groups,
        bases={"identity": _metres(identity_cm), "expression": _metres(expression_cm)},
        landmark_vertices=np.asarray(landmarks, dtype=np.int64).reshape(NUM_LANDMARKS, 1),
        landmark_weights=np.ones((NUM_LANDMARKS, 1), dtype=np.float32),
        landmark_confidence=np.ones(NUM_LANDMARKS, dtype=np.float32),
        face_region=np.arange(V) < FACE_AREA_VERTICES,
        uv=None if uv is None else np.asarray(uv, dtype=np.float32),
        faces_uv=None if faces_uv is None else np.asarray(faces_uv, dtype=np.int64),
        metadata={**METADATA, "source": str(source), "mesh": mesh, "units": "metres (converted from cm)"},
    )
    data.validate(source)
    return data
