"""head.glb's UV texture baked from the photo: photo colours where the camera sees the surface, vertex colours
elsewhere, embedded as a PNG base colour texture on TEXCOORD_0."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import time

import numpy as np
import pytest
import torch
from PIL import Image

from f2p.conventions import MODEL_TO_OPENCV
from f2p.export.gltf import HeadGlb
from f2p.export.texture_bake import TEXTURE_SIZE, bake_texture, uv_layout
from f2p.morphable.base import LinearMorphableModel
from f2p.morphable.procedural import procedural_data
from f2p.morphable.registry import load_model
from f2p.render.cameras import PinholeCamera
from f2p.render.renderer import MeshRenderer
from gltf_reading import read_glb
from test_export_gltf import POSE, VALIDATOR_SCRIPT, fitted_params, gltf_validator_env
from test_export_head_outputs import export_photo

THETA = (math.radians(10.0), math.radians(170.0))
"""Polar range of the test spheres (from +Y), away from the poles."""
BIG = ((0.0, 0.0, 0.0), 0.1, (0.0, 0.7))
SMALL = ((0.03, 0.02, 0.15), 0.03, (0.75, 0.98))
"""(centre, radius, u range) of the big sphere and of the small one in front of it."""
V_RANGE = (0.05, 0.95)
"""glTF v (top-left origin) of the spheres' polar range."""
IMAGE = 256
DISTANCE = 0.6
FOCAL = 400.0


def sphere(centre: tuple[float, float, float], radius: float, u_range: tuple[float, float], rows: int,
           cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A UV sphere: (V, 3) vertices, (F, 3) outward-wound faces, (V, 2) OBJ-origin UVs (one per vertex)."""
    theta = np.linspace(*THETA, rows + 1)
    phi = np.linspace(-math.pi, math.pi, cols + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    verts = np.asarray(centre) + radius * np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1)
    uv = np.stack([u_range[0] + (u_range[1] - u_range[0]) * (p + math.pi) / (2 * math.pi),
                   1.0 - (V_RANGE[0] + (V_RANGE[1] - V_RANGE[0]) * (t - THETA[0]) / (THETA[1] - THETA[0]))], -1)
    index = np.arange((rows + 1) * (cols + 1)).reshape(rows + 1, cols + 1)
    a, b, c, d = index[:-1, :-1], index[1:, :-1], index[:-1, 1:], index[1:, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([c, b, d], -1).reshape(-1, 3)])
    verts, uv = verts.reshape(-1, 3), uv.reshape(-1, 2)
    corners = verts[faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = (normal * (corners.mean(1) - centre)).sum(1) >= 0
    faces[~outward] = faces[~outward][:, ::-1]
    return verts, faces, uv


def texel_points(centre, radius, u_range) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) the sphere point behind each texel centre and (S, S) which texels lie on that sphere's UV patch."""
    S = TEXTURE_SIZE
    u, v = np.meshgrid((np.arange(S) + 0.5) / S, (np.arange(S) + 0.5) / S, indexing="xy")
    p = -math.pi + 2 * math.pi * (u - u_range[0]) / (u_range[1] - u_range[0])
    t = THETA[0] + (THETA[1] - THETA[0]) * (v - V_RANGE[0]) / (V_RANGE[1] - V_RANGE[0])
    inside = (p > -math.pi + 0.05) & (p < math.pi - 0.05) & (t > THETA[0] + 0.02) & (t < THETA[1] - 0.02)
    points = np.asarray(centre) + radius * np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1)
    return points, inside


def photo_colors(points: np.ndarray) -> np.ndarray:
    """What the photo shows at model-space points: a smooth colour ramp (linear in position)."""
    return np.clip(0.5 + 3.0 * points * np.array([1.0, -1.0, 1.0]), 0.05, 0.95)


def fitted_colors(points: np.ndarray) -> np.ndarray:
    """The fitted vertex colours, different from the photo's: another linear ramp."""
    return np.clip(0.4 + 2.0 * points[..., ::-1], 0.1, 0.9)


