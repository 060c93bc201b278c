"""The per-photo output contract of ``reconstruct`` and ``predict``: params.json/.npz, mesh.obj,
landmarks.json, overlay.png, fit.png, head.glb, arkit.json, metrics.json; with ``--outputs data`` the numbers and
the mesh alone (``output_sets.DATA_FILES``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from f2p.atomic import atomic_writer
from f2p.export.figures import ShapeView, overlay, save_png, side_by_side, to_pil
from f2p.export.gltf import HeadGlb
from f2p.morphable.base import MorphableModel
from f2p.morphable.obj_io import format_obj
from f2p.render.cameras import PinholeCamera
from f2p.render.rotations import axis_angle_to_euler
from f2p.scene.params import LOG_FOCAL, POSE, TRANSLATION, VERTEX_COLOR, SceneSpec

DONE_MARKER = "metrics.json"
"""Written last: its presence means the photo's outputs are complete."""


@dataclass(frozen=True)
class PhotoResult:
    """The numbers and the mesh exported for one photo (single items, no batch dimension).

    Attributes:
        image_path: the input photo.
        params: {group: (K,)} fitted parameters.
        camera: (batch of 1) pinhole camera in the photo's pixels; world = model space (metres).
        verts: (V, 3) mesh in model space, metres; faces: (F, 3); colors: (V, 3) in [0, 1].
        detected, fitted: (68, 2) landmarks in photo pixels.
        metrics: numbers for metrics.json.
    """

    image_path: str
    params: dict[str, Tensor]
    camera: PinholeCamera
    verts: Tensor
    faces: Tensor
    colors: Tensor
    detected: Tensor
    fitted: Tensor
    metrics: dict[str, float | int | str]


@dataclass(frozen=True)
class PhotoPictures:
    """What overlay.png, fit.png and head.glb's texture show of one photo (``--outputs all``).

    Attributes:
        photo: (3, Hp, Wp) the photo; photo_render: (3, h, w) render in photo pixels, at a smaller size of the same
            aspect where the photo is large (``figures.overlay`` resizes it); photo_mask: (1, h, w) its coverage.
        crop, crop_render: (3, H, W) aligned crop and its render; crop_mask: (1, H, W).
        crop_detected, crop_fitted: (68, 2) landmarks in crop pixels.
        shape_views: untextured views of the fitted mesh for fit.png, after its photo | render | overlay panels.
        texture: (S, S, 3) uint8 head.glb's base colour texture baked from the photo (``export.texture_bake``), or
            None (a model without UVs).
    """

    photo: Tensor
    photo_render: Tensor
    photo_mask: Tensor
    crop: Tensor
    crop_render: Tensor
    crop_mask: Tensor
    crop_detected: Tensor
    crop_fitted: Tensor
    shape_views: tuple[ShapeView, ...] = ()
    texture: np.ndarray | None = None


def _group_values(model: MorphableModel, name: str, values: np.ndarray) -> dict[str, float] | list[float]:
    names = model.groups[name].component_names
    return {n: float(v) for n, v in zip(names, values)} if names else [float(v) for v in values]


def params_document(model: MorphableModel, result: PhotoResult) -> dict:
    """The params.json content: named model parameters, pose, camera (OpenCV) and SH lighting."""
    p = {k: v.detach().cpu() for k, v in result.params.items()}
    yaw, pitch, roll = axis_angle_to_euler(p[POSE][None])[0].tolist()
    cam = result.camera
    return {
        "model": model.name,
        "parameters": {name: _group_values(model, name, p[name].numpy()) for name in model.groups},
        "pose": {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll, "axis_angle": p[POSE].tolist(),
                 "translation_m": p[TRANSLATION].tolist(),
                 "convention": "R_head = Rz(roll) Ry(yaw) Rx(pitch) in model space (y up, z to viewer); "
                               "+yaw turns the face to the subject's left"},
        "camera": {"fx": float(cam.fx[0]), "fy": float(cam.fy[0]), "cx": float(cam.cx[0]), "cy": float(cam.cy[0]),
                   "R": cam.R[0].tolist(), "t": cam.t[0].tolist(),
                   "width": cam.image_size[1], "height": cam.image_size[0], "log_focal": float(p[LOG_FOCAL][0]),
                   "convention": "OpenCV, world = model space in metres, X_cam = R X + t, original photo pixels "
                                 "with the centre of the top-left pixel at (0, 0)"},
        "lighting": {"sh": SceneSpec.lighting(p).tolist(),
                     "convention": "second-order real spherical harmonics, 9 coefficients x RGB, camera frame"},
    }


def _write_text(path: Path, text: str) -> None:
    with atomic_writer(path) as handle:
        handle.write(text.encode("utf-8"))


def _write_png(path: Path, image: Image.Image) -> None:
    with atomic_writer(path) as handle:
        save_png(image, handle)


def write_photo_outputs(out_dir: Path, model: MorphableModel, result: PhotoResult, arkit: dict,
                        head: HeadGlb, pictures: PhotoPictures | None) -> None:
    """Write the output files of one photo atomically (``output_sets.OUTPUT_FILES``, or ``DATA_FILES`` without
    ``pictures``); ``metrics.json`` goes last as the completion marker.

    ``arkit``: the arkit.json content (``export.arkit.arkit_document``); ``head``: the head.glb builder of
    ``model`` (one per model, reused across its photos)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(out_dir / "params.json", json.dumps(params_document(model, result), indent=2))
    arrays = {k: v.detach().cpu().numpy() for k, v in result.params.items() if k != VERTEX_COLOR}
    arrays.update(camera_R=result.camera.R[0].cpu().numpy(), camera_t=result.camera.t[0].cpu().numpy(),
                  camera_K=np.array([[float(result.camera.fx[0]), 0, float(result.camera.cx[0])],
                                     [0, float(result.camera.fy[0]), float(result.camera.cy[0])], [0, 0, 1]]))
    with atomic_writer(out_dir / "params.npz") as handle:
        np.savez(handle, **arrays)
    header = f"f2p mesh of {result.image_path}\nmodel {model.name}, model space in metres (y up, z to viewer)"
    _write_text(out_dir / "mesh.obj", format_obj(result.verts.detach().cpu().numpy(),
                                                      result.faces.cpu().numpy(),
                                                      result.colors.detach().cpu().numpy(), header))
    _write_text(out_dir / "landmarks.json", json.dumps({
        "detected": result.detected.tolist(), "fitted": result.fitted.tolist(),
        "convention": "original photo pixels, 0-based, centre of the top-left pixel at (0, 0)"}))
    if pictures is not None:
        _write_png(out_dir / "overlay.png", to_pil(overlay(pictures.photo, pictures.photo_render, pictures.photo_mask)))
        figure = side_by_side(pictures.crop, pictures.crop_render, pictures.crop_mask,
                              pictures.crop_detected.cpu().numpy(), pictures.crop_fitted.cpu().numpy(),
                              pictures.shape_views)
        _write_png(out_dir / "fit.png", figure)
        head.write(out_dir / "head.glb", result.params, result.colors, result.params[POSE], pictures.texture)
    _write_text(out_dir / "arkit.json", json.dumps(arkit, indent=2))
    _write_text(out_dir / DONE_MARKER, json.dumps(result.metrics, indent=2))
