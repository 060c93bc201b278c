"""dlib's face-recognition ResNet in PyTorch against dlib itself (the reference) on the shared photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
import pytest
import torch
from PIL import Image

from f2p.perception.identity.dlib_format import packaged_model_path, read_dlib_network
from f2p.perception.identity.resnet import DlibFaceResNet

DLIB_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"

PARITY_ATOL = 1e-4


@dataclass(frozen=True)
class DlibFace:
    """One photo as dlib sees it: its largest detection's landmarks, chip and descriptor."""

    name: str
    image: torch.Tensor  # (3, H, W) in [0, 1]
    landmarks: torch.Tensor  # (68, 2) f2p pixels (dlib's integer points)
    chip: torch.Tensor  # (3, 150, 150) in [0, 1], dlib.get_face_chip
    descriptor: torch.Tensor  # (128,) compute_face_descriptor(chip), float64


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0


@pytest.fixture(scope="module")
def dlib_faces(faces_dir: Path) -> dict[str, DlibFace]:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(packaged_model_path("shape_predictor_68_face_landmarks.dat")))
    recogniser = dlib.face_recognition_model_v1(str(packaged_model_path(DLIB_MODEL_FILE)))
    faces = {}
    for path in sorted((faces_dir / "images").iterdir()):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        detections = detector(rgb, 0) or detector(rgb, 1)  # upsample only when needed (speed)
        if not detections:
            continue
        shape = predictor(rgb, max(detections, key=lambda d: d.area()))
        chip = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        faces[path.stem] = DlibFace(
            name=path.stem,
            image=_to_tensor(rgb),
            landmarks=torch.tensor([[p.x, p.y] for p in shape.parts()], dtype=torch.float32),
            chip=_to_tensor(chip),
            descriptor=torch.tensor(list(recogniser.compute_face_descriptor(chip)), dtype=torch.float64),
        )
    return faces


@pytest.fixture(scope="module")
def embedder() -> DlibFaceResNet:
    return DlibFaceResNet.from_dlib(read_dlib_network(packaged_model_path(DLIB_MODEL_FILE)))


def test_descriptors_match_dlib_on_the_same_chips(dlib_faces: dict[str, DlibFace], embedder: DlibFaceResNet) -> None:
    assert len(dlib_faces) >= 10, f"dlib found faces in only {len(dlib_faces)} photos"
    chips = torch.stack([face.chip for face in dlib_faces.values()])
    reference = torch.stack([face.descriptor for face in dlib_faces.values()])
    with torch.no_grad():
        ours = embedder(chips).double()
    error = (ours - reference).abs().amax(dim=1)  # (B,) worst coordinate per photo
    worst = max(zip(error.tolist(), dlib_faces), key=lambda pair: pair[0])
    assert error.max() < PARITY_ATOL, f"max abs difference {worst[0]:.2e} on {worst[1]}"
    # dlib returns the raw fc output, not a unit vector.
    assert (reference.norm(dim=1) > 1.1).all()
