"""The pictures of a fit: fit.png's panels (photo | render | overlay | shape views), ICT's eye sockets in the renders,
and the CED figure's statement of how failures count, the same as the console's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from f2p.evaluation.figures import CED_FILE, photo_figures
from f2p.evaluation.landmarks import LANDMARK_METRICS
from f2p.evaluation.photos import MARKUP_VISIBLE
from f2p.evaluation.report import FAILURE_RULE, photo_tables
from f2p.evaluation.summary import landmark_summary
from f2p.export.figures import PANEL_SIZE, SHAPE_BACKGROUND, blend, overlay, side_by_side
from f2p.export.photo import SHAPE_YAWS_DEG, PhotoExporter
from f2p.morphable import ict
from f2p.morphable.base import LinearMorphableModel
from f2p.morphable.registry import load_model
from f2p.perception.photo import PhotoSample
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import render_scene
from f2p.scene.params import SceneSpec

S = 64
BASE_PANELS = 3  # photo | render | overlay


def saturation(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) RGB in [0, 1] -> (N,) HSV saturation (max - min) / max."""
    return (pixels.max(-1) - pixels.min(-1)) / np.maximum(pixels.max(-1), 1e-6)


def sample_of(scene, spec: SceneSpec) -> PhotoSample:
    """A PhotoSample whose photo is the crop itself: the render of ``scene`` over a mid grey."""
    crop = (scene.render.image[0] * scene.render.mask[0] + 0.5 * (1 - scene.render.mask[0])).clamp(0, 1)
    landmarks = scene.landmarks2d[0]
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return PhotoSample("photo.png", crop, landmarks, torch.ones(68), "test", crop, landmarks, identity,
                       torch.ones(1, *spec.image_size))


@pytest.fixture
def fit_png(procedural_model: LinearMorphableModel, tmp_path: Path) -> np.ndarray:
    """(H, W, 3) fit.png in [0, 1] of the procedural face, turned 20 degrees so the photo differs from the front."""
    spec = SceneSpec(procedural_model, (S, S))
    params = spec.initial(1)
    params["pose"][:, 1] = 0.35
    params["translation"][:, 2] = 0.9
    renderer = MeshRenderer()
    scene = render_scene(spec, params, renderer)
    outcome = PhotoExporter(spec, renderer).export(sample_of(scene, spec), params, tmp_path / "out", {})
    with Image.open(outcome.out_dir / "fit.png") as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def test_fit_png_adds_a_grey_front_and_side_view_of_the_shape(fit_png):
    height, width, _ = fit_png.shape
    assert (width, height) == ((BASE_PANELS + len(SHAPE_YAWS_DEG)) * PANEL_SIZE, PANEL_SIZE)
    assert len(SHAPE_YAWS_DEG) == 2 and SHAPE_YAWS_DEG[0] == 0 and 60 <= SHAPE_YAWS_DEG[1] <= 90
    top = 16  # below the captions
    front, side = (fit_png[top:, (BASE_PANELS + k) * PANEL_SIZE:(BASE_PANELS + k + 1) * PANEL_SIZE]
                   for k in range(2))
    for view in (front, side):
        mesh = np.abs(view - SHAPE_BACKGROUND).max(-1) > 0.05
        assert mesh.mean() > 0.1, "the shape view shows the mesh"
        assert np.median(saturation(view[mesh])) < 0.03, "clay grey, not the fitted skin colours"
        assert view[mesh].mean() > 0.3, "lit, not black"
    assert np.abs(front - side).mean() > 0.05, "the side view is another view"
    render = fit_png[top:, PANEL_SIZE:2 * PANEL_SIZE]
    assert np.median(saturation(render[render.max(-1) > 0.3])) > 0.1, "the render panel keeps the model's colours"


@pytest.fixture(scope="module")
def ict_model(models_dir: Path) -> LinearMorphableModel:
    """ICT FaceKit from the shared models (``models_dir`` points F2P_MODEL_PATH at them)."""
    if not (models_dir / "ict_facekit").is_dir():
        pytest.skip(f"ICT FaceKit not found in {models_dir}: the socket tests need its mesh")
    return load_model("ict")


def test_ict_sockets_are_the_inner_surfaces_between_the_eyelids(ict_model):
    sockets = ict.socket_vertices(ict_model.name, ict_model.num_vertices)
    eyes, mouth = sockets[ict.EYE_SOCKETS], sockets[ict.MOUTH_SOCKET]
    assert (int(eyes.sum()), int(mouth.sum())) == (14062 - 13294, 13294 - 11248)
    assert not (eyes | mouth)[ict_model.face_region.numpy()].any(), "the fit never sees them"
    assert ict.socket_vertices("sfm", ict_model.num_vertices) == {}


