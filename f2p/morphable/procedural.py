"""A tiny procedural face model for fast unit tests: a height-field face with a nose, 68 landmarks,
identity and albedo spaces and four expression sliders. No files needed."""

from __future__ import annotations

import numpy as np

from f2p.morphable.base import LinearModelData, ParamGroup

HALF_WIDTH = 0.075  # metres
HALF_HEIGHT = 0.10
DEPTH = 0.06
NOSE_HEIGHT = 0.025
EXPRESSION_NAMES = ("jawOpen", "mouthSmile", "browRaise", "cheekPuff")


def _landmark_template() -> np.ndarray:
    """(68, 2) iBUG-68 points in normalised model coordinates (x towards the subject's left, y up).

    iBUG orders both eyes clockwise in the image, so the two eyes share one list of angles.
    """

    def arc(x0: float, x1: float, y: float, bend: float, n: int) -> list[tuple[float, float]]:
        xs = np.linspace(x0, x1, n)
        mid = 0.5 * (x0 + x1)
        half = max(abs(x1 - x0) / 2, 1e-6)
        return [(x, y + bend * (1 - ((x - mid) / half) ** 2)) for x in xs]

    def ellipse(cx: float, cy: float, rx: float, ry: float, angles_deg: list[float]) -> list[tuple[float, float]]:
        return [(cx + rx * np.cos(np.radians(a)), cy + ry * np.sin(np.radians(a))) for a in angles_deg]

    jaw_angles = np.linspace(180, 360, 17)  # from the subject's right ear over the chin to the left ear
    points = [(0.82 * np.cos(np.radians(a)), 0.15 + 0.85 * np.sin(np.radians(a))) for a in jaw_angles]
    points += arc(-0.62, -0.15, 0.42, 0.08, 5) + arc(0.15, 0.62, 0.42, 0.08, 5)  # brows
    points += [(0.0, y) for y in np.linspace(0.3, 0.0, 4)]  # nose bridge down to the tip (30)
    points += arc(-0.14, 0.14, -0.1, -0.03, 5)  # lower nose
    eye = [180, 135, 45, 0, -45, -135]  # outer, upper, upper, inner, lower, lower (right eye)
    points += ellipse(-0.33, 0.25, 0.15, 0.06, eye)
    points += ellipse(0.33, 0.25, 0.15, 0.06, eye)  # left eye: inner, upper, upper, outer, lower, lower
    outer_lips = [180, 150, 115, 90, 65, 30, 0, -30, -65, -90, -115, -150]
    points += ellipse(0.0, -0.38, 0.3, 0.12, outer_lips)
    points += ellipse(0.0, -0.38, 0.2, 0.04, [180, 120, 90, 60, 0, -60, -90, -120])
    return np.asarray(points, dtype=np.float64)


