"""ARKit's 52 blendshape weights from a model's expression: by name for ICT, by least squares for others."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p.export.arkit import (ARKIT_NAMES, arkit_map, arkit_name, arkit_weights, least_squares_map, similarity)
from f2p.morphable.base import LinearMorphableModel, MorphableModel, ParamGroup
from f2p.morphable.procedural import procedural_data
from f2p.morphable.registry import load_model
from f2p.render.rotations import axis_angle_to_matrix

APPLE_INDEX = {"eyeBlinkLeft": 0, "eyeWideLeft": 6, "eyeBlinkRight": 7, "jawForward": 14, "jawOpen": 17,
               "mouthClose": 18, "mouthUpperUpRight": 40, "browDownLeft": 41, "browInnerUp": 43, "cheekPuff": 46,
               "noseSneerRight": 50, "tongueOut": 51}
"""Positions in Apple's ARFaceAnchor.BlendShapeLocation list (as in Unreal's EARFaceBlendShape enum)."""


@pytest.fixture(scope="module")
def ict_model(models_dir: Path) -> MorphableModel:
    if not (models_dir / "ict_facekit").is_dir():
        pytest.skip(f"ICT FaceKit not found in {models_dir}")
    return load_model("ict")


@pytest.fixture(scope="module")
def sfm_model(models_dir: Path) -> MorphableModel:
    if not (models_dir / "sfm_3448").is_dir():
        pytest.skip(f"SFM not found in {models_dir}")
    return load_model("sfm")


def named_model(names: tuple[str, ...], scale: float = 1.0, lower: float = 0.0, upper: float = 1.0,
                transform: tuple[float, np.ndarray, np.ndarray] | None = None) -> LinearMorphableModel:
    """The procedural face with its expressions renamed; sliders in [lower, upper] reaching the procedural shape
    times ``scale`` at ``upper``; optionally moved by a similarity (s, R, t) as a whole."""
    data = procedural_data()
    K = len(names)
    group = ParamGroup("expression", K, prior_std=(0.5,) * K, lower=(lower,) * K, upper=(upper,) * K,
                       component_names=names)
    mean, bases = data.mean, {**data.bases, "expression": data.bases["expression"] * scale / upper}
    if transform is not None:
        s, R, t = transform
        mean = (s * data.mean @ R.T + t).astype(np.float32)
        bases = {name: (s * basis @ R.T).astype(np.float32) for name, basis in bases.items()}
    groups = tuple(group if g.name == "expression" else g for g in data.groups)
    return LinearMorphableModel(dataclasses.replace(data, name="named", mean=mean, groups=groups, bases=bases))


def test_names_are_apples_52_in_apples_order():
    assert len(ARKIT_NAMES) == len(set(ARKIT_NAMES)) == 52
    assert {name: ARKIT_NAMES.index(name) for name in APPLE_INDEX} == APPLE_INDEX


@pytest.mark.parametrize("name, expected", [
    ("eyeBlink_L", "eyeBlinkLeft"), ("mouthSmile_R", "mouthSmileRight"), ("browInnerUp_L", "browInnerUp"),
    ("cheekPuff_R", "cheekPuff"), ("jawOpen", "jawOpen"), ("eyeBlinkLeft", "eyeBlinkLeft"), ("anger", None),
    ("mouthSmile", None), ("jawOpen_L", "jawOpen"), ("mouthSmile_X", None)])
def test_component_names_convert_to_arkit_names(name, expected):
    assert arkit_name(name) == expected


def test_ict_maps_one_to_one_by_name(ict_model):
    names = ict_model.groups["expression"].component_names
    values = torch.rand(len(names))
    setting = {"eyeBlink_L": 0.7, "mouthSmile_R": 0.25, "browInnerUp_L": 0.4, "browInnerUp_R": 0.8,
               "cheekPuff_L": 1.0, "cheekPuff_R": 0.0}
    for name, value in setting.items():
        values[names.index(name)] = value
    mapping = arkit_map(ict_model)
    assert mapping.method == "name" and not mapping.residual.any()
    weights = arkit_weights(ict_model, {"identity": torch.randn(100), "expression": values, "pose": torch.ones(3)},
                            mapping)
    assert tuple(weights) == ARKIT_NAMES
    assert weights["eyeBlinkLeft"] == pytest.approx(0.7) and weights["mouthSmileRight"] == pytest.approx(0.25)
    assert weights["browInnerUp"] == pytest.approx(0.6) and weights["cheekPuff"] == pytest.approx(0.5)  # L/R mean
    assert weights["tongueOut"] == 0.0
    for name in names:  # every other ICT slider lands exactly on its ARKit name
        if arkit_name(name) not in ("browInnerUp", "cheekPuff"):
            assert weights[arkit_name(name)] == pytest.approx(float(values[names.index(name)]))


def test_rig_sliders_with_arkit_names_map_by_name_over_their_range():
    rig = named_model(("jawOpen", "mouthSmileLeft", "browOuterUpLeft", "cheekPuff"), upper=100.0)
    weights = arkit_weights(rig, {"expression": torch.tensor([50.0, 100.0, 0.0, 20.0])})
    assert (weights["jawOpen"], weights["mouthSmileLeft"], weights["cheekPuff"]) == pytest.approx((0.5, 1.0, 0.2))


def test_least_squares_recovers_a_known_map_through_a_similarity():
    """A model whose expressions are the reference's own shapes, scaled, rotated and moved: the fit finds them."""
    arkit = ("jawOpen", "mouthSmileLeft", "browInnerUp", "cheekPuff")
    reference = named_model(arkit)
    R = axis_angle_to_matrix(torch.tensor([0.1, -0.3, 0.05], dtype=torch.float64)).numpy()
    model = named_model(("open", "smile", "brow", "puff"), scale=0.5, transform=(1.2, R, np.array([0.0, 0.1, -0.3])))
    mapping = least_squares_map(model, reference)
    assert mapping.method == "least_squares"
    found = mapping.matrix[[ARKIT_NAMES.index(n) for n in arkit]]
    # Shapes at half strength; the ridge penalty shrinks the three that move the landmarks far by a few per cent,
    # and the procedural cheek puff (a bulge in z between the landmarks) much more.
    np.testing.assert_allclose(np.diag(found)[:3], 0.5, atol=0.05)
    assert 0.0 < found[3, 3] < 0.5
    assert np.abs(found - np.diag(np.diag(found))).max() < 0.02
    assert mapping.residual[:3].max() < 0.1


