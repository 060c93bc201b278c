"""A face model's expression parameters as Apple ARKit's 52 blendshape weights (``ARFaceAnchor.BlendShapeLocation``).

ARKit's "Left" and "Right" are the subject's own sides (Apple: a person's closed right eye, on the image's left,
is reported as ``eyeBlinkRight``), as in ICT FaceKit (``eyeBlink_L`` moves vertices at model +x, the subject's left)
and in f2p's model space.

Two ways to build the map, both a linear ``ArkitMap``: ARKit weights = ``clip(matrix @ morph weights, 0, 1)``, the
morph weights being the model's expression values over their slider scales (``gltf.morph_weights``: the plain
values for [0, 1] sliders):

- By name, when every expression component of the model names an ARKit shape (ICT FaceKit; a game rig whose sliders
  carry ARKit names): ``X_L`` / ``X_R`` -> ``XLeft`` / ``XRight`` (``eyeBlink_L`` -> ``eyeBlinkLeft``), ARKit
  names are taken as they are, and the two halves of a shape ARKit does not split (ICT's ``browInnerUp_L/_R`` ->
  ``browInnerUp``, ``cheekPuff_L/_R`` -> ``cheekPuff``) are averaged: for two halves of equal size the mean is
  the weight of ARKit's symmetric shape that best reproduces both halves at their own weights (least squares),
  where the max would overstate a one-sided movement. ARKit shapes no component names (ICT has no
  ``tongueOut``) are 0.
- By least squares against ICT FaceKit (any other model with landmarks: SFM's 6 expressions, the procedural
  model, FLAME's or BFM's expression coefficients): on the iBUG-68 landmarks both models have (confidence > 0),
  the model's mean-face landmarks are aligned to ICT's by a similarity (Umeyama: scale and rotation, translation
  dropped for displacements); for each model component k its landmark displacement at morph weight 1 from the
  mean face, mapped by that scale and rotation, is approximated by ICT's ARKit shapes (each ARKit shape's
  landmark displacement from ICT's mean face, the two ICT halves of a merged shape together) with non-negative
  least squares (ARKit weights are never negative) and a small ridge penalty (``RIDGE_PER_MEDIAN_SHAPE_NORM``),
  rows weighted by the square root of the lower of the two models' landmark confidences. The relative residual
  of each component (``ArkitMap.residual``, the data term without the penalty) says how much of its landmark
  motion ICT's shapes cannot reproduce: for SFM 0.27 (surprise) to 0.51 (happiness, whose jaw-line points SFM
  moves by 10 mm), so SFM's ARKit curves are a rough translation. Only the groups of ``gltf.EXPRESSION_GROUPS``
  are mapped: FLAME's ``jaw_pose`` is not (a rotation, not a blendshape), so FLAME's ``jawOpen`` comes from its
  expression coefficients alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from f2p.export.gltf import ExpressionComponent, expression_components, morph_weights
from f2p.morphable.base import MorphableModel
from f2p.morphable.registry import load_model

ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight",
    "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
"""ARKit's 52 blendshape names in Apple's documented order (left eye, right eye, mouth and jaw, brows, cheeks,
nose, tongue)."""
SIDE_SUFFIXES = {"_L": "Left", "_R": "Right"}
"""ICT-style side suffix -> ARKit's."""
REFERENCE_MODEL = "ict"
"""The model whose ARKit-named shapes define ARKit's shapes for the least-squares map."""
RIDGE_PER_MEDIAN_SHAPE_NORM = 0.25
"""Ridge weight of the least-squares map per median landmark-displacement norm of an ARKit shape. ICT's shapes are
nearly collinear on 68 landmarks (mouthLowerDown, mouthShrug, mouthSmile all move the lips), and without a penalty
the fit piles weight on whichever combination fits best (SFM's happiness: mouthLowerDownRight 1.09 ahead of
mouthSmileRight); this weight keeps the plausible shapes first at a cost of 0.003 in SFM's relative residual. One
weight for all shapes favours explaining a motion with little total weight, so shapes that move the 68 landmarks
far (jawOpen, mouthSmile) win over collinear ones that move them little, and shapes the landmarks barely see
(cheekPuff) are shrunk towards 0. A weight scaled per shape instead favoured those small shapes (SFM's
happiness -> mouthLowerDown first, surprise -> mouthLowerDown instead of jawOpen)."""
WEIGHT_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class ArkitMap:
    """A linear map from a model's morph weights to ARKit's 52 weights.

    Attributes:
        matrix: (52, K) ARKit weight per unit morph weight of each expression component (rows in ``ARKIT_NAMES``
            order, columns in ``gltf.expression_components`` order).
        components: (K,) the model's expression components.
        method: ``"name"`` or ``"least_squares"``.
        residual: (K,) relative landmark residual ``|W (D_ict m_k - s R d_k)| / |W s R d_k|`` of each component
            (module docstring); zeros for a map by name.
        residual_rms_m: (K,) the same residual as a confidence-weighted root-mean-square landmark distance in
            metres, at ICT's scale (``|W r_k| / sqrt(sum of the shared landmarks' confidences)``).
    """

    matrix: np.ndarray
    components: tuple[ExpressionComponent, ...]
    method: str
    residual: np.ndarray
    residual_rms_m: np.ndarray


