"""`python -m f2p fit|test|predict --config configs/regressor*.yaml`: configs parse and run, checkpoints round-trip
with weights_only loading, predict writes reconstruct's outputs, DDP on two CPU processes."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from f2p.cli import main, run_lightning
from f2p.data import batch as keys
from f2p.output_sets import OUTPUT_FILES
from f2p.naming import output_name
from f2p.systems.checkpoints import load_regressor
from regressor_support import one_thread, write_annotation_cache  # noqa: F401 (autouse fixture)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("regressor*.yaml"))
SYNTHETIC = REPO / "configs" / "regressor.yaml"
PHOTOS = REPO / "configs" / "regressor_photos.yaml"


def tiny(face_model: str = "procedural", size: int = 32) -> list[str]:
    """Overrides for a small synthetic run of configs/regressor.yaml."""
    return ["--model.init_args.face_model", face_model, "--data.init_args.face_model", face_model,
            "--model.init_args.image_size", str(size), "--data.init_args.image_size", str(size),
            "--data.init_args.batch_size", "2", "--data.init_args.num_train", "4", "--data.init_args.num_val", "2",
            "--data.init_args.num_test", "2", "--data.init_args.num_predict", "2",
            "--model.init_args.refiner.init_args.channels", "8", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "f2p.systems.regressor.RegressorSystem"
    assert printed["trainer"]["logger"]["init_args"]["offline"] is True
    assert printed["model"]["init_args"]["image_size"] == printed["data"]["init_args"]["image_size"]


def test_synthetic_config_fast_dev_run(models_dir, monkeypatch):
    monkeypatch.setenv("F2P_MODEL_PATH", str(models_dir))
    cli = run_lightning(["fit", "--config", str(SYNTHETIC), "--trainer.fast_dev_run", "1",
                         "--data.init_args.batch_size", "2", "--trainer.enable_progress_bar", "false"])
    assert cli.model.face_model.name == "ict" and cli.trainer.state.finished


def test_photo_config_fast_dev_run_and_predict(tmp_path, faces_dir, models_dir, monkeypatch):
    monkeypatch.setenv("F2P_MODEL_PATH", str(models_dir))
    write_annotation_cache(faces_dir, tmp_path / "photos", tmp_path / "prepared")
    common = ["--config", str(PHOTOS), "--trainer.fast_dev_run", "1", "--trainer.enable_progress_bar", "false",
              "--data.init_args.photos", f"[{tmp_path / 'photos'}]", "--data.init_args.prepared",
              str(tmp_path / "prepared"), "--data.init_args.batch_size", "2", "--data.init_args.num_workers", "0",
              "--model.init_args.image_size", "64", "--data.init_args.image_size", "64",
              "--model.init_args.face_model", "procedural"]
    cli = run_lightning(["fit", *common])
    assert cli.model.objective.embedder is not None  # identity on the refined portrait is on for photos
    checkpoint = tmp_path / "photos.ckpt"
    cli.trainer.save_checkpoint(checkpoint)  # fast_dev_run writes none
    out = tmp_path / "predictions"
    # the config's last callback is its PredictionWriter
    run_lightning(["predict", *common, "--ckpt_path", str(checkpoint), "--trainer.callbacks.output_dir", str(out),
                   "--trainer.callbacks.crop_size", "96"])
    written = [d for d in out.iterdir() if d.is_dir()]
    assert len(written) == 2  # one batch of two photos
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert sorted(Path(r["output"]).name for r in rows) == sorted(d.name for d in written)
    assert {r["status"] for r in rows} == {"ok"}
    for folder in written:
        assert all((folder / name).is_file() for name in OUTPUT_FILES), folder
        assert folder.name in {output_name(photo) for photo in (tmp_path / "photos").iterdir()}  # as reconstruct's
        metrics = yaml.safe_load((folder / "metrics.json").read_text())
        assert metrics["method"] == "regressor" and "identity_similarity" in metrics


def test_checkpoint_round_trip_and_predict(tmp_path):
    csv_logger = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(tmp_path)]
    cli = run_lightning(["fit", "--config", str(SYNTHETIC), *tiny(), "--trainer.max_steps", "2", *csv_logger])
    (run,) = tmp_path.glob("*/version_0")
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file() and list((run / "checkpoints").glob("best-*.ckpt"))
    assert list((run / "renders").glob("*.png"))  # the picture grid, without W&B
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)  # plain data only
    assert not [k for k in content["state_dict"] if k.startswith(("face_model.", "objective."))]
    assert content["hyper_parameters"]["_class_path"] == "f2p.systems.regressor.RegressorSystem"

    loaded = load_regressor(checkpoint)
    trained = cli.model.eval()
    batch = next(iter(cli.datamodule.val_dataloader()))
    expected = trained.predict_params(batch[keys.IMAGE], batch[keys.LANDMARKS])
    got = loaded.predict_params(batch[keys.IMAGE], batch[keys.LANDMARKS])
    assert all(torch.allclose(expected[g], got[g]) for g in expected)
    assert not loaded.training

    out = tmp_path / "predictions"
    run_lightning(["predict", "--config", str(SYNTHETIC), *tiny(), *csv_logger,
                   "--ckpt_path", str(checkpoint), "--trainer.callbacks.output_dir", str(out)])
    written = sorted(d.name for d in out.iterdir() if d.is_dir())
    assert len(written) == 2 and (out / "summary.csv").is_file() and all((out / name / "params.json").is_file() for name in written)


def test_predict_refuses_a_checkpoint_naming_a_foreign_class(tmp_path, capsys, monkeypatch):
    """LightningCLI rebuilds the model from a checkpoint's hyper-parameters; f2p's CLI imports only its own
    networks from them (the rules of ``f2p.systems.checkpoints``)."""
    run_lightning(["fit", "--config", str(SYNTHETIC), *tiny(), "--trainer.max_steps", "1", "--trainer.logger",
                   "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(tmp_path)])
    (checkpoint,) = tmp_path.glob("*/version_0/checkpoints/last.ckpt")
    marker = tmp_path / "imported"
    (tmp_path / "f2p_test_foreign.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Net: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    content["hyper_parameters"]["encoder"] = {"class_path": "f2p_test_foreign.Net", "init_args": {}}
    foreign = tmp_path / "foreign.ckpt"
    torch.save(content, foreign)
    code = main(["predict", "--config", str(SYNTHETIC), *tiny(), "--trainer.logger", "false", "--ckpt_path",
                 str(foreign), "--trainer.callbacks.output_dir", str(tmp_path / "predictions")])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "foreign.ckpt" in line and "refusing to import" in line
    assert not marker.exists() and "f2p_test_foreign" not in sys.modules


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_with_offline_wandb(tmp_path):
    command = [sys.executable, "-m", "f2p", "fit", "--config", str(SYNTHETIC), *tiny(), "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "2",
               "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path)]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("f2p/*/checkpoints/last.ckpt")), "checkpoint written"
    assert list((tmp_path / "wandb").glob("offline-run-*")), "W&B ran offline"
    assert (tmp_path / "config.yaml").is_file()
