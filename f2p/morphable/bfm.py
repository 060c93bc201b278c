"""Basel Face Model (BFM) ``.mat`` files as a linear model.

Two layouts are recognised by their fields (user-provided files; the BFM licence forbids redistribution):

BFM 2009 ``01_MorphableModel.mat`` (https://faces.dmi.unibas.ch/bfm/, registration), V = 53490:

    shapeMU (3V, 1), shapePC (3V, 199), shapeEV (199, 1)   mean, orthonormal components, standard deviations
    texMU (3V, 1), texPC (3V, 199), texEV (199, 1)         the same for colour, in 0..255
    tl (F, 3)                                              triangles, 1-based

  Coordinates are micrometres (Deep3DFaceRecon divides them by 1e5 to get decimetres). No expression
  space and no iBUG-68 landmarks: pass ``landmarks`` (see below), else every landmark gets confidence 0
  (with a warning) and only photometric fitting is meaningful. An honest zero beats a guessed
  correspondence; eos' ``share/ibug_to_bfm.txt`` lists 19 iBUG points on this topology.

Deep3DFaceRecon ``BFM_model_front.mat`` (built by its ``util/load_mats.py`` from the file above plus
Exp_Pca.bin), V = 35709:

    meanshape (1, 3V), idBase (3V, 80), exBase (3V, 64)    decimetres (micrometres / 1e5); the bases
                                                           are already multiplied by the standard
                                                           deviations, so coefficients are N(0, 1)
    meantex (1, 3V), texBase (3V, 80)                      0..255, bases times standard deviations
    tri (F, 3)                                             1-based
    keypoints (1, 68)                                      1-based vertex of each iBUG-68 landmark

  The mean is not centred (Deep3DFaceRecon centres it when it loads); f2p keeps the file's origin.

Conversions: metres, albedo in [0, 1], 0-based indices, components scaled to N(0, 1) coefficients
(groups ``identity``, ``expression`` for the front model, ``albedo``; priors std 1, unbounded). The BFM
frame is already f2p's (x towards the subject's left, y up, z towards the viewer). Triangles are
wound so that normals point out of the face (BFM 2009 winds them the other way, as eos notes): the
winding is flipped when the summed normal of the mesh points away from the viewer (-z).

``landmarks``: a file of 68 0-based vertex indices (``.npy`` or text, -1 = none), read by
``landmark_index.read_landmark_indices``; it overrides ``keypoints``. ``face_region``: every vertex
(both layouts are already cropped to the face). Whenever landmarks are known, ``landmark_index.check_frame``
verifies the frame and the units.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from f2p import conventions as C
from f2p.morphable.base import LinearModelData, ModelFileError, ParamGroup
from f2p.morphable.landmark_index import NO_LANDMARK, check_frame, read_landmark_indices, vertex_landmarks
from f2p.morphable.npz import require

COLOUR_MAX = 255.0
MATLAB_FIRST_INDEX = 1
BFM2009_KEYS = ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV", "tl")
FRONT_KEYS = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints")
LICENSE = "Basel Face Model licence (faces.dmi.unibas.ch): registration required, no redistribution"


def load_bfm(path: str | os.PathLike, landmarks: str | os.PathLike | None = None) -> LinearModelData:
    """Load a BFM 2009 or Deep3DFaceRecon front ``.mat`` (see the module docstring) as ``LinearModelData``.

    Args:
        path: the ``.mat`` file (MATLAB v5/v7; v7.3 needs h5py).
        landmarks: optional file of 68 0-based vertex indices (overrides the file's own keypoints).
    """
    path = Path(path)
    arrays = read_mat(path)
    override = None if landmarks is None else (read_landmark_indices(landmarks), str(landmarks))
    if "shapeMU" in arrays:
        data = _bfm2009(arrays, path, override)
    elif "meanshape" in arrays:
        data = _bfm_front(arrays, path, override)
    else:
        raise ModelFileError(path, f"not a known BFM layout: expected the fields of 01_MorphableModel.mat "
                                   f"({', '.join(BFM2009_KEYS)}) or of BFM_model_front.mat ({', '.join(FRONT_KEYS)}); "
                                   f"found {', '.join(sorted(arrays))}")
    data.validate(path)
    check_frame(data.mean, data.landmark_vertices, data.landmark_weights, data.landmark_confidence, path)
    return data


def read_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The variables of a MATLAB ``.mat`` file (v5/v7 with scipy, v7.3 with h5py when installed)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "file not found")
    try:
        content = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3, which is HDF5
        return _read_mat_hdf5(path)
    except (ValueError, TypeError, OSError, scipy.io.matlab.MatReadError) as error:
        raise ModelFileError(path, f"not a readable MATLAB .mat file ({error})") from None
    return {key: value for key, value in content.items() if not key.startswith("__")}


def _read_mat_hdf5(path: Path) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError:
        raise ModelFileError(path, "is a MATLAB v7.3 (HDF5) file: reading it needs h5py (pip install h5py), or "
                                   "re-save it in MATLAB with save(name, '-v7')") from None
    with h5py.File(path, "r") as file:  # MATLAB writes column-major: transpose back to MATLAB's shapes
        return {key: np.asarray(value).T for key, value in file.items() if isinstance(value, h5py.Dataset)}


_Landmarks = tuple[np.ndarray, str]
"""(68,) 0-based vertex indices (-1 = none) and where they come from."""


def _bfm2009(arrays: dict[str, np.ndarray], path: Path, landmarks: _Landmarks | None) -> LinearModelData:
    mean = require(arrays, path, "shapeMU", (None, 1), "f")
    n3 = _coordinate_count(mean, "shapeMU", path)
    identity = _scaled_basis(arrays, path, "shapePC", "shapeEV", n3) * C.M_PER_UM
    albedo = _scaled_basis(arrays, path, "texPC", "texEV", n3) / COLOUR_MAX
    albedo_mean = require(arrays, path, "texMU", (n3, 1), "f").reshape(-1, 3) / COLOUR_MAX
    faces = require(arrays, path, "tl", (None, 3), "iuf").astype(np.int64) - MATLAB_FIRST_INDEX
    landmarks = landmarks or (np.full(C.NUM_LANDMARKS, NO_LANDMARK), str(path))
    return _linear_data("bfm2009", path, "BFM 2009 (01_MorphableModel.mat)", mean.reshape(-1, 3) * C.M_PER_UM,
                        faces, {"identity": identity}, albedo_mean, albedo, landmarks)


def _bfm_front(arrays: dict[str, np.ndarray], path: Path, landmarks: _Landmarks | None) -> LinearModelData:
    mean = require(arrays, path, "meanshape", (1, None), "f").reshape(-1, 1)
    n3 = _coordinate_count(mean, "meanshape", path)
    bases = {"identity": _basis(require(arrays, path, "idBase", (n3, None), "f")) * C.M_PER_DM,
             "expression": _basis(require(arrays, path, "exBase", (n3, None), "f")) * C.M_PER_DM}
    albedo = _basis(require(arrays, path, "texBase", (n3, None), "f")) / COLOUR_MAX
    albedo_mean = require(arrays, path, "meantex", (1, n3), "f").reshape(-1, 3) / COLOUR_MAX
    faces = require(arrays, path, "tri", (None, 3), "iuf").astype(np.int64) - MATLAB_FIRST_INDEX
    if landmarks is None:
        keypoints = require(arrays, path, "keypoints", (None, None), "iuf").reshape(-1).astype(np.int64)
        landmarks = (keypoints - MATLAB_FIRST_INDEX, f"{path} (keypoints)")
    return _linear_data("bfm_front", path, "Deep3DFaceRecon BFM_model_front.mat", mean.reshape(-1, 3) * C.M_PER_DM,
                        faces, bases, albedo_mean, albedo, landmarks)


def _coordinate_count(mean: np.ndarray, key: str, path: Path) -> int:
    """3V, the length of a flattened (x, y, z, x, y, z, ...) mean; checked to be a positive multiple of 3."""
    n3 = mean.shape[0]
    if n3 == 0 or n3 % 3:
        raise ModelFileError(path, f"{key} has {n3} values, expected 3 per vertex")
    return n3


def _basis(columns: np.ndarray) -> np.ndarray:
    """(3V, K) components, one flattened (x, y, z, ...) column each -> (K, V, 3) float32."""
    return np.ascontiguousarray(columns.T.reshape(columns.shape[1], -1, 3), dtype=np.float32)


def _scaled_basis(arrays: dict[str, np.ndarray], path: Path, pc_key: str, ev_key: str, n3: int) -> np.ndarray:
    """(K, V, 3) components times their standard deviations, so that coefficients are N(0, 1)."""
    components = require(arrays, path, pc_key, (n3, None), "f")
    std = require(arrays, path, ev_key, (None, None), "f").reshape(-1)
    if std.shape != (components.shape[1],):
        raise ModelFileError(path, f"{ev_key} has {std.size} values for the {components.shape[1]} columns of {pc_key}")
    return _basis(components * std[None, :])


def _orient_outward(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) faces wound counter-clockwise seen from the viewer (+z): flipped when the mesh's summed normal has z < 0."""
    v0, v1, v2 = (verts[faces[:, k]] for k in range(3))
    facing = np.cross(v1 - v0, v2 - v0)[:, 2].sum()
    return faces if facing >= 0 else faces[:, [0, 2, 1]]


def _linear_data(name: str, path: Path, layout: str, mean: np.ndarray, faces: np.ndarray, bases: dict[str, np.ndarray],
                 albedo_mean: np.ndarray, albedo: np.ndarray, landmarks: _Landmarks) -> LinearModelData:
    V = len(mean)
    if faces.min() < 0 or faces.max() >= V:  # checked here because orienting indexes the vertices
        raise ModelFileError(path, f"triangle indices must lie in [1, {V}] (1-based), got [{faces.min() + 1}, "
                                   f"{faces.max() + 1}]")
    groups = tuple(ParamGroup(group, basis.shape[0], prior_std=(1.0,) * basis.shape[0]) for group, basis in bases.items())
    groups += (ParamGroup("albedo", albedo.shape[0], prior_std=(1.0,) * albedo.shape[0]),)
    indices, landmark_source = landmarks
    lmk_vertices, lmk_weights, confidence = vertex_landmarks(indices, V, landmark_source)
    return LinearModelData(
        name=name, mean=mean.astype(np.float32), faces=_orient_outward(mean, faces), groups=groups,
        bases={group: basis.astype(np.float32) for group, basis in bases.items()},
        landmark_vertices=lmk_vertices, landmark_weights=lmk_weights, landmark_confidence=confidence,
        face_region=np.ones(V, dtype=bool), albedo_mean=albedo_mean.astype(np.float32), albedo_basis=albedo,
        metadata={"source": str(path), "format": layout, "landmarks": landmark_source, "license": LICENSE})