def arkit_name(name: str) -> str | None:
    """ARKit's name for a component name (``eyeBlink_L`` -> ``eyeBlinkLeft``, ``browInnerUp_L`` ->
    ``browInnerUp``, ``jawOpen`` -> ``jawOpen``), or None when it names no ARKit shape."""
    if name in ARKIT_NAMES:
        return name
    for suffix, side in SIDE_SUFFIXES.items():
        if name.endswith(suffix):
            stem = name[:-len(suffix)]
            for candidate in (stem + side, stem):
                if candidate in ARKIT_NAMES:
                    return candidate
    return None


def name_matrix(components: tuple[ExpressionComponent, ...]) -> np.ndarray:
    """(52, K) map by name: each ARKit shape is the mean of the morph weights of the components named after it."""
    matrix = np.zeros((len(ARKIT_NAMES), len(components)))
    for k, component in enumerate(components):
        target = arkit_name(component.name)
        if target is not None:
            matrix[ARKIT_NAMES.index(target), k] = 1.0
    counts = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, counts, out=np.zeros_like(matrix), where=counts > 0)


def maps_by_name(model: MorphableModel) -> bool:
    """True when every expression component of ``model`` names an ARKit shape (and it has some)."""
    components = expression_components(model)
    return bool(components) and all(arkit_name(c.name) is not None for c in components)


def _landmark_displacements(model: MorphableModel) -> tuple[np.ndarray, np.ndarray]:
    """Mean-face landmarks (68, 3) and (K, 68, 3) landmark displacements per unit morph weight, float64."""
    components = expression_components(model)
    K = len(components)
    batch = model.zero_params(K + 1)  # row 0: mean face; row 1 + k: component k at morph weight 1
    for k, component in enumerate(components):
        batch[component.group][1 + k, component.index] = component.scale
    with torch.no_grad():
        landmarks = model.landmarks(**batch).double().cpu().numpy()  # (K + 1, 68, 3)
    return landmarks[0], landmarks[1:] - landmarks[:1]


def similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """Umeyama's weighted similarity ``target ~ s R source + t`` of (L, 3) point sets; returns (s, R (3, 3))."""
    w = weights / weights.sum()
    mu_s, mu_t = w @ source, w @ target
    xs, xt = source - mu_s, target - mu_t
    cov = (xt * w[:, None]).T @ xs  # (3, 3)
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])  # a rotation, never a reflection
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (w @ (xs * xs).sum(axis=1)))
    return s, R


