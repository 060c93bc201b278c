"""Surrey Face Model (SFM), the public 3448-vertex shape model shipped in eos ``share/``, read with eos-py.

Files (one folder): ``sfm_shape_3448.bin`` (cereal MorphableModel: mean, orthonormal PCA basis,
eigenvalues, triangles, per-vertex UVs; millimetres), ``expression_blendshapes_3448.bin`` (6 blendshapes:
anger, disgust, fear, happiness, sadness, surprise), ``ibug_to_sfm.txt`` (TOML, iBUG point 1..68 -> vertex)
and ``sfm_model_contours.json`` (17 right and 17 left jaw-contour vertices, top to chin).

Parameters: ``identity`` (63) uses the basis ``orthonormal * sqrt(eigenvalues)``, so coefficients are
N(0, 1) and unbounded; ``expression`` (6 named blendshapes) is bounded to [0, 1] with prior std 0.5 (eos
fits blendshapes with non-negative least squares; 1 is the full captured expression).

Landmarks: the 50 iBUG points of ``ibug_to_sfm.txt`` are exact (confidence 1). The 18 others are
approximations with confidence 0.5: jaw points 1-8 and 10-17 (0-based 0-7, 9-16) are 8 right and 8 left
points spread evenly by arc length along the eos model contour (interpolated between neighbouring contour
vertices), from the height of the outer eye corner (where iBUG's jaw line starts) down to the chin; the
inner mouth corners 61 and 65 (0-based 60, 64) are 0.5 * outer mouth corner + 0.25 * each of the two
neighbouring inner-lip points. Face region: every vertex (the SFM is a face mask from forehead to chin and
ear to ear, no back of the head).

Licence: the model data are free for non-commercial use only (cvssp.org/facemodel); eos and its mapping
and contour files are Apache-2.0.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import numpy as np

from f2p.conventions import CHIN, JAW, LEFT_EYE_OUTER, M_PER_MM, NUM_LANDMARKS, RIGHT_EYE_OUTER
from f2p.morphable.base import LinearModelData, ModelFileError, ParamGroup

SHAPE_FILE = "sfm_shape_3448.bin"
BLENDSHAPES_FILE = "expression_blendshapes_3448.bin"
MAPPING_FILE = "ibug_to_sfm.txt"
CONTOURS_FILE = "sfm_model_contours.json"
FILES = (SHAPE_FILE, BLENDSHAPES_FILE, MAPPING_FILE, CONTOURS_FILE)
EXPRESSION_PRIOR_STD = 0.5
APPROXIMATE_CONFIDENCE = 0.5
INNER_MOUTH_CORNERS = {60: (48, 61, 67), 64: (54, 63, 65)}
"""0-based inner mouth corner -> (outer corner, two neighbouring inner-lip points), blended 0.5/0.25/0.25."""
JAW_POINTS_PER_SIDE = 8
METADATA = {
    "title": "Surrey Face Model, 3448 vertices (University of Surrey, CVSSP)",
    "url": "https://github.com/patrikhuber/eos (share/)",
    "license": "model data: free for non-commercial use only (see cvssp.org/facemodel); eos code and mapping "
               "files: Apache-2.0",
    "cite": "Huber et al., A Multiresolution 3D Morphable Face Model and Fitting Framework, VISAPP 2016",
    "units": "metres (converted from mm)",
}


def load_sfm(folder: str | os.PathLike) -> LinearModelData:
    """Load the Surrey Face Model from an eos ``share/``-style folder (see the module docstring)."""
    folder = Path(folder)
    mean, basis, triangles, uv = _read_shape_model(folder / SHAPE_FILE)
    V = mean.shape[0]
    names, expressions = _read_blendshapes(folder / BLENDSHAPES_FILE, V)
    mapping = _read_mapping(folder / MAPPING_FILE, V)
    right, left = _read_contours(folder / CONTOURS_FILE, V)
    lmk_vertices, lmk_weights, confidence = _landmark_embedding(mean, mapping, right, left, folder / MAPPING_FILE)
    K_id, K_exp = basis.shape[0], len(names)
    groups = (
        ParamGroup("identity", K_id, prior_std=(1.0,) * K_id),
        ParamGroup("expression", K_exp, prior_std=(EXPRESSION_PRIOR_STD,) * K_exp, lower=(0.0,) * K_exp,
                   upper=(1.0,) * K_exp, component_names=names),
    )
    data = LinearModelData(
        name="sfm", mean=(mean * M_PER_MM).astype(np.float32), faces=triangles, groups=groups,
        bases={"identity": (basis * M_PER_MM).astype(np.float32),
               "expression": (expressions * M_PER_MM).astype(np.float32)},
        landmark_vertices=lmk_vertices, landmark_weights=lmk_weights, landmark_confidence=confidence,
        face_region=np.ones(V, dtype=bool), uv=uv, faces_uv=triangles.copy(),
        metadata={**METADATA, "source": str(folder)},
    )
    data.validate(folder)
    return data


def _eos():
    try:
        import eos
    except ImportError:
        raise ModelFileError("eos", "reading the Surrey Face Model needs eos-py (pip install eos-py)") from None
    return eos


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ModelFileError(path, "file not found")


def _read_shape_model(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean (V, 3) mm, identity basis (K, V, 3) mm per unit N(0, 1) coefficient, triangles (F, 3), UVs (V, 2)."""
    _check_file(path)
    try:
        model = _eos().morphablemodel.load_model(str(path))
    except RuntimeError as error:
        raise ModelFileError(path, f"eos could not read it as a morphable model: {error}") from None
    shape = model.get_shape_model()
    mean = np.asarray(shape.get_mean(), dtype=np.float64)
    orthonormal = np.asarray(shape.get_orthonormal_pca_basis(), dtype=np.float64)  # (3V, K)
    eigenvalues = np.asarray(shape.get_eigenvalues(), dtype=np.float64)  # (K,)
    triangles = np.asarray(shape.get_triangle_list(), dtype=np.int64)
    uv = np.asarray(model.get_texture_coordinates(), dtype=np.float32)
    if mean.size == 0 or mean.size % 3 or orthonormal.shape != (mean.size, eigenvalues.size):
        raise ModelFileError(path, f"inconsistent shape model: mean {mean.shape}, basis {orthonormal.shape}, "
                                   f"eigenvalues {eigenvalues.shape}")
    if np.any(eigenvalues < 0):
        raise ModelFileError(path, "negative PCA eigenvalues")
    V, K = mean.size // 3, eigenvalues.size
    if uv.shape != (V, 2):
        raise ModelFileError(path, f"texture coordinates have shape {uv.shape}, expected ({V}, 2)")
    basis = (orthonormal * np.sqrt(eigenvalues)).T.reshape(K, V, 3)  # x, y, z interleaved per vertex
    return mean.reshape(V, 3), basis, triangles, uv


