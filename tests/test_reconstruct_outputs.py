"""`reconstruct --outputs data`: the numbers and the mesh without the pictures, the same numbers as `--outputs all`,
and a rerun that asks for every file redoes the photo."""

import argparse
import json
import shutil

import pytest

from f2p.cli import main
from f2p.commands import reconstruct
from f2p.commands.clips import clip_options
from f2p.naming import output_name
from f2p.output_sets import DATA_FILES, OUTPUT_FILES

pytestmark = pytest.mark.slow

NUMBERS = ("landmark_rmse_px", "identity_similarity", "loss_landmark", "loss_photometric", "residual_worst_face")


def _reconstruct(photo, out, model_file, outputs: str, *options: str) -> int:
    return main(["reconstruct", str(photo), "--out", str(out), "--model", str(model_file), "--landmarks", "dlib",
                 "--quality", "fast", "--crop-size", "128", "--threads", "1", "--outputs", outputs, *options])


@pytest.fixture(scope="module")
def photo(tmp_path_factory, faces_dir):
    folder = tmp_path_factory.mktemp("outputs_photo")
    shutil.copy(faces_dir / "images" / "celeba_000002.jpg", folder / "face.jpg")
    return folder / "face.jpg"


@pytest.fixture(scope="module")
def model_file(models_dir):
    return models_dir / "ict_facekit" / "ict_facekit_light_v1_skin14062.npz"


def test_data_outputs_write_the_numbers_and_mesh_without_pictures(tmp_path, photo, model_file):
    assert _reconstruct(photo, tmp_path / "data", model_file, "data") == 0
    folder = tmp_path / "data" / output_name(photo)
    assert {p.name for p in folder.iterdir()} == set(DATA_FILES)
    assert sum(line.startswith("v ") for line in (folder / "mesh.obj").read_text().splitlines()) == 14062
    assert json.loads((folder / "metrics.json").read_text())["settings"]["outputs"] == "data"

    assert _reconstruct(photo, tmp_path / "all", model_file, "all") == 0
    every = tmp_path / "all" / output_name(photo)
    assert set(OUTPUT_FILES) <= {p.name for p in every.iterdir()}
    data, full = (json.loads((f / "metrics.json").read_text()) for f in (folder, every))
    for name in NUMBERS:  # what is measured does not depend on which files are written
        assert data[name] == pytest.approx(full[name], rel=1e-5), name
    params = [json.loads((f / "params.json").read_text())["parameters"]["expression"] for f in (folder, every)]
    assert params[0] == pytest.approx(params[1], abs=1e-6)


def test_a_fast_fit_without_pictures_or_identity_renders_nothing_and_fits_the_same(tmp_path, photo, model_file):
    assert _reconstruct(photo, tmp_path / "data", model_file, "data", "--no-identity") == 0
    assert _reconstruct(photo, tmp_path / "all", model_file, "all", "--no-identity") == 0
    data, full = (tmp_path / name / output_name(photo) for name in ("data", "all"))
    assert {p.name for p in data.iterdir()} == set(DATA_FILES)
    metrics = json.loads((data / "metrics.json").read_text())
    assert "loss_photometric" not in metrics and "identity_similarity" not in metrics  # nothing was rendered
    assert "loss_photometric" in json.loads((full / "metrics.json").read_text())
    fitted = [sum(json.loads((folder / "landmarks.json").read_text())["fitted"], []) for folder in (data, full)]
    assert fitted[0] == pytest.approx(fitted[1], abs=1e-4)  # the landmark fit never saw the render or the mask
    assert (data / "mesh.obj").read_text().splitlines()[2:] == (full / "mesh.obj").read_text().splitlines()[2:]


def test_asking_for_every_file_redoes_a_photo_written_with_data_outputs(tmp_path, photo, model_file, caplog):
    assert _reconstruct(photo, tmp_path, model_file, "data") == 0
    folder = tmp_path / output_name(photo)
    assert not (folder / "overlay.png").exists()
    with caplog.at_level("INFO", logger="f2p"):
        assert _reconstruct(photo, tmp_path, model_file, "all") == 0
    assert "other settings" in caplog.text
    assert {"overlay.png", "fit.png", "head.glb"} <= {p.name for p in folder.iterdir()}


def test_an_unknown_outputs_choice_is_refused_with_the_choices(tmp_path, photo, model_file, capsys):
    with pytest.raises(SystemExit) as stopped:
        _reconstruct(photo, tmp_path, model_file, "pictures")
    assert stopped.value.code == 2
    assert "all" in capsys.readouterr().err and not tmp_path.joinpath(output_name(photo)).exists()


@pytest.mark.parametrize("options, overlay", [((), True), (("--outputs", "data"), False), (("--no-overlay",), False)])
def test_a_clip_writes_its_overlay_video_only_with_every_output(options, overlay):
    parser = argparse.ArgumentParser()
    reconstruct.add_arguments(parser)
    args = parser.parse_args(["clip.mp4", "--out", "out", "--quality", "fast", *options])
    assert clip_options(args).overlay is overlay