def test_ict_eye_sockets_render_grey_not_as_skin_red_blobs_or_black_holes(ict_model):
    spec = SceneSpec(ict_model, (256, 256))
    params = spec.initial(1)
    renderer = MeshRenderer()
    faces = ict_model.faces
    eyes = torch.from_numpy(ict.socket_vertices(ict_model.name, ict_model.num_vertices)[ict.EYE_SOCKETS])
    socket_faces = eyes[faces].all(1)  # (F,)

    def socket_pixels(render) -> np.ndarray:
        pix = render.pix_to_face[0]
        inside = (pix >= 0) & socket_faces[pix.clamp_min(0)]
        return render.image[0].permute(1, 2, 0)[inside].numpy()

    skin = render_scene(spec, params, renderer)
    red = dict(params, vertex_color=torch.tensor([0.3, -0.3, -0.3]).repeat(1, ict_model.num_vertices))
    for scene in (skin, render_scene(spec, red, renderer)):  # the mean face's colours, a fit's meaningless ones
        pixels = socket_pixels(scene.render)
        assert len(pixels) > 200, "the mean face shows its eye sockets between the eyelids"
        assert np.median(saturation(pixels)) < 0.02, "neutral grey, not the skin's or the fit's colours"
        assert np.median(pixels.max(-1)) > 0.3, "not a black hole"
    assert np.median(saturation(skin.render.image[0].permute(1, 2, 0)[skin.render.mask[0, 0] > 0].numpy())) > 0.2
    for view in PhotoExporter(spec, renderer).shape_views(skin.mesh.verts[0], skin.mesh.landmarks[0]):
        mesh = view.image.permute(1, 2, 0)[view.mask[0] > 0.5].numpy()
        assert np.median(saturation(mesh)) < 0.02


def test_ict_render_panel_is_the_fits_render_with_its_grey_sockets(ict_model, tmp_path):
    spec = SceneSpec(ict_model, (S, S))
    params = spec.initial(1)
    renderer = MeshRenderer()
    scene = render_scene(spec, params, renderer)
    sample = sample_of(scene, spec)
    outcome = PhotoExporter(spec, renderer).export(sample, params, tmp_path / "out", {}, scene=scene)
    landmarks = sample.crop_landmarks.numpy()
    expected = np.asarray(side_by_side(sample.crop, scene.render.image[0], scene.render.mask[0], landmarks,
                                       landmarks), dtype=np.int16)[:, PANEL_SIZE:2 * PANEL_SIZE]
    with Image.open(outcome.out_dir / "fit.png") as image:
        panel = np.asarray(image.convert("RGB"), dtype=np.int16)[:, PANEL_SIZE:2 * PANEL_SIZE]
    assert np.abs(panel - expected).max() <= 1


@pytest.mark.parametrize("photo_size, render_size", [((900, 600), (300, 200)), ((4500, 3000), (1024, 683)),
                                                     ((37, 53), (37, 53))])
def test_overlay_is_the_render_resized_onto_the_photo_and_blended(photo_size, render_size):
    # overlay.png of a large photo blends only where the render's coverage reaches; it must equal resizing the
    # whole render to the photo and blending everywhere
    generator = torch.Generator().manual_seed(0)
    (H, W), (h, w) = photo_size, render_size
    photo, render = torch.rand(3, H, W, generator=generator), torch.rand(3, h, w, generator=generator)
    mask = torch.zeros(1, h, w)
    mask[:, h // 4:h // 2, w // 3:w // 2] = torch.rand(1, h // 2 - h // 4, w // 2 - w // 3, generator=generator)
    resized = [torch.nn.functional.interpolate(x[None], size=(H, W), mode="bilinear", align_corners=False)[0]
               for x in (render, mask)]
    assert torch.allclose(overlay(photo, render, mask), blend(photo, *resized), atol=1e-4)
    assert torch.equal(overlay(photo, render, torch.zeros(1, h, w)), photo)


def test_ced_figure_and_console_state_the_same_failure_rule(tmp_path):
    ok = {"image": "a.jpg", "status": "ok", "error": "", "markup": MARKUP_VISIBLE, "fit_png": None,
          **dict.fromkeys(LANDMARK_METRICS, 0.02)}
    failed = {**ok, "image": "b.jpg", "status": "failed", "error": "no face found",
              **dict.fromkeys(LANDMARK_METRICS, None)}
    records = [ok, failed, {**ok, "image": "c.jpg", "nme68_box": 0.04}]
    photo_figures(tmp_path, records, worst=0)
    with Image.open(tmp_path / CED_FILE) as image:
        caption = image.text["Description"]
    group = landmark_summary(records)
    console = photo_tables({"counts": dict.fromkeys(("photos", "ok", "failed", "with_annotation", "landmarks_68",
                                                     "landmarks_5", "annotations_without_output"), 0),
                            "landmarks": {MARKUP_VISIBLE: group}, "families": {}, "targets": {}, "failures": []})
    assert FAILURE_RULE in console
    assert caption.lower() == FAILURE_RULE.lower()
    assert "never count" not in caption and "never count" not in console
    # what the rule says is what is computed: the failure lowers the AUC but not the mean NME
    assert group["failed"] == 1 and group["nme68_box"]["mean"] == pytest.approx(0.03)
    assert group["ced_box"]["auc"] == pytest.approx(((1 - 0.02 / 0.07) + (1 - 0.04 / 0.07)) / 3)
