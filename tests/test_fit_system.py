"""`python -m f2p fit --config configs/fit.yaml`: LightningCLI front door of per-photo fitting."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from f2p.cli import main
from f2p.data.photo_module import PhotoDataModule
from f2p.naming import output_name

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "fit.yaml"


def test_photos_are_sharded_without_loss_or_repeats(tmp_path):
    for i in range(5):
        (tmp_path / f"p{i}.jpg").write_bytes(b"")
    seen = []
    for rank in range(2):
        module = PhotoDataModule(images=[str(tmp_path)], batch_size=2)
        module.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        module.setup("fit")
        seen += [(path, name) for batch in module.train_dataloader() for path, name in zip(batch.paths, batch.names)]
    assert sorted(path.name for path, _ in seen) == [f"p{i}.jpg" for i in range(5)]  # every photo once
    assert sorted(name for _, name in seen) == sorted(output_name(tmp_path / f"p{i}.jpg") for i in range(5))


def test_fit_config_parses(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIG), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "f2p.systems.fitting.FittingSystem"
    assert printed["trainer"]["use_distributed_sampler"] is False


@pytest.mark.slow
def test_fit_runs_on_two_processes_and_writes_every_photo_once(tmp_path, models_dir, faces_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("celeba_000002.jpg", "celeba_000006.jpg", "celeba_000007.jpg"):
        shutil.copy(faces_dir / "images" / name, photos / name)
    (photos / "broken.jpg").write_text("not a photo")
    out = tmp_path / "out"
    env = dict(os.environ, F2P_MODEL_PATH=str(models_dir), WANDB_MODE="offline", WANDB_SILENT="true")
    command = [sys.executable, "-m", "f2p", "fit", "--config", str(CONFIG), "--data.images", f"[{photos}]",
               "--model.output_dir", str(out), "--trainer.logger.init_args.save_dir", str(out),
               "--model.crop_size", "96", "--data.crop_size", "96", "--data.batch_size", "1",
               "--model.identity", "false", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
               "--model.stages", '[{"name": "rigid", "steps": 30, "groups": ["pose", "translation"]}]']
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # broken.jpg failed
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert sorted(Path(r["image"]).name for r in rows) == ["broken.jpg", "celeba_000002.jpg", "celeba_000006.jpg",
                                                           "celeba_000007.jpg"]
    status = {Path(r["image"]).name: r["status"] for r in rows}
    assert status.pop("broken.jpg") == "failed" and set(status.values()) == {"ok"}
    for name in status:
        assert (out / output_name(photos / name) / "params.json").is_file()
    assert (out / "config.yaml").is_file()  # the resolved config is saved with the run
    assert list((out / "wandb").glob("offline-run-*")), "W&B ran offline"
