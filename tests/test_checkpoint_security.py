"""Checkpoints cannot steer imports: a regressor is rebuilt from f2p's own classes, whatever the file names; a
malicious or foreign checkpoint is one line and exit 2 wherever a user can hand one over."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch
from regressor_support import one_thread  # noqa: F401

from f2p.cli import main, run_lightning
from f2p.errors import ModelFileError
from f2p.systems.checkpoints import load_regressor

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "regressor.yaml"
EVIL = "f2p_test_evil_module"
TINY = ["--model.init_args.face_model", "procedural", "--data.init_args.face_model", "procedural",
        "--model.init_args.image_size", "32", "--data.init_args.image_size", "32", "--data.init_args.batch_size", "2",
        "--data.init_args.num_train", "2", "--data.init_args.num_val", "2", "--data.init_args.num_predict", "2",
        "--model.init_args.refiner.init_args.channels", "8", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    run_lightning(["fit", "--config", str(CONFIG), *TINY, "--trainer.max_steps", "1", "--trainer.logger",
                   "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root)])
    (path,) = root.glob("*/version_0/checkpoints/last.ckpt")
    return path


@pytest.fixture
def evil_module(tmp_path, monkeypatch) -> Path:
    """An importable module that leaves a marker file when it is imported."""
    marker = tmp_path / "imported"
    (tmp_path / f"{EVIL}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Net: pass\n"
                                         "def instantiate(*args, **kwargs): return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop(EVIL, None)


def rewritten(checkpoint: Path, target: Path, **changes) -> Path:
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    content["hyper_parameters"].update(changes)
    torch.save(content, target)
    return target


def test_a_checkpoint_loads_from_f2ps_own_classes(checkpoint):
    system = load_regressor(checkpoint)
    params = system.predict_params(torch.rand(1, 3, 32, 32), torch.rand(1, 68, 2) * 32)
    assert set(params) >= {"identity", "expression", "pose"} and not system.training


def test_named_instantiator_is_never_imported(checkpoint, tmp_path, evil_module):
    path = rewritten(checkpoint, tmp_path / "instantiator.ckpt", _instantiator=f"{EVIL}.instantiate",
                     _class_path=f"{EVIL}.Net")
    load_regressor(path)
    assert not evil_module.exists() and EVIL not in sys.modules


@pytest.mark.parametrize("role", ["encoder", "refiner", "renderer"])
def test_a_network_class_outside_the_allow_list_is_refused(checkpoint, tmp_path, evil_module, role):
    path = rewritten(checkpoint, tmp_path / f"{role}.ckpt", **{role: {"class_path": f"{EVIL}.Net", "init_args": {}}})
    with pytest.raises(ModelFileError, match="refusing to import"):
        load_regressor(path)
    assert not evil_module.exists() and EVIL not in sys.modules


def test_file_arguments_are_not_followed(checkpoint, tmp_path):
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    encoder = content["hyper_parameters"]["encoder"]
    encoder["init_args"]["weights"] = "/etc/passwd"  # would be read as a state dict
    path = tmp_path / "weights.ckpt"
    torch.save(content, path)
    assert load_regressor(path) is not None


def test_a_face_model_path_needs_the_callers_model(checkpoint, tmp_path):
    path = rewritten(checkpoint, tmp_path / "model.ckpt", face_model="/etc/some_model.npz")
    with pytest.raises(ModelFileError, match="not a registry name"):
        load_regressor(path)


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_reconstruct_init_with_a_malicious_pickle_is_one_line(tmp_path, capsys, faces_dir):
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    code = main(["reconstruct", str(faces_dir / "images" / "celeba_000002.jpg"), "--out", str(tmp_path / "out"),
                 "--model", "procedural", "--init", str(evil), "--no-identity"])
    captured = capsys.readouterr()
    assert code == 2 and "pwned" not in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "evil.ckpt" in err[0]


def test_predict_with_a_malicious_pickle_is_one_line(tmp_path, capsys):
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    code = main(["predict", "--config", str(CONFIG), *TINY, "--trainer.logger", "false", "--ckpt_path", str(evil),
                 "--trainer.callbacks.output_dir", str(tmp_path / "predictions")])
    captured = capsys.readouterr()
    assert code == 2 and "pwned" not in captured.out
    assert "evil.ckpt: not a checkpoint f2p can load" in captured.err
