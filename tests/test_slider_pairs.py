"""The slider-pair prior (f2p.losses.priors: mirror pairs move together, opposite movements are not both on) and
its use by the fit."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from f2p.fitting import Fitter
from f2p.fitting.schedule import QUALITIES, SYMMETRY_WEIGHT, landmark_stages, schedule_for
from f2p.losses.priors import slider_pair_prior, slider_pair_residuals, slider_pairs
from f2p.morphable import load_model
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec

sys.path.insert(0, str(Path(__file__).parent))
from test_fitting_solver import observed, truth_of  # noqa: E402

NAMES = ("browDown_L", "browDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "jawLeft",
         "jawOpen", "jawRight", "mouthLowerDown_L", "mouthLowerDown_R", "mouthRollLower", "mouthRollUpper",
         "eyeBlinkLeft", "mouthSmile")


def named_pairs(pairs: torch.Tensor) -> set[tuple[str, str]]:
    return {(NAMES[a], NAMES[b]) for a, b in pairs.tolist()}


def test_pairs_follow_the_naming_rules():
    pairs = slider_pairs(NAMES)
    assert named_pairs(pairs.mirror) == {("browDown_L", "browDown_R"), ("mouthLowerDown_L", "mouthLowerDown_R"),
                                         ("eyeLookIn_L", "eyeLookOut_R"), ("eyeLookIn_R", "eyeLookOut_L")}
    assert named_pairs(pairs.opposing) == {("jawLeft", "jawRight"), ("eyeLookIn_L", "eyeLookOut_L"),
                                           ("eyeLookIn_R", "eyeLookOut_R")}


def test_a_model_without_named_pairs_has_none():
    pairs = slider_pairs(("anger", "disgust", "happiness"))
    assert pairs.count == 0
    assert slider_pair_residuals(torch.rand(2, 3), pairs, torch.ones(3)).shape == (2, 0)


def test_the_prior_is_zero_for_a_symmetric_face_and_grows_when_lopsided_or_fighting():
    pairs = slider_pairs(NAMES)
    std = torch.full((len(NAMES),), 0.5)
    index = {name: k for k, name in enumerate(NAMES)}
    values = torch.zeros(3, len(NAMES))
    values[:, index["browDown_L"]] = values[:, index["browDown_R"]] = 0.7  # symmetric
    values[1, index["browDown_R"]] = 0.0  # lopsided
    values[2, index["jawLeft"]] = values[2, index["jawRight"]] = 0.5  # fighting
    prior = slider_pair_prior(values, pairs, std)
    assert prior[0] == 0 and prior[1] > 0 and prior[2] > 0


@pytest.fixture(scope="module")
def ict(models_dir):
    return SceneSpec(load_model("ict"), (160, 160))


def fitted_expression(spec: SceneSpec, truth: dict[str, torch.Tensor], noise: float, symmetry: bool) -> torch.Tensor:
    obs = observed(spec, truth, dense=True)
    generator = torch.Generator().manual_seed(1)
    obs = replace(obs, landmarks=obs.landmarks + noise * torch.randn(obs.landmarks.shape, generator=generator),
                  dense=obs.dense + noise * torch.randn(obs.dense.shape, generator=generator))
    stages = landmark_stages()
    if not symmetry:
        stages = [replace(stage, weights={k: v for k, v in stage.weights.items() if k != "symmetry"})
                  for stage in stages]
    return Fitter(spec, MeshRenderer(), stages).fit(obs).params["expression"]


def test_every_quality_fits_expression_with_the_prior():
    for quality in QUALITIES:
        stages = [stage for stage in schedule_for(quality) if "expression" in stage.groups]
        assert stages and all(stage.weights.get("symmetry") == SYMMETRY_WEIGHT for stage in stages), quality


def test_the_prior_keeps_a_symmetric_expression_symmetric_under_landmark_noise(ict):
    names = ict.model.groups["expression"].component_names
    pairs = slider_pairs(names)
    truth = truth_of(ict)
    symmetric = torch.zeros_like(truth["expression"])
    for name, value in (("mouthSmile", 0.6), ("cheekSquint", 0.4), ("eyeBlink", 0.3)):
        symmetric[:, names.index(f"{name}_L")] = symmetric[:, names.index(f"{name}_R")] = value
    truth["expression"] = symmetric

    def lopsided(values: torch.Tensor) -> float:
        return float((values[:, pairs.mirror[:, 0]] - values[:, pairs.mirror[:, 1]]).abs().mean())

    with_prior, without = (lopsided(fitted_expression(ict, truth, 1.0, prior)) for prior in (True, False))
    assert with_prior < 0.7 * without


def test_a_one_sided_expression_the_landmarks_show_is_kept(ict):
    names = ict.model.groups["expression"].component_names
    truth = truth_of(ict)
    truth["expression"] = torch.zeros_like(truth["expression"])
    truth["expression"][:, names.index("mouthSmile_L")] = 0.9
    fitted = fitted_expression(ict, truth, 0.0, True)
    assert (fitted[:, names.index("mouthSmile_L")] - fitted[:, names.index("mouthSmile_R")] > 0.6).all(), fitted


def test_the_synthetic_report_shows_how_lopsided_fitted_and_true_sliders_are(ict):
    from f2p.evaluation.synthetic import slider_pair_columns

    names = ict.model.groups["expression"].component_names
    truth = truth_of(ict)
    fitted = {"expression": torch.zeros_like(truth["expression"])}
    fitted["expression"][:, names.index("jawLeft")] = fitted["expression"][:, names.index("jawRight")] = 0.4
    columns = slider_pair_columns(ict.model, fitted, truth)
    assert (columns["expression_lr_diff"] == 0).all() and (columns["expression_lr_diff_true"] > 0).all()
    assert torch.allclose(columns["expression_overlap"], torch.full((3,), 0.4 / 6))  # one of ICT's 6 pairs