def _read_blendshapes(path: Path, num_vertices: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Blendshape names and (K, V, 3) deltas in mm."""
    _check_file(path)
    try:
        blendshapes = _eos().morphablemodel.load_blendshapes(str(path))
    except RuntimeError as error:
        raise ModelFileError(path, f"eos could not read it as blendshapes: {error}") from None
    deltas = [np.asarray(b.deformation, dtype=np.float64) for b in blendshapes]
    if not deltas or any(d.shape != (3 * num_vertices,) for d in deltas):
        raise ModelFileError(path, f"expected blendshapes of {3 * num_vertices} values, got "
                                   f"{[d.shape for d in deltas]}")
    return tuple(b.name for b in blendshapes), np.stack(deltas).reshape(len(deltas), num_vertices, 3)


def _read_mapping(path: Path, num_vertices: int) -> dict[int, int]:
    """{0-based iBUG point: vertex} from eos' TOML landmark mapping (1-based iBUG numbers in the file)."""
    _check_file(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))["landmark_mappings"]
        mapping = {int(point) - 1: int(vertex) for point, vertex in table.items()}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(path, f"not a valid eos landmark mapping ({error.__class__.__name__}: {error})") from None
    bad = {p + 1: v for p, v in mapping.items() if not (0 <= p < NUM_LANDMARKS and 0 <= v < num_vertices)}
    if bad:
        raise ModelFileError(path, f"iBUG points or vertices out of range: {bad}")
    return mapping


