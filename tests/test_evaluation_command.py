"""`python -m f2p evaluate` on a tiny fake output folder and on synthetic faces of the procedural model."""

import csv
import json
import math

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from f2p.cli import main
from f2p.conventions import MODEL_TO_OPENCV
from f2p.evaluation.outputs import read_outputs
from f2p.evaluation.pose import aflw2000_head_rotation
from f2p.evaluation.truth import read_ground_truth, truth_matcher

AFLW_POSE_DEG = (10.0, -40.0, 5.0)  # pitch, yaw, roll as in Pose_Para
VISIBLE = "visible-contour"


def face_points() -> np.ndarray:
    """(68, 2) 0-based points, box 40 x 10 px (sqrt(w*h) = 20), spread so that the photo is annotated."""
    points = np.stack([np.linspace(100.0, 140.0, 68), 100.0 + 10.0 * (np.arange(68) % 2)], axis=1)
    return points


def write_photo(out, stem: str, fitted: np.ndarray, R_head: torch.Tensor, identity: list[float]) -> None:
    folder = out / stem
    folder.mkdir(parents=True)
    (folder / "landmarks.json").write_text(json.dumps({"detected": fitted.tolist(), "fitted": fitted.tolist()}))
    R_camera = (MODEL_TO_OPENCV @ R_head).tolist()
    (folder / "params.json").write_text(json.dumps({"model": "procedural", "parameters": {"identity": identity},
                                                    "camera": {"R": R_camera}}))
    Image.new("RGB", (96, 32), (200, 100, 50)).save(folder / "fit.png")
    (folder / "metrics.json").write_text("{}")


@pytest.fixture
def fake_run(tmp_path):
    """OUT_DIR with two fitted photos and one failed one, and an annotations.json for all three."""
    out = tmp_path / "out"
    points = face_points()
    R_head = aflw2000_head_rotation(torch.tensor(AFLW_POSE_DEG))
    write_photo(out, "aflw2000_image00001", points, R_head, [1.0, 0.0])
    write_photo(out, "lfpw_image_0001", points + np.array([0.3, 0.4]), torch.eye(3), [0.0, 1.0])
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "status", "error", "landmark_rmse_px", "identity_similarity", "seconds", "output"])
        writer.writerow(["photos/aflw2000_image00001.jpg", "ok", "", "", "", "", "/elsewhere/aflw2000_image00001"])
        writer.writerow(["photos/lfpw_image_0001.png", "ok", "", "", "", "", "/elsewhere/lfpw_image_0001"])
        writer.writerow(["photos/menpo_x.jpg", "failed", "no face found (detector dlib-hog)", "", "", "", ""])
    # annotations.json keeps the 1-based source values of these families (origin 1): +1 here, -1 on reading
    markups = {"aflw2000_image00001.jpg": ("aflw2000-3d", "3d-consistent"), "lfpw_image_0001.png": ("300w", VISIBLE),
               "menpo_x.jpg": ("menpo", VISIBLE)}
    entries = {f"images/{name}": {"width": 200, "height": 200, "markup": markup, "origin": 1, "jaw": jaw,
                                  "lm68": (points + 1.0).tolist()} for name, (markup, jaw) in markups.items()}
    entries["images/aflw2000_image00001.jpg"]["pose_pitch_yaw_roll_rad"] = [math.radians(a) for a in AFLW_POSE_DEG]
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "annotations.json").write_text(json.dumps(entries))
    return out, faces / "annotations.json"


