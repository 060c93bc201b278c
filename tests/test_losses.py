import pytest
import torch

from f2p.losses import (bound_penalty, gaussian_prior, identity_loss, landmark_loss, photometric_loss,
                        vertex_color_smoothness)
from f2p.losses.landmark import face_size
from f2p.losses.smoothness import mesh_edges


def test_landmark_loss_hand_computed():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])  # distances 5 and 0
    assert landmark_loss(pred, target).item() == pytest.approx(12.5)
    assert landmark_loss(pred, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(25.0)
    assert landmark_loss(pred, target, scale=torch.tensor([5.0])).item() == pytest.approx(0.5)


def test_landmark_loss_is_scale_free_with_face_size():
    target = torch.rand(2, 68, 2) * 100
    pred = target + torch.randn_like(target)
    small = landmark_loss(pred, target, scale=face_size(target))
    large = landmark_loss(pred * 4, target * 4, scale=face_size(target * 4))
    assert torch.allclose(small, large, rtol=1e-4)


def test_photometric_loss_ignores_pixels_outside_the_mask():
    render, target = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    target[..., :2] = 1.0  # left half differs by (1, 1, 1): distance sqrt(3)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:] = 1.0
    assert photometric_loss(render, target, mask, eps=0).item() == 0.0
    mask[..., :2] = 1.0
    assert photometric_loss(render, target, mask, eps=0).item() == pytest.approx(3**0.5 / 2)


def test_photometric_loss_gradcheck():
    render = torch.rand(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    target, mask = torch.rand(1, 3, 3, 3, dtype=torch.float64), torch.rand(1, 1, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda r: photometric_loss(r, target, mask), (render,))


def test_priors_hand_computed():
    values = torch.tensor([[2.0, -1.0, 0.5]])
    assert gaussian_prior(values, torch.tensor([2.0, 1.0, 0.5])).item() == pytest.approx(1.0)
    assert bound_penalty(values, torch.zeros(3), torch.ones(3)).item() == pytest.approx(1.0 + 1.0)


def test_identity_loss_zero_for_same_direction():
    a = torch.randn(3, 128)
    assert torch.allclose(identity_loss(a, 2 * a), torch.zeros(3), atol=1e-6)
    assert torch.allclose(identity_loss(a, -a), torch.full((3,), 2.0), atol=1e-6)


def test_vertex_color_smoothness_zero_for_constant_colour():
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    edges = mesh_edges(faces)
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]  # each undirected edge once, sorted
    assert vertex_color_smoothness(torch.ones(1, 4, 3) * 0.3, edges).item() == 0.0
    colors = torch.zeros(1, 4, 3)
    colors[0, 0] = 1.0  # vertex 0 touches 3 of the 5 edges
    assert vertex_color_smoothness(colors, edges).item() == pytest.approx(3 * 3 / 5)
