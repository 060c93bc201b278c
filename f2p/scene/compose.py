"""Scene parameters -> mesh -> camera -> render."""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.conventions import NUM_LANDMARKS
from f2p.morphable.base import MeshOutput, MorphableModel
from f2p.morphable.dense import dense_landmarks, landmark_points
from f2p.morphable.ict import SOCKET_GREYS, socket_vertices
from f2p.render.cameras import PinholeCamera
from f2p.render.renderer import MeshRenderer, RenderOutput
from f2p.render.rotations import head_pose_extrinsics
from f2p.scene.color_basis import smooth_colors
from f2p.scene.params import BASE_COLOR, LOG_FOCAL, POSE, SMOOTH_COLOR, TRANSLATION, VERTEX_COLOR, SceneSpec


@dataclass(frozen=True)
class SceneOutput:
    """Everything produced from one set of scene parameters.

    Attributes:
        camera: the pinhole camera (world = model space).
        landmarks2d: (B, 68, 2) projected landmarks in pixels.
        mesh: the model's output (verts (B, V, 3), landmarks (B, 68, 3), albedo or None); None for a
            landmark-only scene.
        colors: (B, V, 3) per-vertex colour that was rendered; None for a landmark-only scene.
        render: the renderer's output; None for a landmark-only scene.
        dense2d: (B, 468, 2) projected dense landmarks (``morphable.dense``) in pixels, when asked for, else None.
    """

    camera: PinholeCamera
    landmarks2d: Tensor
    mesh: MeshOutput | None
    colors: Tensor | None
    render: RenderOutput | None
    dense2d: Tensor | None = None

    def row(self, i: int) -> SceneOutput:
        """The scene of item ``i`` alone, as a batch of 1 (every batched tensor, camera and render included)."""
        return _batch_row(self, i)


def _batch_row(value, i: int):
    """Item ``i`` of ``value`` as a batch of 1: tensors are sliced, dataclasses (cameras, renders, meshes) field by
    field; anything else (image sizes) is kept."""
    if isinstance(value, Tensor):
        return value[i:i + 1]
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{f.name: _batch_row(getattr(value, f.name), i)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def scene_camera(spec: SceneSpec, params: dict[str, Tensor]) -> PinholeCamera:
    """Pinhole camera of ``params``: focal from ``log_focal``, principal point at the image centre."""
    H, W = spec.image_size
    R, t = head_pose_extrinsics(params[POSE], params[TRANSLATION])
    B = R.shape[0]
    focal = spec.base_focal * params[LOG_FOCAL][:, 0].exp()  # (B,)
    cx = torch.full((B,), (W - 1) / 2, device=R.device)
    cy = torch.full((B,), (H - 1) / 2, device=R.device)
    return PinholeCamera(fx=focal, fy=focal, cx=cx, cy=cy, R=R, t=t, image_size=(H, W))


def scene_colors(spec: SceneSpec, params: dict[str, Tensor], mesh: MeshOutput) -> Tensor:
    """(B, V, 3) colours: the model's albedo, or the base skin tone plus the smooth colour field and the free
    per-vertex offsets (each when present in ``params``); the model's inner surfaces grey (``paint_sockets``)."""
    if mesh.albedo is not None:
        return paint_sockets(spec.model, mesh.albedo)
    B, V, _ = mesh.verts.shape
    colors = mesh.verts.new_tensor(BASE_COLOR).expand(B, V, 3)
    if SMOOTH_COLOR in params:
        colors = colors + smooth_colors(spec.model, spec.smooth_color_coefficients(params))
    if VERTEX_COLOR in params:
        colors = colors + spec.vertex_colors(params)
    return paint_sockets(spec.model, colors.clamp(0.0, 1.0))


def paint_sockets(model: MorphableModel, colors: Tensor) -> Tensor:
    """(B, V, 3) ``colors`` with the model's inner surfaces (``morphable.ict.socket_vertices``: ICT's eye and mouth
    sockets) in their ``SOCKET_GREYS``; ``colors`` itself for models without them."""
    paint = _socket_paint(model, colors.device)
    if paint is None:
        return colors
    inner, grey = paint
    return torch.where(inner, grey.to(colors.dtype), colors)


_socket_paints: weakref.WeakKeyDictionary[MorphableModel, tuple[Tensor, Tensor] | None] = weakref.WeakKeyDictionary()


def _socket_paint(model: MorphableModel, device: torch.device) -> tuple[Tensor, Tensor] | None:
    """(V, 1) bool, the model's socket vertices, and (V, 1) their grey, on ``device``, or None for a model without
    sockets; built once per model and device (every render step paints them)."""
    if model in _socket_paints:
        paint = _socket_paints[model]
        if paint is None or paint[0].device == device:
            return paint
    sockets = socket_vertices(model.name, model.num_vertices)
    paint = None
    if sockets:
        inner = torch.zeros(model.num_vertices, 1, dtype=torch.bool)
        grey = torch.zeros(model.num_vertices, 1)
        for name, vertices in sockets.items():
            inner[torch.from_numpy(vertices)] = True
            grey[torch.from_numpy(vertices)] = SOCKET_GREYS[name]
        paint = inner.to(device), grey.to(device)
    _socket_paints[model] = paint
    return paint


def face_triangles(model: MorphableModel) -> Tensor:
    """(F', 3) the model's triangles with a vertex in ``model.face_region``: what photometric and identity losses
    see (they are masked to the face), at about half the cost of the whole head for ICT."""
    return model.faces[model.face_region[model.faces].any(dim=1)]


def mesh_scene(spec: SceneSpec, params: dict[str, Tensor]) -> SceneOutput:
    """The mesh, colours, camera and projected landmarks of ``params`` without a render (``render`` None): what an
    export that writes no pictures needs."""
    camera = scene_camera(spec, params)
    mesh = spec.model(**_model_params(spec, params))
    return SceneOutput(camera, camera.project(mesh.landmarks), mesh, scene_colors(spec, params, mesh), None, None)


def _model_params(spec: SceneSpec, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """The face model's own groups of ``params``."""
    return {name: params[name] for name in spec.model.groups if name in params}


def render_scene(spec: SceneSpec, params: dict[str, Tensor], renderer: MeshRenderer | None,
                 faces: Tensor | None = None, dense: bool = False) -> SceneOutput:
    """Build the mesh and camera of ``params`` and render them (or only project landmarks if no renderer).

    Args:
        spec: what the parameters mean.
        params: {group name: (B, K)} as produced by ``SceneSpec.initial`` (or a regressor).
        renderer: the mesh renderer, or None for a landmark-only scene (no mesh is built: landmark stages).
        faces: (F', 3) triangles to render (e.g. ``face_triangles``), or None for all of the model's.
        dense: also project the 468 dense landmarks (``SceneOutput.dense2d``).
    """
    model_params = _model_params(spec, params)
    camera = scene_camera(spec, params)
    if renderer is None:  # the 68 and the dense points in one blend and one projection
        points = camera.project(landmark_points(spec.model, dense, **model_params))
        return SceneOutput(camera, points[:, :NUM_LANDMARKS], None, None, None,
                           points[:, NUM_LANDMARKS:] if dense else None)
    dense2d = camera.project(dense_landmarks(spec.model, **model_params)) if dense else None
    mesh = spec.model(**model_params)
    colors = scene_colors(spec, params, mesh)
    render = renderer(mesh.verts, spec.model.faces if faces is None else faces, camera, spec.lighting(params),
                      colors=colors, landmarks=mesh.landmarks)
    return SceneOutput(camera, render.landmarks2d, mesh, colors, render, dense2d)
