"""A synthetic clip with known parameters, for the video benchmark and tests, and its scores.

The clip: one random ICT-style face (identity from the model's prior, a smooth random skin colour field, a
random background; ``data.synthetic.SceneSampler``) ``FACE_HEIGHT_PX`` tall by default, in the middle of the frame, whose
``MOVING_SLIDERS`` follow smooth curves ``a (1 - cos(2 pi f t + phi)) / 2`` (amplitude a in ``AMPLITUDE``,
frequency f in ``FREQUENCY_HZ``, random phase; every other slider at 0), whose head turns (yaw, pitch, roll
sinusoids of ``HEAD_AMPLITUDE_DEG``) and whose light drifts (the directional SH coefficients rotate slowly).
Frames are rendered by f2p's renderer; ``encode_clip`` writes them as an H.264 .mp4 (``export.video``).

Scores (``score_clip``): per moving slider the mean absolute error of the recovered curve over the frames, in
slider units; the identity's face-region vertex error at neutral expression after similarity alignment
(``evaluation.geometry.vertex_errors``, mm, median over the region's vertices).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from f2p.conventions import MM_PER_M
from f2p.data.synthetic import SceneSampler, random_background
from f2p.evaluation.geometry import vertex_errors
from f2p.export.video import overlay_video
from f2p.morphable.base import MorphableModel
from f2p.render.lighting import NUM_SH
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import euler_to_axis_angle
from f2p.scene.compose import render_scene
from f2p.scene.params import LIGHT, LOG_FOCAL, POSE, TRANSLATION, SceneSpec

MOVING_SLIDERS = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L",
                  "browInnerUp_R", "mouthFunnel")
AMPLITUDE = (0.4, 0.8)
FREQUENCY_HZ = (0.3, 0.8)
HEAD_AMPLITUDE_DEG = (20.0, 8.0, 5.0)
"""Yaw, pitch, roll amplitudes; their frequencies are ``HEAD_FREQUENCY_HZ``."""
HEAD_FREQUENCY_HZ = (0.25, 0.35, 0.2)
LIGHT_TURN_HZ = 0.1
"""Turns per second of the directional light about the view axis."""
FACE_HEIGHT_PX = 200.0
"""Height of the face (brows to chin, about 0.12 m) in the frame: sets the head's distance."""
FACE_HEIGHT_M = 0.12
BACKGROUND_STD = 0.15


@dataclass(frozen=True)
class SyntheticClip:
    """A rendered clip and its truth (N frames).

    Attributes:
        frames: (N, 3, H, W) RGB in [0, 1].
        times: (N,) seconds.
        params: {group: (N, K)} the true parameters of every frame in the frame's scene.
        landmarks: (N, 68, 2) projected model landmarks, frame pixels.
        dense: (N, 468, 2) projected dense landmarks (``morphable.dense``), frame pixels.
        moving: indices of ``MOVING_SLIDERS`` in the expression group.
    """

    frames: Tensor
    times: np.ndarray
    params: dict[str, Tensor]
    landmarks: Tensor
    dense: Tensor
    moving: tuple[int, ...]


def synthetic_clip(model: MorphableModel, renderer: MeshRenderer, frames: int, size: tuple[int, int] = (480, 640),
                   fps: float = 30.0, seed: int = 0, face_height_px: float = FACE_HEIGHT_PX) -> SyntheticClip:
    """Render a clip of ``frames`` frames of (H, W) ``size`` with the face ``face_height_px`` tall (module
    docstring)."""
    g = torch.Generator().manual_seed(seed)
    spec = SceneSpec(model, size)
    mean = model(**model.zero_params(1)).verts[0]
    base = SceneSampler().sample(spec, torch.zeros(3), mean, g)
    names = model.groups["expression"].component_names
    moving = tuple(names.index(n) for n in MOVING_SLIDERS)
    times = np.arange(frames) / fps
    t = torch.from_numpy(times).float()[:, None]  # (N, 1)

    def uniform(low: float, high: float, n: int) -> Tensor:
        return low + (high - low) * torch.rand(n, generator=g)

    M = len(moving)
    amplitude, frequency = uniform(*AMPLITUDE, M), uniform(*FREQUENCY_HZ, M)
    phase = uniform(0.0, 2 * math.pi, M)
    expression = torch.zeros(frames, model.groups["expression"].size)
    expression[:, list(moving)] = amplitude * (1 - torch.cos(2 * math.pi * frequency * t + phase)) / 2
    head_phase = uniform(0.0, 2 * math.pi, 3)
    angles = torch.tensor(HEAD_AMPLITUDE_DEG) * torch.sin(
        2 * math.pi * torch.tensor(HEAD_FREQUENCY_HZ) * t + head_phase)  # (N, 3)
    depth = spec.base_focal * FACE_HEIGHT_M / face_height_px
    sh = base[LIGHT].reshape(1, NUM_SH, 3).repeat(frames, 1, 1)
    turn = 2 * math.pi * LIGHT_TURN_HZ * t[:, 0]
    x, y = sh[:, 3].clone(), sh[:, 1].clone()  # first-order x and y coefficients (light frame)
    sh[:, 3] = x * torch.cos(turn)[:, None] - y * torch.sin(turn)[:, None]
    sh[:, 1] = x * torch.sin(turn)[:, None] + y * torch.cos(turn)[:, None]
    params = {name: value.expand(frames, -1).clone() for name, value in base.items()}
    params.update({"expression": expression, POSE: euler_to_axis_angle(angles),
                   TRANSLATION: torch.tensor([[0.0, 0.0, depth]]).expand(frames, 3).clone(),
                   LOG_FOCAL: torch.zeros(frames, 1), LIGHT: sh.reshape(frames, -1)})
    background = random_background(max(size), BACKGROUND_STD, g)[:, :size[0], :size[1]]
    images, landmarks, dense = [], [], []
    with torch.no_grad():
        for i in range(frames):
            row = {name: value[i:i + 1] for name, value in params.items()}
            scene = render_scene(spec, row, renderer, dense=True)
            mask = scene.render.mask[0]
            images.append(scene.render.image[0] * mask + background * (1 - mask))
            landmarks.append(scene.landmarks2d[0])
            dense.append(scene.dense2d[0])
    return SyntheticClip(torch.stack(images), times, params, torch.stack(landmarks), torch.stack(dense), moving)


def encode_clip(path: str | os.PathLike, clip: SyntheticClip, fps: float = 30.0) -> None:
    """Write the clip's frames as an H.264 .mp4."""
    with overlay_video(path, fps, tuple(clip.frames.shape[-2:])) as video:
        for frame in clip.frames:
            video.write(frame)


def slider_errors(expression: np.ndarray, clip: SyntheticClip, names: tuple[str, ...]) -> dict[str, float]:
    """{slider name: mean absolute error over the frames} of the (N, K) recovered expression, moving sliders."""
    truth = clip.params["expression"].numpy()
    return {names[k]: float(np.abs(expression[:, k] - truth[:, k]).mean()) for k in clip.moving}


@torch.no_grad()
def identity_error_mm(model: MorphableModel, identity: Tensor, clip: SyntheticClip) -> Tensor:
    """(B,) median face-region vertex error (mm, similarity-aligned) of (B, K) identities at neutral expression."""
    B = identity.shape[0]
    zeros = model.zero_params(B)
    fitted = model(**{**zeros, "identity": identity.to(model.device)}).verts
    truth = model(**{**zeros, "identity": clip.params["identity"][:1].expand(B, -1).to(model.device)}).verts
    return vertex_errors(fitted, truth, model.face_region, "similarity").median(dim=1).values * MM_PER_M
