"""Differentiable alignment to dlib's face chip: its frame and its gradients (dlib parity: test_identity_dlib.py)."""

from __future__ import annotations

import torch

from f2p.perception.identity.chip import (
    DLIB_ALIGNMENT_LANDMARKS,
    dlib_chip_template,
    extract_dlib_face_chips,
)


def _landmarks_at(points: torch.Tensor) -> torch.Tensor:
    """(B, 36, 2) alignment points -> (B, 68, 2) landmarks (the others, unused by dlib, at zero)."""
    landmarks = points.new_zeros(points.shape[0], 68, 2)
    landmarks[:, DLIB_ALIGNMENT_LANDMARKS] = points
    return landmarks


def test_a_face_in_the_chip_frame_is_sampled_half_a_pixel_down_right() -> None:
    # dlib's chip rectangle is centred on the template's (size/2, size/2): at scale 1 the chip pixel q
    # is the image point q + 0.5, the mean of a 2x2 block of pixels.
    image = torch.rand(1, 3, 150, 150)
    landmarks = _landmarks_at(dlib_chip_template()[None])
    chip = extract_dlib_face_chips(image, landmarks)
    block_means = torch.nn.functional.avg_pool2d(image, 2, stride=1)  # (1, 3, 149, 149)
    assert torch.allclose(chip[:, :, :149, :149], block_means, atol=1e-5)


def _smooth_image(size: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 3, size), torch.linspace(0, 3, size), indexing="ij")
    return torch.stack([torch.sin(x + y), torch.cos(2 * x - y), torch.sin(x * y)])[None].double() * 0.5 + 0.5


def test_landmark_gradients_match_finite_differences() -> None:
    size = 12
    # A face of scale 3 (the chip is 3x smaller: dlib's pyramid path) and one of scale 0.9, inside a 64x64 image.
    for scale, shift in ((3.0, 8.0), (0.9, 20.0)):
        points = (dlib_chip_template(size).double() * scale + shift)[None]
        points = points + 0.1 * torch.randn_like(points)
        image = _smooth_image(64)
        landmarks = _landmarks_at(points).requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda lm: extract_dlib_face_chips(image, lm, size=size), (landmarks,), fast_mode=True
        )