def spheres_camera(size: int = IMAGE) -> PinholeCamera:
    """The camera looking at the spheres along -Z, in a size x size image (the IMAGE x IMAGE one scaled)."""
    s = size / IMAGE
    focal, centre = torch.tensor([FOCAL * s]), torch.tensor([((IMAGE - 1) / 2 + 0.5) * s - 0.5])
    return PinholeCamera(fx=focal, fy=focal, cx=centre, cy=centre, R=MODEL_TO_OPENCV.float()[None],
                         t=torch.tensor([[0.0, 0.0, DISTANCE]]), image_size=(size, size))


@pytest.fixture(scope="module")
def spheres():
    """Two spheres (a small one in front of the big one), the photo of them (the render's unshaded albedo of
    ``photo_colors``) with its depth, and their UV layout: (verts, faces, layout, photo, depth)."""
    big, small = sphere(*BIG, 64, 128), sphere(*SMALL, 24, 48)
    verts = np.concatenate([big[0], small[0]])
    faces = np.concatenate([big[1], small[1] + len(big[0])])
    uv = np.concatenate([big[2], small[2]])
    verts_t, faces_t = torch.from_numpy(verts).float(), torch.from_numpy(faces)
    render = MeshRenderer(backend="torch")(verts_t[None], faces_t, spheres_camera(), torch.zeros(1, 9, 3),
                                           colors=torch.from_numpy(photo_colors(verts)).float()[None])
    layout = uv_layout(torch.from_numpy(uv).float(), faces_t)
    return verts_t, faces_t, layout, render.albedo[0], render.depth[0, 0]


def bake_spheres(spheres, depth=None):
    """The bake of ``fitted_colors`` over the spheres' photo, with the photo's depth or the given one."""
    verts, faces, layout, photo, photo_depth = spheres
    return bake_texture(verts, faces, layout, torch.from_numpy(fitted_colors(verts.numpy())).float(),
                        spheres_camera(), photo, photo_depth if depth is None else depth)


@pytest.fixture(scope="module")
def scene(spheres):
    """The bake of the spheres' photo and its time in seconds."""
    start = time.perf_counter()
    baked = bake_spheres(spheres)
    return baked, time.perf_counter() - start


def test_seen_texels_are_the_photo_and_hidden_ones_the_fitted_colours(scene):
    baked, seconds = scene
    image = baked.image / 255.0
    points, inside = texel_points(*BIG)
    seen, hidden = inside & baked.from_photo, inside & ~baked.from_photo
    assert 0.25 < seen.sum() / inside.sum() < 0.55  # about the front half of the sphere, less the occluded part
    assert np.abs(image[seen] - photo_colors(points[seen])).mean() < 0.01
    assert np.abs(image[hidden] - fitted_colors(points[hidden])).mean() < 0.01
    front = points[..., 2] > 0.03  # facing the camera well
    assert baked.from_photo[inside & front].mean() > 0.8
    assert not baked.from_photo[inside & (points[..., 2] < -0.01)].any()  # the back is never seen
    print(f"bake of {len(image) ** 2} texels: {seconds:.3f} s")


def test_occluded_texels_take_the_fitted_colour(scene):
    baked, _ = scene
    points, inside = texel_points(*BIG)
    (cx, cy, cz), radius, _ = SMALL
    # the ray from the camera (0, 0, DISTANCE) to each point meets the small sphere before the point
    eye = np.array([0.0, 0.0, DISTANCE])
    direction = points - eye
    length = np.linalg.norm(direction, axis=-1, keepdims=True)
    direction = direction / length
    to_centre = np.array([cx, cy, cz]) - eye
    along = (direction * to_centre).sum(-1)
    miss = np.linalg.norm(to_centre - along[..., None] * direction, axis=-1)
    behind = inside & (points[..., 2] > 0.03) & (miss < radius * 0.8) & (along < length[..., 0])
    assert behind.sum() > 100
    assert not baked.from_photo[behind].any()
    np.testing.assert_allclose(baked.image[behind] / 255.0, fitted_colors(points[behind]), atol=0.03)
    small_points, small_inside = texel_points(*SMALL)
    assert baked.from_photo[small_inside & (small_points[..., 2] > cz + 0.01)].mean() > 0.8


