"""The 468 dense landmarks of a face model's meshes, straight from its parameters.

``dense_landmarks(model, **params)`` evaluates the model's ``DenseCorrespondence`` surface points. For linear
models (ICT, SFM, BFM, rigs, the procedural model) the bases are restricted once to the three corners of each
point's triangle and blended with the barycentric weights, so no full mesh is built (what ``landmarks`` does for
the 68 points); other models (FLAME's skinning) build the mesh and pick the points. ``landmark_points`` gives the 68
and the 468 points together, in one blend of bases restricted to both (``point_bases``): what the landmark-only
scenes, the solver and the landmark network's refinement project.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from f2p.morphable.base import LinearMorphableModel, MorphableModel
from f2p.morphable.correspondence import dense_correspondence

_bases: weakref.WeakKeyDictionary[MorphableModel, tuple[Tensor, dict[str, Tensor]]] = weakref.WeakKeyDictionary()
_point_bases: weakref.WeakKeyDictionary[MorphableModel, tuple[Tensor, dict[str, Tensor]]] = weakref.WeakKeyDictionary()


def restricted_bases(model: LinearMorphableModel) -> tuple[Tensor, dict[str, Tensor]]:
    """(468, 3) mean dense points and {group: (K, 468, 3)} their offsets per unit coefficient of each shape group
    of a linear model, on its device (computed once per model)."""
    cached = _bases.get(model)
    if cached is not None and cached[0].device == model.device:
        return cached
    dense, faces = dense_correspondence(model), model.faces
    with torch.no_grad():
        mean = dense.points(model.mean[None], faces)[0]
        bases = {g: dense.points(model.basis(g), faces) for g in model.shape_group_names}
    _bases[model] = (mean, bases)
    return mean, bases


def dense_landmarks(model: MorphableModel, **params: Tensor) -> Tensor:
    """(B, 468, 3) dense landmarks in model space (metres) of the meshes of ``params`` ({group: (B, K)})."""
    if not isinstance(model, LinearMorphableModel):
        return dense_correspondence(model).points(model(**params).verts, model.faces)
    B = model.check_params(params)
    mean, bases = restricted_bases(model)
    points = mean.expand(B, -1, -1)
    for group, basis in bases.items():
        if group in params:
            K = basis.shape[0]
            points = points + (params[group] @ basis.reshape(K, -1)).reshape(B, -1, 3)
    return points


def point_bases(model: LinearMorphableModel) -> tuple[Tensor, dict[str, Tensor]]:
    """(68 + 468, 3) mean points and {group: (K, 68 + 468, 3)} their offsets per unit coefficient of each shape
    group of a linear model: its 68 landmarks, then its 468 dense points (``restricted_bases``), on its device
    (computed once per model)."""
    cached = _point_bases.get(model)
    if cached is not None and cached[0].device == model.device:
        return cached
    mean, bases = restricted_bases(model)
    mean = torch.cat([model.landmark_mean, mean], dim=0)
    bases = {g: torch.cat([getattr(model, f"landmark_basis_{g}"), basis], dim=1) for g, basis in bases.items()}
    _point_bases[model] = (mean, bases)
    return mean, bases


def landmark_points(model: MorphableModel, dense: bool, **params: Tensor) -> Tensor:
    """(B, 68, 3), or with ``dense`` (B, 68 + 468, 3), model-space points (metres) of the meshes of ``params``
    ({group: (B, K)}): the 68 landmarks, then the 468 dense ones."""
    if not dense:
        return model.landmarks(**params)
    if not isinstance(model, LinearMorphableModel):
        return torch.cat([model.landmarks(**params), dense_landmarks(model, **params)], dim=1)
    B = model.check_params(params)
    mean, bases = point_bases(model)
    return model._blend(B, mean, [(params.get(g), bases[g]) for g in model.shape_group_names])
