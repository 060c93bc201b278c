"""FLAME (MPI-IS): linear identity and expression spaces plus linear blend skinning of the neck, jaw
and eyes with pose-corrective blendshapes, as in smplx's ``lbs``.

Model file (user-provided, from https://flame.is.tue.mpg.de: FLAME 2020 ``generic_model.pkl``, FLAME
2023 ``flame2023.pkl``): a Python 2 pickle read with ``safe_pickle`` (no code runs, chumpy not needed)
holding, with V = 5023 vertices and J = 5 joints,

    v_template      (V, 3)        mean head, metres, y up, z towards the viewer (already f2p's frame)
    f               (F, 3)        triangles, 0-based
    shapedirs       (V, 3, 400)   300 identity ("shape") then 100 expression components, N(0, 1) each
    posedirs        (V, 3, 36)    pose correctives per entry of (R - I) of the 4 non-root joints
    J_regressor     (J, V)        joints from vertices (scipy sparse)
    kintree_table   (2, J)        row 0: parent of each joint (root: any value)
    weights         (V, J)        skinning weights

Joints: 0 root (global), 1 neck, 2 jaw, 3 left eye, 4 right eye (the subject's left/right as FLAME
and smplx name them). The root rotation is not a parameter: head pose lives in the camera.

Parameter groups (all axis-angle in radians, about model axes at the joint):

    identity    K_id of 300 shape components (default 100), prior N(0, 1)
    expression  K_exp of 100 components (default 50), prior N(0, 1)
    jaw_pose    3, bounded to JAW_POSE_LOWER..JAW_POSE_UPPER: opening (+x) -0.05..0.6 rad (about
                -3..34 degrees; a wide-open human mouth is 30-35 degrees), sideways (y) and twist (z)
                +-0.15 and +-0.1 rad; prior std JAW_POSE_PRIOR_STD
    neck_pose   3, unbounded, prior std NECK_POSE_PRIOR_STD
    eye_pose    6 (left eye xyz, right eye xyz), unbounded, prior std EYE_POSE_PRIOR_STD

Landmarks (iBUG 68): an embedding file given as ``landmark_embedding`` or found next to the model:

* ``landmark_embedding.npy`` (DECA/EMOCA/MICA): ``static_lmk_faces_idx`` (51,), ``static_lmk_bary_coords``
  (51, 3) for iBUG 17-67 and ``dynamic_lmk_faces_idx`` (79, 17), ``dynamic_lmk_bary_coords`` (79, 17, 3)
  for the jaw line 0-16 per head yaw; the frontal row (yaw 0, row 0) is used, confidence 1;
* ``flame_static_embedding.pkl`` (FLAME_PyTorch, TF_FLAME): ``lmk_face_idx`` (51,), ``lmk_b_coords``
  (51, 3), with the jaw line from ``flame_dynamic_embedding.npy`` beside it (same keys, (79, 17) and
  (79, 17, 3)) when present.

Without a contour embedding the 17 jaw points are a nearest-vertex estimate (an ellipse through eye
level and below the chin, scaled by the inner landmarks; the frontmost vertex at each point) with
confidence ``CONTOUR_FALLBACK_CONFIDENCE``. Without any embedding every landmark has confidence 0 (a
warning says so): the model then suits photometric fitting only.

``face_region``: the ``face`` region of ``FLAME_masks.pkl`` (given as ``masks`` or found next to the
model), else every vertex. There is no albedo: FLAME's texture space is a separate download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix
from torch import Tensor

from f2p import conventions as C
from f2p.morphable.base import MeshOutput, ModelFileError, MorphableModel, ParamGroup
from f2p.morphable.landmark_index import NO_LANDMARK, vertex_landmarks
from f2p.morphable.npz import require
from f2p.morphable.safe_pickle import safe_load_npy, safe_load_pickle

FLAME_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
FLAME_NUM_SHAPE = 300
"""Identity components at the front of ``shapedirs``; the rest are expression components."""
FLAME_NUM_JOINTS = 5
ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(FLAME_NUM_JOINTS)
JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
"""Name of each joint, in joint order (smplx's FLAME names)."""
POSE_FEATURES_PER_JOINT = 9
"""Entries of (R - I) per non-root joint that drive ``posedirs``."""

DEFAULT_NUM_IDENTITY = 100
DEFAULT_NUM_EXPRESSION = 50
JAW_POSE_LOWER = (-0.05, -0.15, -0.1)
JAW_POSE_UPPER = (0.6, 0.15, 0.1)
JAW_POSE_PRIOR_STD = (0.2, 0.05, 0.05)
NECK_POSE_PRIOR_STD = 0.2
EYE_POSE_PRIOR_STD = 0.25
AXES = ("x", "y", "z")

EMBEDDING_FILES = ("landmark_embedding.npy", "flame_static_embedding.pkl")
DYNAMIC_EMBEDDING_FILE = "flame_dynamic_embedding.npy"
MASKS_FILE = "FLAME_masks.pkl"
FACE_MASK_KEY = "face"
_STATIC_KEYS = (("static_lmk_faces_idx", "static_lmk_bary_coords"), ("lmk_face_idx", "lmk_b_coords"))
_DYNAMIC_KEYS = ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")
FRONTAL_CONTOUR_ROW = 0
"""Row of the dynamic (per-yaw) contour embedding for a frontal head (row k: yaw k degrees)."""

CONTOUR_FALLBACK_CONFIDENCE = 0.5
CONTOUR_HALF_WIDTH_PER_EYE_SPAN = 0.75
"""Half the jaw-line width at eye level (iBUG 0 to 16) per outer-eye-corner distance."""
CONTOUR_CHIN_DROP_PER_EYE_TO_LIP = 0.45
"""Chin (iBUG 8) below the lower lip (57), per eye-to-lower-lip height."""
CONTOUR_SNAP_TOLERANCE = 0.005
"""Vertices this close (metres, in x-y) to the nearest one compete for the frontmost."""
_LOWER_LIP_BOTTOM = 57
_JAW_LINE = np.asarray(C.JAW)
_INNER = np.asarray(C.INNER_51)


@dataclass
class FlameData:
    """Plain-numpy content of a FLAME model (V vertices, J joints, S shape + expression components).

    Attributes:
        template: (V, 3) float32 mean head, metres.
        faces: (F, 3) int64 triangles.
        shape_basis: (S, V, 3) float32, identity components first (``FLAME_NUM_SHAPE``), then expression.
        pose_basis: (9 * (J - 1), V, 3) float32 pose correctives.
        joint_regressor: (J, V) float32.
        parents: (J,) parent joint of each joint, -1 for the root; parents come before children.
        skinning_weights: (V, J) float32.
        landmark_vertices: (68, N) int64 and landmark_weights (68, N) float32, the landmark embedding.
        landmark_confidence: (68,) float32.
        face_region: (V,) bool.
        metadata: free-form strings (source, licence).
    """

    template: np.ndarray
    faces: np.ndarray
    shape_basis: np.ndarray
    pose_basis: np.ndarray
    joint_regressor: np.ndarray
    parents: tuple[int, ...]
    skinning_weights: np.ndarray
    landmark_vertices: np.ndarray
    landmark_weights: np.ndarray
    landmark_confidence: np.ndarray
    face_region: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)