def test_evaluate_scores_a_fake_output_folder(fake_run, capsys):
    out, annotations = fake_run
    assert main(["evaluate", str(out), "--annotations", str(annotations)]) == 0
    report = json.loads((out / "evaluation" / "report.json").read_text())["summary"]
    landmarks = report["landmarks"]
    assert landmarks["3d-contour"]["nme68_box"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert landmarks["visible-contour"]["nme68_box"]["mean"] == pytest.approx(0.5 / 20, rel=1e-4)
    assert (landmarks["visible-contour"]["count"], landmarks["visible-contour"]["failed"]) == (2, 1)
    assert report["pose"]["pose_error_deg"]["mean"] == pytest.approx(0.0, abs=0.05)
    assert report["failures"] == [{"image": "photos/menpo_x.jpg", "error": "no face found (detector dlib-hog)"}]
    rows = list(csv.DictReader((out / "evaluation" / "report.csv").open()))
    assert [row["status"] for row in rows] == ["ok", "ok", "failed"]
    assert float(rows[0]["gt_yaw_deg"]) == pytest.approx(float(rows[0]["yaw_deg"]), abs=1e-3)
    for figure in ("ced.png", "per_photo.png", "worst_fits.png"):
        with Image.open(out / "evaluation" / figure) as image:
            assert image.width > 600 and image.height > 250  # legible, not a thumbnail
    printed = capsys.readouterr().out
    assert "visible-contour" in printed and "menpo_x.jpg: no face found" in printed


def test_entries_without_markup_are_scored_under_a_generic_family(fake_run):
    """The markup family comes from the entry, not from the file name: an entry that names none is "other"."""
    out, annotations = fake_run
    entries = json.loads(annotations.read_text())
    for entry in entries.values():
        del entry["markup"], entry["jaw"]
    annotations.write_text(json.dumps(entries))
    assert main(["evaluate", str(out), "--annotations", str(annotations), "--out", str(out / "report")]) == 0
    summary = json.loads((out / "report" / "report.json").read_text())["summary"]
    assert set(summary["families"]) == {"other"} and summary["families"]["other"]["count"] == 3
    assert summary["landmarks"]["visible-contour"]["nme68_box"]["mean"] == pytest.approx(0.5 / 20 / 2, rel=1e-4)


def test_a_malformed_annotations_json_is_a_one_line_error_naming_the_entry(fake_run, capsys):
    out, annotations = fake_run
    entries = json.loads(annotations.read_text())
    entries["images/lfpw_image_0001.png"]["lm68"] = entries["images/lfpw_image_0001.png"]["lm68"][:3]
    annotations.write_text(json.dumps(entries))
    assert main(["evaluate", str(out), "--annotations", str(annotations)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{annotations}: entry 'images/lfpw_image_0001.png': lm68: expected 68x2 points" in error


def test_outputs_without_summary_are_read_from_their_folders(fake_run):
    out, annotations = fake_run
    (out / "summary.csv").unlink()  # e.g. a predict run: photo folders only, matched by stem
    assert main(["evaluate", str(out), "--annotations", str(annotations), "--out", str(out / "report")]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    assert [item["image"] for item in report["items"]] == ["aflw2000_image00001", "lfpw_image_0001"]
    assert report["summary"]["landmarks"]["visible-contour"]["nme68_box"]["mean"] == pytest.approx(0.025, rel=1e-4)


def test_an_incomplete_photo_folder_is_a_failure_with_its_reason(fake_run):
    out, _ = fake_run
    (out / "lfpw_image_0001" / "landmarks.json").unlink()
    outputs = {o.name: o for o in read_outputs(out)}
    assert outputs["lfpw_image_0001.png"].status == "failed"
    assert outputs["lfpw_image_0001.png"].error.endswith("lfpw_image_0001: missing landmarks.json")
    assert outputs["aflw2000_image00001.jpg"].status == "ok"


def test_evaluate_reads_folders_of_pts_and_mat_files(tmp_path):
    points = face_points()
    (tmp_path / "image_0001.pts").write_text(
        "version: 1\nn_points: 68\n{\n" + "".join(f"{x + 1} {y + 1}\n" for x, y in points) + "}\n")
    scipy.io.savemat(tmp_path / "image00002.mat", {
        "pt3d_68": np.concatenate([points.T + 1.0, np.zeros((1, 68))]),
        "Pose_Para": np.array([[math.radians(a) for a in AFLW_POSE_DEG] + [0.0, 0.0, 0.0, 1.0]])})
    match = truth_matcher(read_ground_truth(tmp_path))
    assert match("photos/image_0001.jpg").annotation.family == "ibug-pts"
    assert match("image_0003.jpg") is None
    matched = match("image00002.png").annotation
    assert matched.contour_3d and matched.pose_deg == pytest.approx(AFLW_POSE_DEG)
    assert np.allclose(matched.points.numpy(), points, atol=1e-4)


@pytest.mark.parametrize("problem", ["missing out dir", "unreadable annotations", "no matching photo",
                                     "no annotations"])
def test_evaluate_errors_name_the_file_and_the_problem(fake_run, tmp_path, capsys, problem):
    out, annotations = fake_run
    args = {"missing out dir": [str(tmp_path / "nowhere"), "--annotations", str(annotations)],
            "unreadable annotations": [str(out), "--annotations", str(annotations)],
            "no matching photo": [str(out), "--annotations", str(tmp_path / "other.pts")],
            "no annotations": [str(out)]}[problem]
    if problem == "unreadable annotations":
        annotations.write_text("{not json")
    if problem == "no matching photo":
        (tmp_path / "other.pts").write_text(
            "version: 1\nn_points: 68\n{\n" + "".join(f"{x} {y}\n" for x, y in face_points()) + "}\n")
    assert main(["evaluate", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("f2p evaluate: ") and len(error.splitlines()) == 1
    expected = {"missing out dir": "nowhere: no such output folder", "unreadable annotations": "annotations.json",
                "no matching photo": "no photo of", "no annotations": "--annotations"}[problem]
    assert expected in error
