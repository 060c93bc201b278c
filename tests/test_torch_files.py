"""Torch files f2p did not write are read weights-only, and any file that is not one is one line naming it."""

import os
import pickle

import pytest
import torch

from f2p.errors import ModelFileError
from f2p.perception.identity.arcface import ArcFaceEmbedder
from f2p.pretrained import torchvision_state_dict
from f2p.torch_files import read_weights_only


class _RunsCode:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _bad_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("junk\n")  # torch's weights-only unpickler fails with a KeyError on these bytes
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    code = tmp_path / "code.pt"
    code.write_bytes(pickle.dumps(_RunsCode(str(tmp_path / "ran"))))
    return [junk, empty, code]


def test_a_file_that_is_no_weights_file_is_one_line_naming_it_and_runs_no_code(tmp_path) -> None:
    for path in _bad_files(tmp_path):
        with pytest.raises(ModelFileError) as caught:
            read_weights_only(path, "a weights file")
        message = str(caught.value)
        assert message.startswith(f"{path}: not a weights file f2p can load") and "\n" not in message
    assert not (tmp_path / "ran").exists()


def test_tensors_and_plain_containers_are_read(tmp_path) -> None:
    path = tmp_path / "state.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, path)
    content = read_weights_only(path, "a checkpoint")
    assert content["epoch"] == 3 and torch.equal(content["state_dict"]["w"], torch.ones(2))


def test_pretrained_encoder_and_arcface_weights_report_a_bad_file_in_one_line(tmp_path) -> None:
    for path in _bad_files(tmp_path):
        for load in (lambda p: torchvision_state_dict("resnet18", str(p)), ArcFaceEmbedder.from_file):
            with pytest.raises(ModelFileError, match=f"^{path}: not an? .* f2p can load"):
                load(path)
    listed = tmp_path / "list.pt"
    torch.save([torch.ones(1)], listed)
    with pytest.raises(ModelFileError, match="not a state dict of resnet18 weights"):
        torchvision_state_dict("resnet18", str(listed))
    assert not (tmp_path / "ran").exists()
