"""Reading the per-photo outputs of ``reconstruct``/``predict``: OUT_DIR/summary.csv and OUT_DIR/<stem>/."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS
from f2p.errors import PathError
from f2p.evaluation.pose import head_rotation_from_camera
from f2p.export.results import DONE_MARKER

SUMMARY = "summary.csv"


class OutputsError(PathError):
    """An output folder that cannot be read."""


@dataclass(frozen=True)
class PhotoOutput:
    """One input photo of an output folder.

    Attributes:
        image: the photo's path as given to ``reconstruct``.
        status: "ok" or "failed".
        error: why it failed ("" when ok); a photo whose files are missing or unreadable is failed with the reason.
        folder: its output folder, or None when it failed.
        fitted, detected: (68, 2) fitted and detected landmarks in photo pixels, or None.
        head_rotation: (3, 3) ``R_head`` relative to the photo (``pose.head_rotation_from_camera``), or None.
        identity: (K,) fitted identity coefficients, or None when failed or the model has no "identity" group.
        fit_png: the photo | render | overlay figure, or None.
    """

    image: str
    status: str
    error: str
    folder: Path | None = None
    fitted: Tensor | None = None
    detected: Tensor | None = None
    head_rotation: Tensor | None = None
    identity: Tensor | None = None
    fit_png: Path | None = None

    @property
    def name(self) -> str:
        """File name of the photo, or its stem for outputs without summary.csv (its key for matching annotations)."""
        return Path(self.image).name


def _landmarks(document: dict, key: str, path: Path) -> Tensor:
    points = torch.tensor(document[key], dtype=torch.float32)
    if points.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"{path.name}: {key!r} has shape {tuple(points.shape)}, expected (68, 2)")
    return points


def _coefficients(values: dict | list) -> Tensor:
    return torch.tensor(list(values.values()) if isinstance(values, dict) else values, dtype=torch.float32)


def read_photo_output(image: str, folder: Path) -> PhotoOutput:
    """The outputs of one successful photo; a failed ``PhotoOutput`` naming the problem when files are unusable."""
    try:
        landmarks_path, params_path = folder / "landmarks.json", folder / "params.json"
        landmarks = json.loads(landmarks_path.read_text())
        params = json.loads(params_path.read_text())
        fitted = _landmarks(landmarks, "fitted", landmarks_path)
        detected = _landmarks(landmarks, "detected", landmarks_path)
        rotation = head_rotation_from_camera(torch.tensor(params["camera"]["R"], dtype=torch.float32))
        identity = params["parameters"].get("identity")
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = f"missing {Path(error.filename).name}" if isinstance(error, FileNotFoundError) else str(error)
        return PhotoOutput(image, "failed", f"incomplete output in {folder}: {reason}")
    fit_png = folder / "fit.png"
    return PhotoOutput(image, "ok", "", folder, fitted, detected, rotation,
                       None if identity is None else _coefficients(identity), fit_png if fit_png.is_file() else None)


def read_outputs(out_dir: str | os.PathLike) -> list[PhotoOutput]:
    """Every photo of an output folder: the rows of OUT_DIR/summary.csv in their order, or, without a summary.csv,
    every complete photo folder (one holding ``DONE_MARKER``) named by its folder (the photo's stem).

    The "output" column of summary.csv is only used for its folder name, looked up inside ``out_dir``, so a moved
    output folder still reads.

    Raises:
        OutputsError: ``out_dir`` is missing, its summary.csv is malformed, or it holds no photo outputs.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise OutputsError(out_dir, "no such output folder")
    summary = out_dir / SUMMARY
    if not summary.is_file():
        folders = sorted(d for d in out_dir.iterdir() if (d / DONE_MARKER).is_file())
        if not folders:
            raise OutputsError(out_dir, f"no {SUMMARY} and no photo folders with {DONE_MARKER}; is this an output "
                                        "folder of 'python -m f2p reconstruct' or 'predict'?")
        return [read_photo_output(folder.name, folder) for folder in folders]
    try:
        rows = list(csv.DictReader(summary.open(newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise OutputsError(summary, f"cannot read ({error})") from None
    missing = {"image", "status", "error", "output"} - set(rows[0] if rows else {})
    if missing:
        raise OutputsError(summary, f"no photo rows with columns image, status, error, output (missing: "
                                    f"{', '.join(sorted(missing))})")
    outputs = []
    for row in rows:
        if row["status"] == "ok" and row["output"]:
            outputs.append(read_photo_output(row["image"], out_dir / Path(row["output"]).name))
        else:
            outputs.append(PhotoOutput(row["image"], "failed", row["error"] or "failed without a reason"))
    return outputs
