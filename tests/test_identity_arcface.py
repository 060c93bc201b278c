"""Optional ArcFace backbone (arcface_torch IResNet) with random weights saved by the test, and the factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from f2p.perception.identity import (
    ArcFaceEmbedder,
    DlibFaceEmbedder,
    ModelFileError,
    create_embedder,
    extract_arcface_chips,
)
from f2p.perception.identity.arcface import ARCFACE_TEMPLATE_112, IRESNET_LAYERS, IResNet


@pytest.fixture(scope="module")
def random_iresnet50() -> IResNet:
    torch.manual_seed(0)
    network = IResNet(IRESNET_LAYERS["iresnet50"])
    with torch.no_grad():  # non-trivial batch-norm statistics, so that eval mode matters
        for module in network.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return network.eval()


@pytest.fixture(scope="module")
def weights_file(random_iresnet50: IResNet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(random_iresnet50.state_dict(), path)
    yield path
    path.unlink()  # 175 MB


def test_state_dict_round_trip_by_name(random_iresnet50: IResNet, weights_file: Path) -> None:
    embedder = create_embedder("arcface", weights_file)
    assert isinstance(embedder, ArcFaceEmbedder)
    assert IResNet.layers_of(embedder.network.state_dict()) == (3, 4, 14, 3)
    assert sum(p.numel() for p in embedder.parameters()) == pytest.approx(43.59e6, rel=1e-3)  # iresnet50
    chips = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        out = embedder(chips)
        expected = random_iresnet50(chips * 2 - 1)
    assert out.shape == (2, 512)
    assert torch.equal(out, expected)


def test_iresnet100_depth_is_read_from_the_keys() -> None:
    assert IResNet.layers_of(IResNet(IRESNET_LAYERS["iresnet100"]).state_dict()) == (3, 13, 30, 3)


def _landmarks_on_template() -> torch.Tensor:
    """(1, 68, 2) landmarks whose eye rings, nose tip and mouth corners sit exactly on the ArcFace template."""
    template = torch.tensor(ARCFACE_TEMPLATE_112)
    landmarks = torch.zeros(1, 68, 2)
    landmarks[0, 36:42] = template[0]
    landmarks[0, 42:48] = template[1]
    landmarks[0, 30], landmarks[0, 48], landmarks[0, 54] = template[2], template[3], template[4]
    return landmarks


def test_a_face_on_the_template_is_copied_pixel_for_pixel() -> None:
    image = torch.rand(1, 3, 112, 112)
    assert torch.allclose(extract_arcface_chips(image, _landmarks_on_template()), image, atol=1e-4)


def test_gradients_reach_the_image_and_landmarks_and_eval_mode_sticks(weights_file: Path) -> None:
    embedder = ArcFaceEmbedder.from_file(weights_file)
    embedder.train()  # e.g. a LightningModule switching to training: batch norms must keep their statistics
    assert not embedder.training and not embedder.network.features.training
    image = (torch.rand(1, 3, 160, 140) * 0.8 + 0.1).requires_grad_(True)
    landmarks = (_landmarks_on_template() * 1.2 + 5.0).requires_grad_(True)
    target = torch.randn(1, 512)
    loss = 1 - embedder.identity_similarity(embedder.embed(image, landmarks), target).sum()
    loss.backward()
    assert image.grad is not None and image.grad.isfinite().all() and image.grad.abs().sum() > 0
    assert landmarks.grad is not None and landmarks.grad.isfinite().all() and landmarks.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in embedder.parameters())


class _NotATensor:
    pass


def test_bad_weight_files_are_rejected(tmp_path: Path) -> None:
    pickled_object = tmp_path / "object.pth"
    torch.save({"conv1.weight": _NotATensor()}, pickled_object)
    with pytest.raises(ModelFileError, match="object.pth: not an arcface_torch backbone state dict f2p can load"):
        ArcFaceEmbedder.from_file(pickled_object)
    other_network = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), other_network)
    with pytest.raises(ModelFileError, match="not an arcface_torch IResNet state dict"):
        ArcFaceEmbedder.from_file(other_network)
    with pytest.raises(ModelFileError, match=r"missing.pth: no such file \(expected an arcface_torch backbone state dict\)"):
        ArcFaceEmbedder.from_file(tmp_path / "missing.pth")


def test_factory_names() -> None:
    assert isinstance(create_embedder("dlib"), DlibFaceEmbedder)
    with pytest.raises(ValueError, match="needs weights"):
        create_embedder("arcface")
    with pytest.raises(ValueError, match="unknown embedder 'facenet'"):
        create_embedder("facenet")
