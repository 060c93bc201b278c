"""The MorphableModel contract on the procedural model (the one with an albedo space)."""

from __future__ import annotations

import pytest
import torch


def test_zero_params_give_the_mean_mesh(procedural_model):
    params = procedural_model.zero_params(2)
    assert {k: tuple(v.shape) for k, v in params.items()} == {g.name: (2, g.size) for g in procedural_model.groups.values()}
    assert all(v.dtype == torch.float32 and not v.any() for v in params.values())
    mesh = procedural_model(**params)
    assert tuple(mesh.verts.shape) == (2, procedural_model.num_vertices, 3)
    assert tuple(mesh.landmarks.shape) == (2, 68, 3) and tuple(mesh.albedo.shape) == (2, procedural_model.num_vertices, 3)
    assert torch.equal(mesh.verts[1], procedural_model.mean)


def test_missing_groups_count_as_zero(procedural_model):
    identity = torch.randn(2, procedural_model.groups["identity"].size)
    full = procedural_model.zero_params(2) | {"identity": identity}
    assert torch.equal(procedural_model(identity=identity).verts, procedural_model(**full).verts)


def test_wrong_group_name_or_shape_is_a_clear_error(procedural_model):
    with pytest.raises(KeyError, match=r"no parameter group\(s\) \['shape'\]; it has \['albedo', 'expression', 'identity'\]"):
        procedural_model(shape=torch.zeros(1, 10))
    with pytest.raises(ValueError, match=r"expression must have shape \(B, 4\), got \(1, 5\)"):
        procedural_model(expression=torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"disagree on batch size \[1, 2\]"):
        procedural_model(identity=torch.zeros(1, 10), expression=torch.zeros(2, 4))


def test_gradients_reach_identity_expression_and_albedo(procedural_model):
    params = {k: (0.1 * torch.rand_like(v)).requires_grad_() for k, v in procedural_model.zero_params(2).items()}
    mesh = procedural_model(**params)
    (mesh.verts.square().sum() + mesh.albedo.square().sum()).backward()
    for name, value in params.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, name


def test_model_data_never_reaches_checkpoints(procedural_model):
    assert procedural_model.state_dict() == {}
    assert len(list(procedural_model.buffers())) > 0 and len(list(procedural_model.parameters())) == 0
