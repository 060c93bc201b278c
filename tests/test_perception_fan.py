"""FAN (face_alignment) detector: result conversion offline; accuracy on the shared photos only with its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from f2p.perception.annotations import read_face_set
from f2p.perception.detection import PhotoFaces, detect_photo
from f2p.perception.fan_detector import FanDetector, checkpoint_dir, fan_detections, fan_weights_available
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
