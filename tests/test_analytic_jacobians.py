"""Analytic derivatives the landmark solver uses instead of forward-mode autodiff: Rodrigues' formula's
(f2p.render.rotations) and the slider-pair prior's (f2p.losses.priors)."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacfwd, vmap

from f2p.losses.priors import slider_pair_jacobian, slider_pair_residuals, slider_pairs
from f2p.render.rotations import SMALL_ANGLE_SQ, axis_angle_to_matrix, axis_angle_to_matrix_jacobian


@pytest.mark.parametrize("axis_angle", [[0.3, -0.5, 0.2], [2.9, 0.4, -0.6], [3e-4, -2e-4, 1e-4], [0.0, 0.0, 0.0]])
def test_the_rotation_jacobian_is_jacfwds_of_rodrigues_formula(axis_angle):  # the last two: its Taylor series
    w = torch.tensor(axis_angle, dtype=torch.float64)
    expected = jacfwd(axis_angle_to_matrix)(w).permute(2, 0, 1)  # (3 k, 3, 3) dR / dw_k
    assert torch.allclose(axis_angle_to_matrix_jacobian(w), expected, rtol=0, atol=1e-12)


def test_the_rotation_jacobian_is_batched_on_either_side_of_the_small_angle_switch():
    theta = (SMALL_ANGLE_SQ ** 0.5) * torch.tensor([0.999, 1.001, 1e3], dtype=torch.float64)
    w = theta[:, None] * torch.tensor([0.6, 0.0, 0.8], dtype=torch.float64)  # (3, 3)
    batched = axis_angle_to_matrix_jacobian(w[:, None].expand(3, 4, 3))  # (3, 4, 3 k, 3, 3)
    assert batched.shape == (3, 4, 3, 3, 3)
    for i in range(3):
        expected = jacfwd(axis_angle_to_matrix)(w[i]).permute(2, 0, 1)
        assert torch.allclose(batched[i], expected.expand(4, 3, 3, 3), rtol=0, atol=1e-12)


def test_the_slider_pair_jacobian_is_jacfwds_of_the_residuals_ties_included():
    names = ("jawLeft", "jawRight", "eyeLookIn_L", "eyeLookOut_L", "eyeLookIn_R", "eyeLookOut_R",
             "cheekSquint_L", "cheekSquint_R", "jawOpen")
    pairs = slider_pairs(names)
    assert len(pairs.mirror) == 3 and len(pairs.opposing) == 3
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(4, len(names), generator=generator, dtype=torch.float64)
    values[0, 1] = values[0, 0]  # an opposing pair tied on
    values[1, 2:6] = 0.0  # two opposing pairs tied at their lower bound
    std = 0.5 + torch.rand(len(names), generator=generator, dtype=torch.float64)
    expected = vmap(jacfwd(lambda v: slider_pair_residuals(v[None], pairs, std)[0]))(values)  # (4, M + O, K)
    assert torch.allclose(slider_pair_jacobian(values, pairs, std), expected, rtol=0, atol=1e-12)