class FlameModel(MorphableModel):
    """FLAME as a ``MorphableModel``: groups identity, expression, jaw_pose, neck_pose, eye_pose (see module doc)."""

    def __init__(self, data: FlameData, num_identity: int = DEFAULT_NUM_IDENTITY,
                 num_expression: int = DEFAULT_NUM_EXPRESSION) -> None:
        num_shape = data.shape_basis.shape[0]
        if not 0 < num_identity <= FLAME_NUM_SHAPE:
            raise ValueError(f"num_identity must lie in [1, {FLAME_NUM_SHAPE}], got {num_identity}")
        if not 0 < num_expression <= num_shape - FLAME_NUM_SHAPE:
            raise ValueError(f"num_expression must lie in [1, {num_shape - FLAME_NUM_SHAPE}], got {num_expression}")
        groups = (
            ParamGroup("identity", num_identity, prior_std=(1.0,) * num_identity),
            ParamGroup("expression", num_expression, prior_std=(1.0,) * num_expression),
            ParamGroup("jaw_pose", 3, prior_std=JAW_POSE_PRIOR_STD, lower=JAW_POSE_LOWER, upper=JAW_POSE_UPPER,
                       component_names=tuple(f"jaw_{a}" for a in AXES)),
            ParamGroup("neck_pose", 3, prior_std=(NECK_POSE_PRIOR_STD,) * 3,
                       component_names=tuple(f"neck_{a}" for a in AXES)),
            ParamGroup("eye_pose", 6, prior_std=(EYE_POSE_PRIOR_STD,) * 6,
                       component_names=tuple(f"{eye}_eye_{a}" for eye in ("left", "right") for a in AXES)),
        )
        super().__init__("flame", groups)
        self.metadata = dict(data.metadata)
        self.parents = tuple(data.parents)

        buffer = self.register_array
        buffer("template", data.template, torch.float32)
        buffer("faces", data.faces, torch.long)
        buffer("identity_basis", data.shape_basis[:num_identity], torch.float32)
        buffer("expression_basis", data.shape_basis[FLAME_NUM_SHAPE:FLAME_NUM_SHAPE + num_expression], torch.float32)
        buffer("pose_basis", data.pose_basis, torch.float32)
        buffer("joint_regressor", data.joint_regressor, torch.float32)
        buffer("skinning_weights", data.skinning_weights, torch.float32)
        buffer("landmark_vertices", data.landmark_vertices, torch.long)
        buffer("landmark_weights", data.landmark_weights, torch.float32)
        buffer("landmark_confidence", data.landmark_confidence, torch.float32)
        buffer("face_region", data.face_region, torch.bool)

    def joint_axis_angles(self, **params: Tensor) -> Tensor:
        """(B, J, 3) axis-angle rotation of each joint (``JOINT_NAMES`` order) from {group: (B, K)} params; the
        root's is zero (not a parameter), a missing group is zero."""
        B = self.check_params(params)
        p = {name: params[name] if name in params else self.template.new_zeros(B, self.groups[name].size)
             for name in ("neck_pose", "jaw_pose", "eye_pose")}
        pose = torch.cat([torch.zeros_like(p["neck_pose"]), p["neck_pose"], p["jaw_pose"], p["eye_pose"]], dim=1)
        return pose.reshape(B, len(self.parents), 3)

    def forward(self, *, pose_correctives: bool = True, **params: Tensor) -> MeshOutput:
        """Build meshes from named parameters; missing groups are zero.

        Args:
            pose_correctives: add the pose-corrective blendshapes (False: plain linear blend skinning, what a
                glTF skin reproduces, ``f2p.export.gltf_skin``).
            **params: {group name: (B, K)} coefficients / axis-angles.

        Returns:
            MeshOutput with verts (B, V, 3), landmarks (B, 68, 3) and albedo None.
        """
        B = self.check_params(params)
        V, J = self.num_vertices, len(self.parents)
        p = {name: params[name] if name in params else self.template.new_zeros(B, g.size)
             for name, g in self.groups.items()}

        def blend(coeffs: Tensor, basis: Tensor) -> Tensor:  # (B, K) x (K, V, 3) -> (B, V, 3)
            return (coeffs @ basis.reshape(basis.shape[0], V * 3)).reshape(B, V, 3)

        v_shaped = self.template + blend(p["identity"], self.identity_basis) + blend(p["expression"], self.expression_basis)
        joints = torch.einsum("jv,bvc->bjc", self.joint_regressor, v_shaped)  # (B, J, 3) rest-pose joints

        pose = self.joint_axis_angles(**params)  # (B, J, 3): root (fixed), neck, jaw, left eye, right eye
        rot = axis_angle_to_rotation_matrix(pose.reshape(B * J, 3)).reshape(B, J, 3, 3)
        v_posed = v_shaped
        if pose_correctives:
            eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
            pose_feature = (rot[:, 1:] - eye).reshape(B, (J - 1) * POSE_FEATURES_PER_JOINT)
            v_posed = v_shaped + blend(pose_feature, self.pose_basis)

        # World rotation and position of each joint along the kinematic chain.
        world_rot, world_pos = [rot[:, ROOT]], [joints[:, ROOT]]
        for j in range(1, J):
            parent = self.parents[j]
            offset = (joints[:, j] - joints[:, parent])[..., None]  # (B, 3, 1)
            world_rot.append(world_rot[parent] @ rot[:, j])
            world_pos.append(world_pos[parent] + (world_rot[parent] @ offset)[..., 0])
        R = torch.stack(world_rot, dim=1)  # (B, J, 3, 3)
        t = torch.stack(world_pos, dim=1) - (R @ joints[..., None])[..., 0]  # (B, J, 3): x -> R x + t
        # Linear blend skinning: per-vertex weighted sum of the joint transforms.
        R_v = torch.einsum("vj,bjkl->bvkl", self.skinning_weights, R)  # (B, V, 3, 3)
        t_v = torch.einsum("vj,bjk->bvk", self.skinning_weights, t)  # (B, V, 3)
        verts = (R_v @ v_posed[..., None])[..., 0] + t_v
        landmarks = self.landmarks_from_verts(verts)
        return MeshOutput(verts=verts, landmarks=landmarks, albedo=None)


