"""What a new user meets in the first hour: fast help, sensible threads, feedback during a run, complete listings."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from f2p.cli import main
from f2p.commands.threads import choose_threads
from f2p.export.run_log import RunLog

REPO = Path(__file__).resolve().parents[1]
NO_TORCH = """
import sys
from f2p.cli import main
try:
    main({args!r})
except SystemExit:  # argparse's --help exits
    pass
assert "torch" not in sys.modules, "imported torch: " + ", ".join(m for m in sys.modules if m.startswith("f2p"))
"""


@pytest.mark.parametrize("args", [["--help"], ["reconstruct", "--help"], ["evaluate", "--help"],
                                  ["prepare", "--help"], ["model", "--help"]])
def test_help_does_not_import_torch(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", NO_TORCH.format(args=args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_every_command_takes_threads_and_refuses_negative_ones(capsys) -> None:
    for command in ("reconstruct", "evaluate", "prepare"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--threads N" in capsys.readouterr().out, command
    with pytest.raises(SystemExit) as refused:
        main(["reconstruct", "photo.jpg", "--out", "out", "--threads", "-1"])
    assert refused.value.code == 2 and "--threads" in capsys.readouterr().err


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: set ``machine(cores, load)``; the real count of CPUs is 64, which must not matter."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)

    def set_machine(cores: int, load: float) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    return set_machine


def test_requested_threads_win_over_the_environment_and_the_load(machine, monkeypatch) -> None:
    machine(2, 7.5)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(5).threads == 5
    assert choose_threads(None) == choose_threads(0)
    assert choose_threads(None).threads == 3 and "OMP_NUM_THREADS=3" in choose_threads(None).reason


def test_a_load_that_fills_the_cores_gives_one_thread(machine) -> None:
    machine(2, 2.4)
    choice = choose_threads(None)
    assert choice.threads == 1 and "load 2.4" in choice.reason
    machine(2, 0.1)
    assert choose_threads(None).threads == 2


def test_threads_come_from_the_cores_the_process_may_use(machine) -> None:
    machine(4, 0.0)
    assert choose_threads(None).threads == 4  # not os.cpu_count()'s 64
    machine(4, 1.2)
    assert choose_threads(None).threads == 3  # one core is taken by other work


def test_applied_threads_set_intra_and_inter_op_threads() -> None:
    code = ("import torch; from f2p.commands.threads import apply_threads; apply_threads(1); "
            "print(torch.get_num_threads(), torch.get_num_interop_threads())")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


def test_fit_log_has_rows_and_a_log_line_as_soon_as_the_first_stage_ends(tmp_path, faces_dir, monkeypatch,
                                                                         caplog) -> None:
    """Read fit_log.csv from disk, as `tail -f` would, when the second stage starts: the first stage is there."""
    seen: dict[str, list] = {}
    step = RunLog.step

    def spying_step(self, stage, *args, **kwargs):
        if seen.get("first", stage) != stage and "rows" not in seen:
            with (tmp_path / "out" / "fit_log.csv").open() as handle:
                seen["rows"] = list(csv.DictReader(handle))
            seen["lines"] = [record.getMessage() for record in caplog.records]
        seen.setdefault("first", stage)
        return step(self, stage, *args, **kwargs)

    monkeypatch.setattr(RunLog, "step", spying_step)
    photo = faces_dir / "images" / "celeba_000002.jpg"
    with caplog.at_level(logging.INFO, logger="f2p"):
        code = main(["reconstruct", str(photo), "--out", str(tmp_path / "out"), "--model", "procedural",
                     "--steps", "5", "--crop-size", "64", "--no-identity", "--landmarks", "dlib", "--threads", "1"])
    assert code == 0
    first = seen["first"]
    assert seen["rows"] and {row["stage"] for row in seen["rows"]} == {first}
    assert any(line.startswith(f"batch 1/1, stage {first}: ") and "mean loss" in line for line in seen["lines"])
    messages = [record.getMessage() for record in caplog.records]
    assert "threads: 1 (--threads 1), 1 inter-op" in messages
    stage_lines = [line for line in messages if line.startswith("batch 1/1, stage ")]
    stages = [row["stage"] for row in csv.DictReader((tmp_path / "out" / "fit_log.csv").open())]
    assert len(stage_lines) == len(dict.fromkeys(stages)) >= 2  # one line per stage, each with steps and seconds
    assert all(" steps in " in line and " s, mean loss " in line for line in stage_lines)


def test_model_ict_lists_every_expression_name(models_dir, monkeypatch, capsys) -> None:
    if not (models_dir / "ict_facekit").is_dir():
        pytest.skip(f"ICT FaceKit not found in {models_dir}")
    from f2p.morphable.registry import load_model

    monkeypatch.setenv("F2P_MODEL_PATH", str(models_dir))
    names = load_model("ict").groups["expression"].component_names
    assert main(["model", "ict"]) == 0
    out = capsys.readouterr().out
    assert len(names) == 53
    listed = {name.strip() for line in out.splitlines() if line.startswith("    ") for name in line.split(",")}
    assert set(names) <= listed
    assert "..." not in out


def test_prepare_out_naming_a_file_is_one_line(tmp_path, faces_dir, caplog) -> None:
    (tmp_path / "taken").write_text("a file")
    photo = faces_dir / "images" / "celeba_000002.jpg"
    with caplog.at_level(logging.ERROR, logger="f2p"):
        assert main(["prepare", str(photo), "--out", str(tmp_path / "taken"), "--detector", "dlib"]) == 2
    assert [record.getMessage() for record in caplog.records] == [f"--out {tmp_path / 'taken'}: exists and is not a "
                                                                  "folder"]
    assert (tmp_path / "taken").read_text() == "a file"


def test_evaluate_out_naming_a_file_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "taken").write_text("a file")
    assert main(["evaluate", str(tmp_path), "--annotations", str(tmp_path / "a.json"), "--out",
                 str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == f"f2p evaluate: --out {tmp_path / 'taken'}: exists and is not a folder\n"
