"""`--quality fast|default|best`: the schedule a user picks is the one that runs, recorded, and redone when changed."""

import csv
import json
import logging

import pytest

from f2p.cli import main
from f2p.fitting import schedule_for
from f2p.naming import output_name


def _stages(out) -> list[str]:
    return list(dict.fromkeys(row["stage"] for row in csv.DictReader((out / "fit_log.csv").open())))


def test_the_chosen_quality_runs_is_recorded_and_a_change_redoes_the_photo(tmp_path, faces_dir, caplog) -> None:
    photo = faces_dir / "images" / "celeba_000002.jpg"
    out = tmp_path / "out"
    args = ["reconstruct", str(photo), "--out", str(out), "--model", "procedural", "--crop-size", "64",
            "--no-identity", "--landmarks", "dlib", "--threads", "1"]
    assert main([*args, "--quality", "fast"]) == 0
    assert _stages(out) == [stage.name for stage in schedule_for("fast")]  # the solver stages, no render
    metrics = json.loads((out / output_name(photo) / "metrics.json").read_text())
    assert metrics["settings"]["quality"] == "fast"
    assert metrics["settings"]["steps"] == sum(stage.steps for stage in schedule_for("fast"))
    with caplog.at_level(logging.INFO, logger="f2p"):
        assert main([*args, "--quality", "default", "--steps", "20"]) == 0
    assert any(record.getMessage().startswith("redoing ") for record in caplog.records)
    assert "shading" in _stages(out)
    metrics = json.loads((out / output_name(photo) / "metrics.json").read_text())
    assert metrics["settings"]["quality"] == "default"


def test_an_unknown_quality_is_one_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstruct", "photo.jpg", "--out", "out", "--quality", "ultra"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'ultra'" in capsys.readouterr().err


def test_the_fitting_system_takes_the_quality_and_refuses_an_unknown_one() -> None:
    from f2p.systems.fitting import FittingSystem

    system = FittingSystem(model="procedural", quality="fast", identity=False)
    assert [stage.name for stage in system.stages] == [stage.name for stage in schedule_for("fast")]
    with pytest.raises(ValueError, match="unknown fitting quality"):
        FittingSystem(model="procedural", quality="ultra", identity=False)