def least_squares_map(model: MorphableModel, reference: MorphableModel) -> ArkitMap:
    """The map of a model by least squares against ``reference``'s ARKit-named shapes (module docstring).

    Raises:
        ValueError: when ``reference`` does not map to ARKit by name, or the two models share fewer than 3
            landmarks with confidence > 0.
    """
    if not maps_by_name(reference):
        raise ValueError(f"reference model {reference.name!r} has expression components without ARKit names")
    components = expression_components(model)
    confidence = np.minimum(model.landmark_confidence.double().cpu().numpy(),
                            reference.landmark_confidence.double().cpu().numpy())  # (68,)
    used = confidence > 0
    if used.sum() < 3:
        raise ValueError(f"models {model.name!r} and {reference.name!r} share {int(used.sum())} landmarks with "
                         "confidence > 0; the least-squares ARKit map needs at least 3")
    mean, deltas = _landmark_displacements(model)  # (68, 3), (K, 68, 3)
    ref_mean, ref_deltas = _landmark_displacements(reference)  # (68, 3), (K_ref, 68, 3)
    s, R = similarity(mean[used], ref_mean[used], confidence[used])
    row_weight = np.repeat(np.sqrt(confidence[used]), 3)  # (3L,) one per coordinate
    ref_components = expression_components(reference)
    # (3L, 52) ICT landmark displacement per ARKit weight: a merged shape moves both of its ICT halves.
    arkit_basis = (ref_deltas[:, used].reshape(len(ref_components), -1).T
                   @ (name_matrix(ref_components) > 0).T.astype(np.float64)) * row_weight[:, None]
    targets = (s * deltas[:, used] @ R.T).reshape(len(components), -1) * row_weight  # (K, 3L)
    shape_norms = np.linalg.norm(arkit_basis, axis=0)
    ridge = RIDGE_PER_MEDIAN_SHAPE_NORM * np.median(shape_norms[shape_norms > 0]) * np.eye(len(ARKIT_NAMES))
    penalised = np.vstack([arkit_basis, ridge])  # (3L + 52, 52)
    import scipy.optimize  # here, not at the top: 0.5 s of every run's start, and ICT's map needs no solve
    matrix = np.zeros((len(ARKIT_NAMES), len(components)))
    residual, residual_rms = np.zeros(len(components)), np.zeros(len(components))
    for k, target in enumerate(targets):
        matrix[:, k], _ = scipy.optimize.nnls(penalised, np.concatenate([target, np.zeros(len(ARKIT_NAMES))]))
        norm = np.linalg.norm(arkit_basis @ matrix[:, k] - target)
        residual[k] = norm / max(np.linalg.norm(target), np.finfo(np.float64).tiny)
        residual_rms[k] = norm / np.sqrt(confidence[used].sum())
    return ArkitMap(matrix=matrix, components=components, method="least_squares", residual=residual,
                    residual_rms_m=residual_rms)


def arkit_map(model: MorphableModel, reference: MorphableModel | None = None) -> ArkitMap:
    """The ARKit map of ``model``: by name where its components name ARKit shapes, else by least squares against
    ``reference`` (default: ``load_model("ict")``, found through F2P_MODEL_PATH or the cache). Build it once per
    model and pass it to ``arkit_weights`` for every photo."""
    components = expression_components(model)
    if maps_by_name(model):
        zeros = np.zeros(len(components))
        return ArkitMap(matrix=name_matrix(components), components=components, method="name", residual=zeros,
                        residual_rms_m=zeros)
    return least_squares_map(model, load_model(REFERENCE_MODEL) if reference is None else reference)


def arkit_weights(model: MorphableModel, params: dict[str, Tensor],
                  mapping: ArkitMap | None = None) -> dict[str, float]:
    """ARKit's 52 blendshape weights of one face, in ``ARKIT_NAMES`` order, each in [0, 1].

    Args:
        model: the face model.
        params: {group: (K,)} fitted parameters of one face (``PhotoResult.params``; scene keys ignored).
        mapping: ``arkit_map(model)``, built here when None (which loads ICT for models not mapped by name).

    Returns:
        {ARKit name: weight}, 52 entries.
    """
    mapping = arkit_map(model) if mapping is None else mapping
    weights = np.clip(mapping.matrix @ morph_weights(model, params), *WEIGHT_RANGE)
    return {name: float(w) for name, w in zip(ARKIT_NAMES, weights)}


ARKIT_CONVENTION = ("Apple ARKit ARFaceAnchor.BlendShapeLocation names, weights in [0, 1]; Left/Right are the "
                    "subject's own sides; weights = clip(map @ (expression value / slider scale), 0, 1)")


def arkit_document(model: MorphableModel, params: dict[str, Tensor], mapping: ArkitMap) -> dict:
    """The arkit.json content of one face: the 52 weights and the map that made them (method, reference model,
    per-component landmark residual of a least-squares map).

    Args:
        model: the face model; params: {group: (K,)} its fitted parameters of one face; mapping: ``arkit_map(model)``.
    """
    names = [c.name for c in mapping.components]
    return {
        "model": model.name,
        "weights": arkit_weights(model, params, mapping),
        "map": {"method": mapping.method, "reference": REFERENCE_MODEL if mapping.method == "least_squares" else None,
                "residual": dict(zip(names, mapping.residual.tolist())),
                "residual_rms_mm": {n: 1000.0 * r for n, r in zip(names, mapping.residual_rms_m.tolist())}},
        "convention": ARKIT_CONVENTION,
    }


def unavailable_document(model: MorphableModel, reason: str) -> dict:
    """The arkit.json content when the model has no ARKit map (``reason``: one line, e.g. the reference model ICT
    is not installed): no weights."""
    return {"model": model.name, "weights": None, "map": {"method": "unavailable", "error": reason},
            "convention": ARKIT_CONVENTION}
