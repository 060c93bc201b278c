"""dlib's face-recognition ResNet in PyTorch against dlib itself (the reference) on the shared photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
import pytest
import torch
from PIL import Image

from f2p.perception.identity.dlib_format import packaged_model_path
from f2p.perception.identity.embedder import DLIB_MODEL_FILE, DLIB_SAME_PERSON_DISTANCE, DlibFaceEmbedder
from f2p.perception.identity.base import identity_similarity

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
def embedder() -> DlibFaceEmbedder:
    return DlibFaceEmbedder.from_default_weights()


def test_descriptors_match_dlib_on_the_same_chips(dlib_faces: dict[str, DlibFace], embedder: DlibFaceEmbedder) -> None:
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


def test_differentiable_chips_match_dlib_get_face_chip(
    dlib_faces: dict[str, DlibFace], embedder: DlibFaceEmbedder
) -> None:
    ours = torch.cat([embedder.align(face.image[None], face.landmarks[None]) for face in dlib_faces.values()])
    reference = torch.stack([face.chip for face in dlib_faces.values()])  # (B, 3, 150, 150)
    # dlib truncates to 8 bits (and its pyramid levels too, for large faces): about 0.5-1 grey level.
    pixel_error = (ours - reference).abs().mean(dim=(1, 2, 3)) * 255  # (B,)
    with torch.no_grad():
        similarity = identity_similarity(embedder(ours), embedder(reference))  # (B,)
    for name, error, cosine in zip(dlib_faces, pixel_error.tolist(), similarity.tolist()):
        assert error < 1.2, f"{name}: mean abs chip difference {error:.2f} grey levels"
        assert cosine > 0.9995, f"{name}: cosine {cosine:.5f} between the embeddings of the two chips"


def test_same_person_is_closer_than_different_people(
    dlib_faces: dict[str, DlibFace], embedder: DlibFaceEmbedder
) -> None:
    names = ["idpair_obama", "idpair_obama2", "idpair_biden", "idpair_biden2"]
    with torch.no_grad():
        e = {n: embedder.embed(dlib_faces[n].image[None], dlib_faces[n].landmarks[None])[0] for n in names}
    same = [("idpair_obama", "idpair_obama2"), ("idpair_biden", "idpair_biden2")]
    cross = [(a, b) for a in names[:2] for b in names[2:]]

    def distance(pair: tuple[str, str]) -> float:
        return (e[pair[0]] - e[pair[1]]).norm().item()

    def cosine(pair: tuple[str, str]) -> float:
        return identity_similarity(e[pair[0]][None], e[pair[1]][None]).item()

    assert max(map(distance, same)) < DLIB_SAME_PERSON_DISTANCE < min(map(distance, cross))
    assert min(map(cosine, same)) > max(map(cosine, cross))


def test_gradients_reach_the_image_and_landmarks_not_the_weights(
    dlib_faces: dict[str, DlibFace], embedder: DlibFaceEmbedder
) -> None:
    face = dlib_faces["idpair_obama2"]  # large enough for dlib's pyramid path
    image = face.image[None].clone().requires_grad_(True)
    landmarks = face.landmarks[None].clone().requires_grad_(True)
    target = face.descriptor[None].float()
    loss = 1 - identity_similarity(embedder.embed(image, landmarks), target).sum()
    loss.backward()
    assert image.grad is not None and image.grad.isfinite().all() and image.grad.abs().sum() > 0
    assert landmarks.grad is not None and landmarks.grad.isfinite().all() and landmarks.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in embedder.parameters())
