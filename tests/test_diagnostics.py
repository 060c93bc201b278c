"""Fit diagnostics (f2p.export.diagnostics): per-region residuals in metrics.json, the doubtful flag in summary.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from f2p import conventions as C
from f2p.cli import main
from f2p.export.diagnostics import (DOUBTFUL_RESIDUAL, MAX_OUTSIDE_FRACTION, MIN_RELIABLE_FACE_PX, landmarks_outside,
                                   region_residuals)
from f2p.export.photo import PhotoOutcome
from f2p.export.summary import summary_row


def face() -> torch.Tensor:
    """(68, 2) landmarks spread over a 100 x 100 px box."""
    points = torch.rand(68, 2, generator=torch.Generator().manual_seed(0)) * 100
    points[0], points[16] = torch.tensor([0.0, 0.0]), torch.tensor([100.0, 100.0])
    return points


def test_every_point_is_in_exactly_one_region():
    rows = sorted(i for region in C.LANDMARK_REGIONS.values() for i in region)
    assert rows == list(range(C.NUM_LANDMARKS))


def test_a_misfitted_mouth_shows_in_the_mouth_residual_only():
    detected = face()
    fitted = detected.clone()
    fitted[list(C.OUTER_LIPS + C.INNER_LIPS)] += torch.tensor([3.0, 4.0])  # 5 px off
    residuals = region_residuals(fitted, detected)
    assert abs(residuals["residual_mouth_px"] - 5.0) < 1e-5
    assert abs(residuals["residual_mouth_face"] - 0.05) < 1e-6  # the box is 100 px
    assert all(residuals[f"residual_{r}_px"] == 0 for r in ("jaw", "brows", "eyes", "nose"))
    assert residuals["residual_worst_face"] == residuals["residual_mouth_face"]


def test_summary_flags_a_fit_whose_worst_region_is_off():
    detected = face()
    rows = {}
    for name, shift in (("good", 1.0), ("bad", 100 * DOUBTFUL_RESIDUAL + 2.0)):
        fitted = detected.clone()
        fitted[list(C.JAW)] += shift
        metrics = region_residuals(fitted, detected) | {"landmark_rmse_px": 1.0}
        rows[name] = summary_row(PhotoOutcome(name, "ok", "", metrics))
    failed = summary_row(PhotoOutcome("broken", "failed", "no face found", {}))
    assert (rows["good"]["doubtful"], rows["bad"]["doubtful"], failed["doubtful"]) == ("no", "yes", "")


def test_summary_flags_a_face_too_small_to_trust_even_when_the_fit_follows_it():
    for scale, flagged in ((0.3, "yes"), (1.0, "no")):  # 30 and 100 px faces, fitted exactly onto their points
        detected = face() * scale
        metrics = region_residuals(detected.clone(), detected) | {"landmark_rmse_px": 0.0}
        assert abs(metrics["face_size_px"] - 100 * scale) < 1e-4
        assert summary_row(PhotoOutcome("f", "ok", "", metrics))["doubtful"] == flagged
    assert 30 < MIN_RELIABLE_FACE_PX <= 100
    old = region_residuals(face(), face()) | {"face_size_px": None}  # metrics written before face_size_px
    assert summary_row(PhotoOutcome("f", "ok", "", old))["doubtful"] == "no"


def test_landmarks_outside_the_photo_are_counted():
    points = torch.tensor([[-0.4, 0.0], [-0.6, 5.0], [9.4, 9.6], [5.0, 5.0]])
    assert landmarks_outside(points, (10, 10)) == 0.5  # x -0.6 and y 9.6 lie beyond the pixels' edges


def test_a_face_cut_off_by_the_photo_border_is_doubtful(tmp_path, faces_dir, models_dir):
    from PIL import Image

    photo = Image.open(faces_dir / "images" / "aflw2000_image00050.jpg").convert("RGB")
    width, height = photo.size
    photo.save(tmp_path / "whole.png")
    photo.crop((0, height // 2, width, height)).save(tmp_path / "eyes_cut_off.png")  # the detector guesses the eyes
    out = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path / "whole.png"), str(tmp_path / "eyes_cut_off.png"), "--out", str(out),
                 "--model", "procedural", "--quality", "fast", "--crop-size", "64", "--no-identity",
                 "--outputs", "data"]) == 0
    metrics = {path.parent.name.rsplit("-", 1)[0]: json.loads(path.read_text()) for path in out.glob("*/metrics.json")}
    assert metrics["whole"]["landmarks_outside"] == 0.0
    assert metrics["eyes_cut_off"]["landmarks_outside"] > MAX_OUTSIDE_FRACTION
    rows = {Path(row["image"]).stem: row for row in csv.DictReader((out / "summary.csv").open())}
    assert rows["eyes_cut_off"]["doubtful"] == "yes"