def test_a_depth_rendered_smaller_than_the_photo_sees_the_same_texels(spheres, scene):
    """The exporter renders large photos' overlays (and so their depth) at most OVERLAY_MAX_SIDE on the long side:
    the bake reads a depth of the photo scaled down the same."""
    verts, faces, *_ = spheres
    small = MeshRenderer(backend="torch")(verts[None], faces, spheres_camera(IMAGE * 3 // 4), torch.zeros(1, 9, 3))
    baked, (full, _) = bake_spheres(spheres, small.depth[0, 0]), scene
    points, inside = texel_points(*BIG)
    same = baked.from_photo[inside] == full.from_photo[inside]
    print(f"texels seen or not as with the photo's own depth: {same.mean():.2%}")
    assert same.mean() > 0.98  # the others lie along the small sphere's outline, a depth pixel wider at 3/4 size
    assert not baked.from_photo[inside & (points[..., 2] < -0.01)].any()
    np.testing.assert_array_equal(baked.image[baked.from_photo & full.from_photo],
                                  full.image[baked.from_photo & full.from_photo])


def test_no_texel_is_black(scene):
    baked, _ = scene
    assert baked.image.shape == (TEXTURE_SIZE, TEXTURE_SIZE, 3) and baked.image.dtype == np.uint8
    assert (baked.image.max(axis=2) >= 0.09 * 255).all()  # every colour of either ramp has a channel >= 0.1


def textured_head(model, texture: np.ndarray) -> bytes:
    params = fitted_params(model, seed=3)
    return HeadGlb(model).document(params, torch.rand(model.num_vertices, 3), POSE, texture).to_bytes()


def test_the_glb_embeds_the_texture_as_the_materials_base_colour(procedural_model):
    texture = np.random.default_rng(0).integers(0, 256, (TEXTURE_SIZE, TEXTURE_SIZE, 3), dtype=np.uint8)
    glb = read_glb(textured_head(procedural_model, texture))
    gltf = glb["gltf"]
    (image,), (texture_info,), (material,) = gltf.images, gltf.textures, gltf.materials
    assert image.mimeType == "image/png" and texture_info.source == 0 and texture_info.sampler == 0
    base = material.pbrMetallicRoughness.baseColorTexture
    assert (base.index, base.texCoord) == (0, 0)
    view = gltf.bufferViews[image.bufferView]
    png = gltf.binary_blob()[view.byteOffset:view.byteOffset + view.byteLength]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), texture)
    assert glb["uv"] is not None and glb["colors"] is None  # glTF would multiply COLOR_0 into the texture


def test_a_model_without_uvs_refuses_a_texture_and_its_photo_gets_none(procedural_model, tmp_path):
    no_uv = LinearMorphableModel(dataclasses.replace(procedural_data(), uv=None, faces_uv=None))
    with pytest.raises(ValueError, match="no UVs"):
        textured_head(no_uv, np.zeros((4, 4, 3), np.uint8))
    for model, textured in ((no_uv, False), (procedural_model, True)):
        export_photo(model, tmp_path / str(textured))
        gltf = read_glb((tmp_path / str(textured) / "head.glb").read_bytes())
        assert len(gltf["gltf"].images) == int(textured) and (gltf["colors"] is None) == textured


@pytest.mark.parametrize("which", ["procedural", "ict"])
def test_khronos_gltf_validator_accepts_a_textured_head(which, procedural_model, models_dir, tmp_path):
    env = gltf_validator_env()
    if which == "ict" and not (models_dir / "ict_facekit").is_dir():
        pytest.skip(f"ICT FaceKit not found in {models_dir}")
    model = procedural_model if which == "procedural" else load_model("ict")
    texture = np.random.default_rng(1).integers(0, 256, (TEXTURE_SIZE, TEXTURE_SIZE, 3), dtype=np.uint8)
    path = tmp_path / "head.glb"
    path.write_bytes(textured_head(model, texture))
    result = subprocess.run(["node", "-e", VALIDATOR_SCRIPT, str(path)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    issues = json.loads(result.stdout)
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]
