"""Where each input's results go: one output folder name per input photo, the one rule every run uses
(``reconstruct``, the Lightning fitting system, ``predict``)."""

from __future__ import annotations

from pathlib import Path


def output_names(inputs: list[Path]) -> dict[Path, str]:
    """{input: its output folder name}: the photo's stem; stems that clash within ``inputs`` get their parent
    folder's name in front (``a/img.jpg`` and ``b/img.jpg`` -> ``a_img`` and ``b_img``)."""
    stems: dict[str, int] = {}
    for image in inputs:
        stems[image.stem] = stems.get(image.stem, 0) + 1
    return {image: image.stem if stems[image.stem] == 1 else f"{image.parent.name}_{image.stem}" for image in inputs}
