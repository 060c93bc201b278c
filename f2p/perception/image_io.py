"""Read photos from disk into f2p images: (3, H, W) float32 RGB in [0, 1], upright, or a typed error.

Every format Pillow reads (JPEG, PNG, WebP, BMP, TIFF, GIF, PPM, ...) is accepted; multi-frame files give their first
frame. Conversions, all at this boundary and nowhere else:

- EXIF orientation is applied (``ImageOps.exif_transpose``), so the tensor is the photo as a viewer shows it.
- Grayscale, bilevel, palette, CMYK, YCbCr, LAB and HSV become RGB through Pillow's own conversions.
- 16- and 32-bit integer grayscale (``I;16*``, ``I``) is divided by 65535 (the 16-bit range; ``I`` is how Pillow
  opens 16-bit PNGs and TIFFs) and clipped to [0, 1].
- Transparency (RGBA, LA, PA, palette with a transparent colour) is composited on white: the colour hidden under
  transparent pixels is arbitrary, and white is what a viewer shows.
- Floating-point images (mode ``F``) are refused: their value range is not defined by the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from f2p.errors import PathError

MIN_SIDE = 16
"""Smallest accepted width and height in pixels: below this no face detector can work."""

MAX_PIXELS = 150_000_000
"""Largest accepted width x height (150 megapixels, beyond any camera photo): a guard against decompression bombs.
Pillow's own guard (``Image.MAX_IMAGE_PIXELS``) is kept and reported the same way."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})
"""Suffixes of the files taken from folders; files named explicitly are always tried."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageReadError(PathError):
    """A photo that cannot be used (missing, empty, not an image, truncated, too small or too large)."""


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Read a photo as an f2p image.

    Args:
        path: image file.
        max_pixels: largest accepted width x height.

    Returns:
        (3, H, W) float32 RGB in [0, 1], H and W of the upright photo.

    Raises:
        ImageReadError: missing, empty, unreadable, not an image, truncated, too small or too large.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if min(width, height) < MIN_SIDE:
                    raise ImageReadError(path, f"image is {width}x{height} pixels, smaller than {MIN_SIDE} on a side")
                if width * height > max_pixels:
                    raise ImageReadError(path, f"image is {width}x{height} = {width * height} pixels, more than the "
                                               f"limit of {max_pixels} (decompression bomb guard)")
                image.load()
                array = _to_rgb_array(ImageOps.exif_transpose(image), path)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageReadError(path, f"decompression bomb guard of Pillow: {error}") from error
    except UnidentifiedImageError as error:
        raise ImageReadError(path, "not an image file (format not recognised)") from error
    except PermissionError as error:
        raise ImageReadError(path, "permission denied") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"truncated or corrupt image data ({error})") from error
    channels_first = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if array.dtype == np.uint8:  # converted here, on the channels-first copy: one float image, not three
        return channels_first.float().div_(255.0)
    return channels_first


def _to_rgb_array(image: Image.Image, path: Path) -> np.ndarray:
    """Pillow image of any mode -> (H, W, 3) RGB: uint8 (0-255), or float32 in [0, 1] for 16-bit grey (see the
    module docstring)."""
    if image.mode == "F":
        raise ImageReadError(path, "floating-point image (mode F) has no defined value range")
    if image.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(image).astype(np.float32) / 65535.0  # (H, W)
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.array(image.convert("RGB"))  # writable (torch.from_numpy warns on a read-only array)


def find_photos(inputs: Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand photo files and folders into a de-duplicated list of paths, in a stable order.

    Folders contribute their files with an ``IMAGE_SUFFIXES`` suffix (sorted; sub-folders too when ``recursive``).
    Files named explicitly are kept whatever their suffix, and missing paths too, so that a bad input is reported
    in the results rather than skipped. A photo reached twice (by two spellings of its path) is listed once.
    """
    found: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            children = path.rglob("*") if recursive else path.iterdir()
            candidates = sorted(c for c in children if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
        else:
            candidates = [path]
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    return list(found.values())