def _read_contours(path: Path, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Right and left jaw-contour vertex indices, each ordered from the top of the face to the chin."""
    _check_file(path)
    try:
        contour = json.loads(path.read_text(encoding="utf-8"))["model_contour"]
        right = np.asarray(contour["right_contour"], dtype=np.int64)
        left = np.asarray(contour["left_contour"], dtype=np.int64)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ModelFileError(path, f"not a valid eos model contour file ({error.__class__.__name__}: {error})") from None
    for side in (right, left):
        if side.ndim != 1 or len(side) < JAW_POINTS_PER_SIDE or side.min() < 0 or side.max() >= num_vertices:
            raise ModelFileError(path, f"a contour needs >= {JAW_POINTS_PER_SIDE} vertex indices in [0, {num_vertices})")
    return right, left


def _contour_points(mean: np.ndarray, contour: np.ndarray, top_height: float, chin: int) -> tuple[np.ndarray, np.ndarray]:
    """8 jaw points spread evenly by arc length along a contour, from the height ``top_height`` to the chin.

    Each point is interpolated on the polyline ``contour + [chin]`` between two consecutive vertices.

    Args:
        mean: (V, 3) mean shape.
        contour: (C,) contour vertices ordered from the top of the face to the chin.
        top_height: y where the jaw line starts (the outer eye corner).
        chin: vertex of iBUG point 9 (0-based 8), the end of the polyline.

    Returns:
        (8, 2) vertex pairs and (8, 2) interpolation weights, from the top down.
    """
    path = np.append(contour, chin)  # (C + 1,)
    points = mean[path]  # (C + 1, 3)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])  # (C + 1,)
    i = int(np.argmax(points[:, 1] <= top_height))  # first polyline vertex at or below the start height
    start = 0.0 if i == 0 else np.interp(top_height, points[[i, i - 1], 1], arc[[i, i - 1]])
    targets = start + (arc[-1] - start) * np.arange(JAW_POINTS_PER_SIDE) / JAW_POINTS_PER_SIDE  # (8,)
    segment = np.searchsorted(arc, targets, side="right") - 1  # arc[segment] <= target < arc[segment + 1]
    w = (targets - arc[segment]) / (arc[segment + 1] - arc[segment])
    return np.stack([path[segment], path[segment + 1]], axis=1), np.stack([1.0 - w, w], axis=1)


def _landmark_embedding(mean: np.ndarray, mapping: dict[int, int], right: np.ndarray, left: np.ndarray,
                        source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(68, 3) vertices, (68, 3) weights and (68,) confidences of the iBUG-68 landmarks (module docstring)."""
    approximated = {p for p in JAW if p != CHIN} | set(INNER_MOUTH_CORNERS)
    exact = set(range(NUM_LANDMARKS)) - approximated  # includes the chin, eye and mouth corners used below
    missing = sorted(p + 1 for p in exact - set(mapping))
    if missing:
        raise ModelFileError(source, f"iBUG points {missing} (1-based) are not mapped to vertices")
    vertices = np.zeros((NUM_LANDMARKS, 3), dtype=np.int64)
    weights = np.zeros((NUM_LANDMARKS, 3), dtype=np.float32)
    confidence = np.ones(NUM_LANDMARKS, dtype=np.float32)
    for point in exact:
        vertices[point], weights[point] = mapping[point], (1.0, 0.0, 0.0)
    chin = mapping[CHIN]
    if mean[chin, 1] >= min(mean[mapping[RIGHT_EYE_OUTER], 1], mean[mapping[LEFT_EYE_OUTER], 1]):
        raise ModelFileError(source, "the chin vertex is not below the outer eye corners")
    right_pairs, right_weights = _contour_points(mean, right, mean[mapping[RIGHT_EYE_OUTER], 1], chin)
    left_pairs, left_weights = _contour_points(mean, left, mean[mapping[LEFT_EYE_OUTER], 1], chin)
    for k in range(JAW_POINTS_PER_SIDE):  # right: points 0..7 from the top; left: points 16..9 from the top
        vertices[JAW[k]], weights[JAW[k], :2] = right_pairs[k][[0, 1, 1]], right_weights[k]
        vertices[JAW[-1 - k]], weights[JAW[-1 - k], :2] = left_pairs[k][[0, 1, 1]], left_weights[k]
    for point, neighbours in INNER_MOUTH_CORNERS.items():
        vertices[point], weights[point] = [mapping[n] for n in neighbours], (0.5, 0.25, 0.25)
    confidence[sorted(approximated)] = APPROXIMATE_CONFIDENCE
    return vertices, weights, confidence
