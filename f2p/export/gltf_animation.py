"""A clip's head as an animated glTF 2.0 binary: ``gltf.head_document`` plus one animation.

The animation (``animations[0]``, named ``CLIP_ANIMATION``) has two channels driven by samplers over the clip's
frame times (seconds from its first frame, the sampler input, shared):

- ``weights`` of the head node ``gltf.HEAD_NODE``: the mesh's morph weights per frame (``gltf.morph_weights`` of
  each frame's expression, in ``gltf.expression_components`` order), output ``N * K`` scalars frame by frame as
  glTF specifies for morph-weight samplers;
- ``rotation`` of the same node (of a skinned head's skeleton root, ``gltf_skin``, which carries its pose; its
  jaw, neck and eye joints keep the clip's identity fit's rotations): the head rotation per frame as unit quaternions (x, y, z, w), ``R_head`` in
  model space as ``gltf.pose_quaternion`` writes a photo's (for a clip: as seen by the video's camera).

Both interpolate linearly (glTF's ``LINEAR``: straight lines for weights, spherical for rotations). The node's
static rotation and the mesh's default weights are the first frame's, for viewers that do not play animations.
"""

from __future__ import annotations

import os

import numpy as np
import pygltflib
import torch
from torch import Tensor

from f2p.atomic import atomic_writer
from f2p.export.gltf import HEAD_NODE, head_document
from f2p.morphable.base import MorphableModel

CLIP_ANIMATION = "clip"
INTERPOLATION = "LINEAR"


def animated_head_gltf(model: MorphableModel, params: dict[str, Tensor], times: np.ndarray, weights: np.ndarray,
                       rotations: np.ndarray, colors: Tensor | None = None) -> bytes:
    """The .glb bytes of the head of ``params`` animated over a clip (module docstring).

    Args:
        model: the face model.
        params: {group: (K,)} the clip's shared parameters (identity; the expression is animated).
        times: (N,) increasing frame times in seconds.
        weights: (N, K) morph weights per frame (``gltf.morph_weights`` order).
        rotations: (N, 4) unit quaternions (x, y, z, w) per frame.
        colors: (V, 3) sRGB per-vertex colours in [0, 1], or None.

    Raises:
        ValueError: shapes that disagree, or times that do not increase.
    """
    N = len(times)
    if N == 0 or weights.ndim != 2 or weights.shape[0] != N or rotations.shape != (N, 4):
        raise ValueError(f"times (N,), weights (N, K) and rotations (N, 4) must agree on N; got {times.shape}, "
                         f"{weights.shape}, {rotations.shape}")
    if np.any(np.diff(times) <= 0):
        raise ValueError("frame times must increase strictly")
    builder = head_document(model, params, colors, pose=None)
    gltf = builder.gltf
    mesh = gltf.meshes[gltf.nodes[HEAD_NODE].mesh]
    if mesh.weights is not None and weights.shape[1] != len(mesh.weights):
        raise ValueError(f"weights have {weights.shape[1]} columns, the head has {len(mesh.weights)} morph targets")
    f32 = np.float32
    quaternions = rotations / np.linalg.norm(rotations, axis=1, keepdims=True)
    head = gltf.nodes[HEAD_NODE]  # a skinned head's pose is on its skeleton's root (``gltf_skin``), not on the mesh
    posed = HEAD_NODE if head.skin is None else gltf.skins[head.skin].skeleton
    gltf.nodes[posed].rotation = quaternions[0].tolist()
    source = builder.accessor(np.asarray(times, dtype=f32), pygltflib.SCALAR, min_max=True)
    samplers = [pygltflib.AnimationSampler(
        input=source, output=builder.accessor(quaternions.astype(f32), pygltflib.VEC4), interpolation=INTERPOLATION)]
    channels = [pygltflib.AnimationChannel(sampler=0, target=pygltflib.AnimationChannelTarget(node=posed,
                                                                                              path="rotation"))]
    if mesh.weights is not None:
        mesh.weights = weights[0].astype(float).tolist()
        samplers.append(pygltflib.AnimationSampler(
            input=source, output=builder.accessor(weights.astype(f32).reshape(-1), pygltflib.SCALAR),
            interpolation=INTERPOLATION))
        channels.append(pygltflib.AnimationChannel(sampler=1, target=pygltflib.AnimationChannelTarget(
            node=HEAD_NODE, path="weights")))
    gltf.animations.append(pygltflib.Animation(name=CLIP_ANIMATION, samplers=samplers, channels=channels))
    return builder.to_bytes()


def write_animated_head_glb(path: str | os.PathLike, model: MorphableModel, params: dict[str, Tensor],
                            times: np.ndarray, weights: np.ndarray, rotations: np.ndarray,
                            colors: Tensor | None = None) -> None:
    """Write ``animated_head_gltf(...)`` to ``path`` atomically."""
    data = animated_head_gltf(model, params, times, weights, rotations, colors)
    with atomic_writer(path) as handle:
        handle.write(data)


def quaternions_xyzw(wxyz: Tensor) -> np.ndarray:
    """(N, 4) quaternions (w, x, y, z), as ``render.rotations`` gives them -> (N, 4) float64 (x, y, z, w)."""
    return torch.as_tensor(wxyz).detach().double().cpu().numpy()[:, [1, 2, 3, 0]]
