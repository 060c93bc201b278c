"""Photo loading: every common mode and format to (3, H, W) RGB [0, 1], and one-line typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from f2p.perception.image_io import ImageReadError, load_image


def _gradient(width: int = 40, height: int = 24) -> np.ndarray:
    """(H, W, 3) uint8 image with distinct rows, columns and channels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 77)], -1).astype(np.uint8)


def _check(image: torch.Tensor, height: int, width: int) -> None:
    assert image.shape == (3, height, width)
    assert image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".bmp", ".tiff"])
def test_formats_load_as_rgb(tmp_path: Path, suffix: str) -> None:
    array = _gradient()
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(array).save(path, **({"quality": 95} if suffix in (".jpg", ".webp") else {}))
    image = load_image(path)
    _check(image, 24, 40)
    # Channel order is RGB: red grows left to right, green top to bottom.
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    assert (image - expected).abs().mean() < 0.03


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    array = _gradient(40, 24)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    Image.fromarray(array).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "rotated.jpg")
    _check(image, 40, 24)
    # After a clockwise turn the stored top row (green = 0) becomes the right column.
    assert image[1, :, -1].mean() < 0.1 and image[1, :, 0].mean() > 0.9


def test_grayscale_and_palette_become_three_equal_or_rgb_channels(tmp_path: Path) -> None:
    Image.fromarray(_gradient()[..., 0]).save(tmp_path / "gray.png")
    gray = load_image(tmp_path / "gray.png")
    _check(gray, 24, 40)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    Image.fromarray(_gradient()).convert("P").save(tmp_path / "palette.png")
    _check(load_image(tmp_path / "palette.png"), 24, 40)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere, opaque only in the left half
    rgba[:, :10, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    image = load_image(tmp_path / "alpha.png")
    _check(image, 20, 20)
    assert torch.allclose(image[:, :, :10], torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 20, 10))
    assert torch.allclose(image[:, :, 10:], torch.ones(3, 20, 10))


def test_sixteen_bit_png_is_scaled_to_unit_range(tmp_path: Path) -> None:
    array = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (16, 1))
    Image.fromarray(array).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    _check(image, 16, 32)
    assert image[0, 0, 0] == 0.0 and image[0, 0, -1] == pytest.approx(1.0)
    assert image[0, 0, 16].item() == pytest.approx(array[0, 16] / 65535, abs=1e-6)


def test_cmyk_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    Image.fromarray(_gradient()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    image = load_image(tmp_path / "cmyk.jpg")
    _check(image, 24, 40)
    assert image[0, :, -1].mean() > 0.8 and image[0, :, 0].mean() < 0.2  # red still grows to the right


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: None, "file not found"),
        (lambda path: path.write_bytes(b""), "empty file"),
        (lambda path: path.write_text("this is not a photo\n"), "not an image file"),
        (lambda path: Image.new("RGB", (1, 1)).save(path, format="JPEG"), "1x1 pixels, smaller than 16"),
    ],
    ids=["missing", "empty", "text-renamed-jpg", "one-pixel"],
)
def test_bad_files_raise_one_line_typed_errors(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageReadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message
    assert isinstance(caught.value, ValueError) and caught.value.path == str(path)


def test_truncated_jpeg_is_reported(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.jpg")


def test_decompression_bomb_guard(tmp_path: Path) -> None:
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="300x200 = 60000 pixels, more than the limit of 50000"):
        load_image(tmp_path / "big.png", max_pixels=50_000)
    _check(load_image(tmp_path / "big.png", max_pixels=60_000), 200, 300)