def load_flame(path: str | os.PathLike, landmark_embedding: str | os.PathLike | None = None,
               masks: str | os.PathLike | None = None, num_identity: int = DEFAULT_NUM_IDENTITY,
               num_expression: int = DEFAULT_NUM_EXPRESSION) -> FlameModel:
    """Load a FLAME ``.pkl`` with its landmark embedding and face mask (see the module docstring).

    Args:
        path: FLAME model pickle.
        landmark_embedding: embedding file; default: the first of ``EMBEDDING_FILES`` next to ``path``.
        masks: ``FLAME_masks.pkl``; default: ``MASKS_FILE`` next to ``path`` if present.
        num_identity: identity components kept (of 300).
        num_expression: expression components kept (of 100).
    """
    return FlameModel(read_flame(path, landmark_embedding, masks), num_identity, num_expression)


def read_flame(path: str | os.PathLike, landmark_embedding: str | os.PathLike | None = None,
               masks: str | os.PathLike | None = None) -> FlameData:
    """Parse a FLAME ``.pkl`` (and embedding and mask files) into ``FlameData``; arguments as ``load_flame``."""
    path = Path(path)
    raw = safe_load_pickle(path)
    if not isinstance(raw, dict):
        raise ModelFileError(path, f"expected a FLAME model dict, got a pickled {type(raw).__name__}")
    arrays = {key: value.toarray() if scipy.sparse.issparse(value) else np.asarray(value)
              for key, value in raw.items() if key in FLAME_KEYS and value is not None}
    template = require(arrays, path, "v_template", (None, 3), "f").astype(np.float32)
    V, J = template.shape[0], FLAME_NUM_JOINTS
    faces = require(arrays, path, "f", (None, 3), "iu").astype(np.int64)
    if faces.max() >= V:
        raise ModelFileError(path, f"face indices must lie in [0, {V}), got up to {faces.max()}")
    shapedirs = require(arrays, path, "shapedirs", (V, 3, None), "f")
    if shapedirs.shape[2] <= FLAME_NUM_SHAPE:
        raise ModelFileError(path, f"shapedirs has {shapedirs.shape[2]} components; FLAME has {FLAME_NUM_SHAPE} "
                                   "identity components followed by expression components")
    posedirs = require(arrays, path, "posedirs", (V, 3, POSE_FEATURES_PER_JOINT * (J - 1)), "f")
    regressor = require(arrays, path, "J_regressor", (J, V), "f")
    weights = require(arrays, path, "weights", (V, J), "f")
    parents = tuple(int(p) for p in require(arrays, path, "kintree_table", (2, J), "iuf")[0])
    parents = (-1, *parents[1:])
    if any(not 0 <= parents[j] < j for j in range(1, J)):
        raise ModelFileError(path, f"kintree_table parents {parents[1:]} must each precede their joint")
    for label, array in (("v_template", template), ("shapedirs", shapedirs), ("posedirs", posedirs)):
        if not np.all(np.isfinite(array)):
            raise ModelFileError(path, f"{label} contains NaN or infinite values")

    embedding = Path(landmark_embedding) if landmark_embedding is not None else _sibling(path, EMBEDDING_FILES)
    if embedding is None:
        lmk_vertices, lmk_weights, confidence = vertex_landmarks(np.full(C.NUM_LANDMARKS, NO_LANDMARK), V, path)
    else:
        lmk_vertices, lmk_weights, confidence = read_landmark_embedding(embedding, faces, template)
    masks_path = Path(masks) if masks is not None else _sibling(path, (MASKS_FILE,))
    face_region = np.ones(V, dtype=bool) if masks_path is None else read_face_region(masks_path, V)
    return FlameData(
        template=template, faces=faces, shape_basis=np.moveaxis(shapedirs, 2, 0).astype(np.float32),
        pose_basis=np.moveaxis(posedirs, 2, 0).astype(np.float32), joint_regressor=regressor.astype(np.float32),
        parents=parents, skinning_weights=weights.astype(np.float32), landmark_vertices=lmk_vertices,
        landmark_weights=lmk_weights.astype(np.float32), landmark_confidence=confidence, face_region=face_region,
        metadata={"source": str(path), "format": "FLAME", "landmark_embedding": str(embedding or "none"),
                  "license": "FLAME model licence, see https://flame.is.tue.mpg.de (files not redistributed by f2p)"})


