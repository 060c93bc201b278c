"""evaluation.parameters: the one set of parameter-recovery errors behind the regressor's logs and the synthetic
evaluation's report."""

import math

import pytest
import torch

from f2p.evaluation.geometry import ALIGNMENTS
from f2p.evaluation.parameters import prior_scales, recovery_errors
from f2p.evaluation.shape_weights import shape_variance
from f2p.evaluation.synthetic import score_faces
from f2p.nets.param_head import ParamHead
from f2p.scene import SceneSpec, render_scene
from f2p.scene.params import POSE
from f2p.systems.regressor import parameter_errors

B = 3


@pytest.fixture
def spec(procedural_model) -> SceneSpec:
    return SceneSpec(procedural_model, (64, 64))


def random_params(spec: SceneSpec, seed: int, count: int = B) -> dict[str, torch.Tensor]:
    """``count`` faces: model groups from their priors (clamped into bounds), a turned head, the default camera."""
    generator = torch.Generator().manual_seed(seed)
    params = spec.initial(count)
    for name, group in spec.model.groups.items():
        params[name] = group.clamp(torch.randn(count, group.size, generator=generator) * torch.tensor(group.prior_std))
    params[POSE] = torch.randn(count, 3, generator=generator) * 0.3
    return params


def test_exact_parameters_give_zero_errors(spec):
    N = 64  # enough head poses that the arccos of a trace would be off for some
    truth = random_params(spec, 0, N)
    errors = recovery_errors(spec.model, truth, {k: v.clone() for k, v in truth.items()}, prior_scales(spec.model),
                             alignments=ALIGNMENTS)
    for value in (errors.rmse, errors.shape_rmse, *errors.group_rmse.values(), *errors.group_shape_rmse.values()):
        assert torch.equal(value, torch.zeros(N))
    assert torch.equal(errors.vertex_mm["none"], torch.zeros_like(errors.vertex_mm["none"]))
    for align in ("rigid", "similarity"):
        assert float(errors.vertex_mm[align].max()) < 1e-3, align  # under a micrometre: the alignment's rounding
    for name, value in errors.pose_deg.items():
        assert float(value.max()) < 1e-4, name  # the trace's arccos would read up to 0.05 degrees here


def test_a_unit_error_in_one_standardised_component_gives_the_expected_rmse(spec):
    model = spec.model
    truth = random_params(spec, 1)
    sizes = {name: group.size for name, group in model.groups.items()}
    prior_std = {name: torch.tensor(group.prior_std) for name, group in model.groups.items()}
    k = 2
    estimate = {name: value.clone() for name, value in truth.items()}
    estimate["expression"][:, k] += prior_std["expression"][k]  # one prior std (0.5) off
    errors = recovery_errors(model, estimate, truth, prior_scales(model))
    torch.testing.assert_close(errors.group_rmse["expression"], torch.full((B,), sizes["expression"] ** -0.5))
    assert torch.equal(errors.group_rmse["identity"], torch.zeros(B))
    torch.testing.assert_close(errors.rmse, torch.full((B,), sum(sizes.values()) ** -0.5))
    variance = shape_variance(model, prior_std)
    moving = variance["identity"].sum() + variance["expression"].sum()  # albedo does not move the face
    torch.testing.assert_close(errors.group_shape_rmse["expression"],
                               (variance["expression"][k] / variance["expression"].sum()).sqrt().expand(B))
    torch.testing.assert_close(errors.shape_rmse, (variance["expression"][k] / moving).sqrt().expand(B))
    assert "albedo" not in errors.group_shape_rmse
    # The same error in a scale twice as large (the regressor's slider range, 1.0) reads half as large.
    wider = {**prior_std, "expression": 2 * prior_std["expression"]}
    torch.testing.assert_close(recovery_errors(model, estimate, truth, wider).group_rmse["expression"],
                               torch.full((B,), 0.5 * sizes["expression"] ** -0.5))


def test_regressor_logs_and_synthetic_report_columns_are_the_same_numbers(spec):
    truth, estimate = random_params(spec, 2), random_params(spec, 3)
    rows = score_faces(spec, truth, estimate, render_scene(spec, truth, None).landmarks2d)
    logged = parameter_errors(spec, estimate, truth, prior_scales(spec.model))
    for i, row in enumerate(rows):
        for name in spec.model.groups:
            assert float(logged[f"param_error_{name}"][i]) == row[f"{name}_rmse_std"] > 0
        for name in ("identity", "expression"):
            assert float(logged[f"param_error_{name}_shape"][i]) == row[f"{name}_rmse_shape"] > 0
        assert "param_error_albedo_shape" not in logged and math.isnan(row["albedo_rmse_shape"])
        assert float(logged["vertex_error_mm"][i]) == row["vertex_mean_mm"] > 0
        assert float(logged["pose_error_deg"][i]) == row["pose_error_deg"] > 1.0


def test_each_caller_keeps_its_scale_and_they_differ_only_for_bounded_groups(spec):
    """The regressor standardises by its head's scales, the range of a slider; the report by prior stds."""
    head = ParamHead(8, spec)
    truth, estimate = random_params(spec, 4), random_params(spec, 5)
    rows = score_faces(spec, truth, estimate, render_scene(spec, truth, None).landmarks2d)
    logged = parameter_errors(spec, estimate, truth, {name: head.scale(name) for name in truth})
    prior_std = spec.model.groups["expression"].prior_std[0]  # 0.5, and the range is 1
    for i, row in enumerate(rows):
        assert float(logged["param_error_identity"][i]) == pytest.approx(row["identity_rmse_std"], rel=1e-6)
        assert float(logged["param_error_expression"][i]) == pytest.approx(prior_std * row["expression_rmse_std"],
                                                                           rel=1e-5)
