"""`reconstruct --init CHECKPOINT`: fitting starts from a trained regressor's prediction."""

import json
from pathlib import Path

import pytest
import torch

from f2p.cli import main, run_lightning
from f2p.naming import output_name

pytestmark = pytest.mark.slow
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "regressor.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("regressor")
    size = ["--model.init_args.image_size", "32", "--data.init_args.image_size", "32"]
    model = ["--model.init_args.face_model", "procedural", "--data.init_args.face_model", "procedural"]
    small = ["--data.init_args.batch_size", "2", "--data.init_args.num_train", "4", "--data.init_args.num_val", "2",
             "--model.init_args.refiner.init_args.channels", "8", "--trainer.enable_progress_bar", "false",
             "--trainer.max_steps", "2", "--trainer.default_root_dir", str(root), "--trainer.logger",
             "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root)]
    run_lightning(["fit", "--config", str(CONFIG), *model, *size, *small])
    (path,) = root.glob("*/version_0/checkpoints/last.ckpt")
    return path


def test_fit_starts_from_the_regressor(checkpoint, tmp_path, faces_dir):
    photo = faces_dir / "images" / "celeba_000002.jpg"
    code = main(["reconstruct", str(photo), "--out", str(tmp_path), "--model", "procedural", "--init", str(checkpoint),
                 "--landmarks", "dlib", "--steps", "20", "--crop-size", "64", "--no-identity"])
    assert code == 0
    metrics = json.loads((tmp_path / output_name(photo) / "metrics.json").read_text())
    assert metrics["landmark_rmse_px"] > 0


def test_a_regressor_of_another_model_is_refused_in_one_line(checkpoint, tmp_path, capsys, faces_dir, models_dir):
    photo = faces_dir / "images" / "celeba_000002.jpg"
    model = models_dir / "sfm_3448"
    code = main(["reconstruct", str(photo), "--out", str(tmp_path), "--model", str(model), "--init", str(checkpoint)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "procedural" in err[0] and str(checkpoint) in err[0]


def test_an_unreadable_or_incompatible_checkpoint_is_refused_in_one_line(checkpoint, tmp_path, capsys, faces_dir):
    photo = faces_dir / "images" / "celeba_000002.jpg"
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    content["state_dict"] = {f"old_{key}": value for key, value in content["state_dict"].items()}
    renamed = tmp_path / "other_networks.ckpt"
    torch.save(content, renamed)
    for path in (junk, renamed, tmp_path / "missing.ckpt"):
        code = main(["reconstruct", str(photo), "--out", str(tmp_path / "out"), "--model", "procedural",
                     "--init", str(path)])
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0], err