def read_landmark_embedding(path: str | os.PathLike, faces: np.ndarray,
                            template: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a FLAME landmark embedding (see the module docstring) against (F, 3) faces and (V, 3) template.

    Returns:
        vertices: (68, 3) int64 and weights (68, 3) float32 (barycentric in a triangle).
        confidence: (68,) float32: 1, or ``CONTOUR_FALLBACK_CONFIDENCE`` for an estimated jaw line.
    """
    path = Path(path)
    content = _read_dict(path)
    static = next((keys for keys in _STATIC_KEYS if keys[0] in content), None)
    if static is None:
        raise ModelFileError(path, f"no static landmark embedding: expected keys {' or '.join(map(str, _STATIC_KEYS))}, "
                                   f"found {sorted(content)}")
    inner_faces, inner_bary = _embedding_arrays(content, static, (len(_INNER),), path, faces)
    vertices = np.zeros((C.NUM_LANDMARKS, 3), dtype=np.int64)
    weights = np.zeros((C.NUM_LANDMARKS, 3), dtype=np.float32)
    confidence = np.ones(C.NUM_LANDMARKS, dtype=np.float32)
    vertices[_INNER], weights[_INNER] = faces[inner_faces], inner_bary

    dynamic_path = path.parent / DYNAMIC_EMBEDDING_FILE
    if _DYNAMIC_KEYS[0] in content:
        contour, contour_keys, contour_source = content, _DYNAMIC_KEYS, path
    elif static == _STATIC_KEYS[1] and dynamic_path.is_file():
        contour, contour_keys, contour_source = _read_dict(dynamic_path), _STATIC_KEYS[1], dynamic_path
    else:
        contour = None
    if contour is not None:
        jaw_faces, jaw_bary = _embedding_arrays(contour, contour_keys, (None, len(_JAW_LINE)), contour_source, faces)
        vertices[_JAW_LINE] = faces[jaw_faces[FRONTAL_CONTOUR_ROW]]
        weights[_JAW_LINE] = jaw_bary[FRONTAL_CONTOUR_ROW]
    else:
        inner_points = (template[vertices[_INNER]] * weights[_INNER, :, None]).sum(axis=1)  # (51, 3)
        vertices[_JAW_LINE] = estimate_contour_vertices(template, inner_points)[:, None]
        weights[_JAW_LINE] = (1.0, 0.0, 0.0)
        confidence[_JAW_LINE] = CONTOUR_FALLBACK_CONFIDENCE
    return vertices, weights, confidence


def estimate_contour_vertices(template: np.ndarray, inner_points: np.ndarray) -> np.ndarray:
    """Nearest-vertex estimate of the jaw line (iBUG 0-16) from the (51, 3) inner landmarks (17-67).

    The points lie on a half ellipse centred between the outer eye corners at eye level, half as wide
    as ``CONTOUR_HALF_WIDTH_PER_EYE_SPAN`` eye spans and reaching ``CONTOUR_CHIN_DROP_PER_EYE_TO_LIP``
    below the lower lip; each takes the frontmost (largest z) vertex of the (V, 3) template near it in x-y.
    Returns (17,) int64 vertex indices.
    """
    def point(ibug: int) -> np.ndarray:
        return inner_points[ibug - _INNER[0]]

    right_eye, left_eye, lip = point(C.RIGHT_EYE_OUTER), point(C.LEFT_EYE_OUTER), point(_LOWER_LIP_BOTTOM)
    centre_x, eye_y = (right_eye[0] + left_eye[0]) / 2, (right_eye[1] + left_eye[1]) / 2
    half_width = CONTOUR_HALF_WIDTH_PER_EYE_SPAN * (left_eye[0] - right_eye[0])
    height = (eye_y - lip[1]) * (1 + CONTOUR_CHIN_DROP_PER_EYE_TO_LIP)
    angles = np.linspace(np.pi, 2 * np.pi, len(_JAW_LINE))  # from the subject's right ear over the chin
    targets = np.stack([centre_x + half_width * np.cos(angles), eye_y + height * np.sin(angles)], axis=1)  # (17, 2)
    distance = np.linalg.norm(template[None, :, :2] - targets[:, None], axis=-1)  # (17, V)
    near = distance <= distance.min(axis=1, keepdims=True) + CONTOUR_SNAP_TOLERANCE
    return np.where(near, template[None, :, 2], -np.inf).argmax(axis=1).astype(np.int64)


def read_face_region(path: str | os.PathLike, num_vertices: int) -> np.ndarray:
    """(V,) bool face region from the ``face`` vertex list of ``FLAME_masks.pkl``."""
    path = Path(path)
    content = _read_dict(path)
    if FACE_MASK_KEY not in content:
        raise ModelFileError(path, f"no {FACE_MASK_KEY!r} region (found {sorted(content)})")
    indices = np.asarray(content[FACE_MASK_KEY]).reshape(-1)
    if indices.dtype.kind not in "iu" or indices.size == 0 or indices.min() < 0 or indices.max() >= num_vertices:
        raise ModelFileError(path, f"the {FACE_MASK_KEY!r} region must list vertex indices in [0, {num_vertices})")
    region = np.zeros(num_vertices, dtype=bool)
    region[indices] = True
    return region


def _sibling(path: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that exists in the folder of ``path``."""
    return next((path.parent / name for name in names if (path.parent / name).is_file()), None)


def _read_dict(path: Path) -> dict:
    """A dict pickled in a ``.pkl`` or saved with ``np.save`` in a ``.npy``, read safely."""
    content = safe_load_npy(path) if path.suffix == ".npy" else safe_load_pickle(path)
    if isinstance(content, np.ndarray) and content.dtype == object and content.shape == ():
        content = content.item()
    if not isinstance(content, dict):
        raise ModelFileError(path, f"expected a dict of arrays, got {type(content).__name__}")
    return content


def _embedding_arrays(content: dict, keys: tuple[str, str], shape: tuple[int | None, ...], source: Path,
                      faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face indices of ``shape`` and barycentric coordinates of ``shape + (3,)`` under ``keys``, checked."""
    arrays = {key: np.asarray(content[key]) for key in keys if key in content}
    face_index = require(arrays, source, keys[0], shape, "iu").astype(np.int64)
    bary = require(arrays, source, keys[1], (*shape, 3), "f").astype(np.float32)
    if face_index.min() < 0 or face_index.max() >= len(faces):
        raise ModelFileError(source, f"{keys[0]} must index the model's {len(faces)} triangles")
    return face_index, bary