def test_similarity_recovers_scale_and_rotation():
    points = np.random.default_rng(0).normal(size=(68, 3))
    R = axis_angle_to_matrix(torch.tensor([0.4, 0.2, -0.7], dtype=torch.float64)).numpy()
    s, found = similarity(points, 0.8 * points @ R.T + 3.0, np.ones(68))
    assert s == pytest.approx(0.8) and np.allclose(found, R)


def ict_expression(ict_model: MorphableModel, arkit: np.ndarray) -> torch.Tensor:
    """(53,) ICT sliders that show (52,) ARKit weights: each ICT slider takes the weight of its ARKit name."""
    names = ict_model.groups["expression"].component_names
    return torch.tensor([arkit[ARKIT_NAMES.index(arkit_name(n))] for n in names], dtype=torch.float32)


def test_sfm_least_squares_map_reports_its_residual(ict_model, sfm_model):
    mapping = arkit_map(sfm_model, ict_model)
    assert mapping.method == "least_squares" and mapping.matrix.shape == (52, 6)
    assert (mapping.matrix >= 0).all()
    confidence = np.minimum(sfm_model.landmark_confidence.numpy(), ict_model.landmark_confidence.numpy())
    used = confidence > 0
    with torch.no_grad():
        sfm_mean = sfm_model.landmarks(**sfm_model.zero_params(1))[0].double().numpy()
        ict_mean = ict_model.landmarks(**ict_model.zero_params(1))[0].double().numpy()
    s, R = similarity(sfm_mean[used], ict_mean[used], confidence[used])
    for k in range(6):
        # Independently: ICT's landmarks at the map's ARKit weights against SFM's aligned landmarks.
        expression = torch.zeros(1, 6)
        expression[0, k] = 1.0
        with torch.no_grad():
            moved = sfm_model.landmarks(expression=expression)[0].double().numpy() - sfm_mean
            shown = ict_model.landmarks(expression=ict_expression(ict_model, mapping.matrix[:, k])[None])
        target = s * moved[used] @ R.T
        error = (shown[0].double().numpy() - ict_mean)[used] - target
        w = np.sqrt(confidence[used])[:, None]
        assert mapping.residual[k] == pytest.approx(np.linalg.norm(w * error) / np.linalg.norm(w * target), rel=1e-4)
        rms = np.sqrt((confidence[used] * (error**2).sum(axis=1)).sum() / confidence[used].sum())
        assert mapping.residual_rms_m[k] == pytest.approx(rms, rel=1e-4)
    assert 0.0 < mapping.residual.max() < 0.6  # ICT's shapes reproduce at least 40 % of each SFM expression


def test_sfm_happiness_maps_mostly_to_smiles(ict_model, sfm_model):
    mapping = arkit_map(sfm_model, ict_model)
    happiness = torch.zeros(6)
    happiness[sfm_model.groups["expression"].component_names.index("happiness")] = 1.0
    weights = arkit_weights(sfm_model, {"expression": happiness, "identity": torch.zeros(63)}, mapping)
    largest = sorted(weights, key=weights.get, reverse=True)[:2]
    assert set(largest) == {"mouthSmileLeft", "mouthSmileRight"}
    assert min(weights["mouthSmileLeft"], weights["mouthSmileRight"]) > 0.5
    assert weights["jawOpen"] < 0.2 and weights["tongueOut"] == 0.0


def test_weights_stay_in_unit_range_for_strong_expressions(ict_model, sfm_model):
    weights = arkit_weights(sfm_model, {"expression": torch.ones(6)}, arkit_map(sfm_model, ict_model))
    assert tuple(weights) == ARKIT_NAMES
    values = np.array(list(weights.values()))
    assert values.min() >= 0.0 and values.max() <= 1.0 and (values == 1.0).any()  # clipped at 1


def test_reference_without_arkit_names_is_refused(procedural_model):
    with pytest.raises(ValueError, match="without ARKit names"):
        least_squares_map(procedural_model, procedural_model)
