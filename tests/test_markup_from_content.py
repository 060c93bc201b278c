"""An annotations file of the user's own photos (any file name, entries named anything, no ``markup`` key) works
for `evaluate --annotations` and `reconstruct --landmarks`: markup families come from the entries, never from the
shared photo set's file-name prefixes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from test_evaluation_command import face_points, write_photo

from f2p.cli import main
from f2p.perception.photo import LandmarkFile

PHOTOS = ("holiday 2019.jpg", "kid.png")


def own_annotations(path: Path, points: np.ndarray) -> Path:
    """``path``: a face-set JSON of PHOTOS with 68 points each (0-based, no markup, no jaw)."""
    entries = {f"pictures/{name}": {"width": 200, "height": 200, "lm68": points.tolist()} for name in PHOTOS}
    path.write_text(json.dumps(entries))
    return path


def test_evaluate_scores_photos_of_any_name_under_the_generic_family(tmp_path) -> None:
    out, points = tmp_path / "out", face_points()
    for name in PHOTOS:
        write_photo(out, Path(name).stem, points + 0.5, torch.eye(3), [0.0, 1.0])
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "status", "error", "landmark_rmse_px", "identity_similarity", "seconds", "output"])
        writer.writerows([f"pictures/{name}", "ok", "", "", "", "", str(out / Path(name).stem)] for name in PHOTOS)
    marks = own_annotations(tmp_path / "my_marks.json", points)
    assert main(["evaluate", str(out), "--annotations", str(marks)]) == 0
    summary = json.loads((out / "evaluation" / "report.json").read_text())["summary"]
    assert set(summary["families"]) == {"other"} and summary["families"]["other"]["count"] == len(PHOTOS)
    assert summary["landmarks"]["all-68"]["count"] == len(PHOTOS)


def test_reconstruct_landmarks_from_a_file_of_any_name(tmp_path) -> None:
    points = face_points()
    marks = LandmarkFile(own_annotations(tmp_path / "my_marks.json", points),
                         [tmp_path / name for name in PHOTOS])
    for name in PHOTOS:
        assert torch.equal(marks.landmarks_for(tmp_path / name), torch.as_tensor(points, dtype=torch.float32))