def _height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth (metres) of the face surface over normalised (x, y) inside the unit disc."""
    dome = DEPTH * np.sqrt(np.clip(1.0 - x**2 - y**2, 0.0, None))
    nose = NOSE_HEIGHT * np.exp(-((x / 0.12) ** 2 + ((y - 0.02) / 0.22) ** 2))
    return dome + nose


def procedural_data(grid: int = 32, num_identity: int = 10, num_albedo: int = 5, seed: int = 0) -> LinearModelData:
    """Build the procedural model's data.

    Args:
        grid: vertices per side of the grid the face is cut from (V grows like grid**2 * pi / 4).
        num_identity: identity components.
        num_albedo: albedo components.
        seed: seed of the random smooth identity and albedo bases.
    """
    rng = np.random.default_rng(seed)
    coords = np.linspace(-1.0, 1.0, grid)
    gx, gy = np.meshgrid(coords, coords)  # (grid, grid), row = y index
    inside = gx**2 + gy**2 <= 1.0
    index = -np.ones(gx.shape, dtype=np.int64)
    index[inside] = np.arange(int(inside.sum()))
    nx, ny = gx[inside], gy[inside]
    mean = np.stack([nx * HALF_WIDTH, ny * HALF_HEIGHT, _height(nx, ny)], axis=1)

    faces = []
    for i in range(grid - 1):
        for j in range(grid - 1):
            a, b, c, d = index[i, j], index[i, j + 1], index[i + 1, j], index[i + 1, j + 1]
            if min(a, b, c, d) >= 0:  # counter-clockwise seen from +z (y up)
                faces += [(a, b, d), (a, d, c)]
    faces = np.asarray(faces, dtype=np.int64)

    lmk_vertices, lmk_weights = _embed_landmarks(_landmark_template(), coords, index)

    # Identity: smooth random displacement fields (products of low-order polynomials), ~3 mm per unit.
    poly = np.stack([np.ones_like(nx), nx, ny, nx * ny, nx**2, ny**2, nx**2 * ny, nx * ny**2], axis=1)
    identity = np.einsum("vp,kpc->kvc", poly, rng.normal(size=(num_identity, poly.shape[1], 3)))
    identity *= 0.003 / np.sqrt(np.mean(identity**2, axis=(1, 2), keepdims=True))

    mouth_y, brow_y = -0.38, 0.42
    jaw = np.where(ny < mouth_y, (mouth_y - ny) / (1 + mouth_y), 0.0)
    smile = np.exp(-(((np.abs(nx) - 0.3) / 0.15) ** 2 + ((ny - mouth_y) / 0.15) ** 2))
    brow = np.exp(-((ny - brow_y) / 0.12) ** 2) * (np.abs(nx) < 0.75)
    cheek = np.exp(-(((np.abs(nx) - 0.5) / 0.2) ** 2 + ((ny + 0.1) / 0.2) ** 2))
    expression = np.zeros((len(EXPRESSION_NAMES), len(nx), 3))
    expression[0, :, 1] = -0.03 * jaw
    expression[1, :, 0] = 0.006 * smile * np.sign(nx)
    expression[1, :, 1] = 0.006 * smile
    expression[2, :, 1] = 0.008 * brow
    expression[3, :, 2] = 0.01 * cheek

    albedo_mean = np.tile(np.array([0.78, 0.57, 0.47]), (len(nx), 1))
    albedo_mean[np.abs(ny - 0.25) < 0.05] *= 0.6  # darker eye band helps photometric tests
    albedo_basis = np.einsum("vp,kpc->kvc", poly, rng.normal(size=(num_albedo, poly.shape[1], 3)))
    albedo_basis *= 0.04 / np.sqrt(np.mean(albedo_basis**2, axis=(1, 2), keepdims=True))

    groups = (
        ParamGroup("identity", num_identity, prior_std=(1.0,) * num_identity),
        ParamGroup("expression", len(EXPRESSION_NAMES), prior_std=(0.5,) * len(EXPRESSION_NAMES),
                   lower=(0.0,) * len(EXPRESSION_NAMES), upper=(1.0,) * len(EXPRESSION_NAMES),
                   component_names=EXPRESSION_NAMES),
        ParamGroup("albedo", num_albedo, prior_std=(1.0,) * num_albedo),
    )
    uv = np.stack([(nx + 1) / 2, (ny + 1) / 2], axis=1)
    return LinearModelData(
        name="procedural", mean=mean.astype(np.float32), faces=faces, groups=groups,
        bases={"identity": identity.astype(np.float32), "expression": expression.astype(np.float32)},
        landmark_vertices=lmk_vertices, landmark_weights=lmk_weights,
        landmark_confidence=np.ones(68, dtype=np.float32),
        face_region=(nx**2 + ny**2 <= 0.81),
        albedo_mean=albedo_mean.astype(np.float32), albedo_basis=albedo_basis.astype(np.float32),
        uv=uv.astype(np.float32), faces_uv=faces.copy(),
        metadata={"source": "procedural", "license": "MIT (generated by f2p)"},
    )


def _embed_landmarks(template: np.ndarray, coords: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Embed (68, 2) normalised points in the grid mesh as (68, 3) vertices and barycentric weights."""
    step = coords[1] - coords[0]
    vertices = np.zeros((68, 3), dtype=np.int64)
    weights = np.zeros((68, 3), dtype=np.float32)
    for n, (x, y) in enumerate(template):
        x, y = np.clip(x, -0.97, 0.97), np.clip(y, -0.97, 0.97)
        j, i = int((x + 1) // step), int((y + 1) // step)
        fx, fy = (x + 1) / step - j, (y + 1) / step - i
        if fx >= fy:  # triangle (a, b, d)
            tri, w = (index[i, j], index[i, j + 1], index[i + 1, j + 1]), (1 - fx, fx - fy, fy)
        else:  # triangle (a, d, c)
            tri, w = (index[i, j], index[i + 1, j + 1], index[i + 1, j]), (1 - fy, fx, fy - fx)
        if min(tri) < 0:  # a point outside the cut-out face: snap to the nearest vertex inside
            ii, jj = np.nonzero(index >= 0)
            k = np.argmin((coords[jj] - x) ** 2 + (coords[ii] - y) ** 2)
            tri, w = (index[ii[k], jj[k]],) * 3, (1.0, 0.0, 0.0)
        vertices[n], weights[n] = tri, w
    return vertices, weights
