"""Landmark regressor: a face's dense (468) and 68 landmarks in crop pixels -> every parameter group landmarks
determine (the model's identity and expression, head pose, translation, focal length), in one pass.

The landmarks are first turned upright: the in-plane rotation of the 68 points against the neutral face's
(weighted Procrustes) is undone about the principal point, and the prediction is rolled back with
``scene.camera_roll.rolled`` (exact for f2p's cameras), so an in-plane turn of the photo changes nothing but the
predicted roll. Then they are brought into the face's own frame as ``nets.landmarks.LandmarkEncoder`` does (weighted
centroid and spread of the 68 points, ``scene.params.landmark_frame``), as offsets from the neutral frontal face's points amplified by ``LANDMARK_GAIN``,
each multiplied by its presence (confidence > 0: a photo without dense points gives zeros there), next to the
presences and the frame's offset from the neutral face's (log spread ratio, centre shift). An MLP (``depth``
layers of ``hidden`` units, LayerNorm and GELU, then ``blocks`` pre-norm residual blocks ``x + W2 GELU(W1 LN(x))``
of the same width and a final LayerNorm; ``blocks=0``, the shipped ICT network, has neither; the SFM one has 3)
feeds ``nets.encoder.ParamHead`` restricted to the geometric groups: sliders stay in their bounds, the translation
is a correction of ``SceneSpec.translation_covering``.
The groups landmarks do not determine (light, colours) are ``SceneSpec.initial``'s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from f2p.conventions import NUM_LANDMARKS
from f2p.face_mesh import NUM_MESH_POINTS
from f2p.nets.encoder import ParamHead
from f2p.nets.landmarks import LANDMARK_GAIN
from f2p.scene.camera_roll import rolled
from f2p.scene.compose import render_scene
from f2p.scene.params import LOG_FOCAL, POSE, TRANSLATION, SceneSpec, landmark_frame

GEOMETRY_GROUPS = (POSE, TRANSLATION, LOG_FOCAL)
"""The scene groups landmarks determine (light and colour they do not)."""
FRAME_FEATURES = 3
"""log spread ratio and centre shift (x, y) of the face's frame against the neutral face's."""


class ResidualBlock(nn.Module):
    """Pre-norm residual MLP block: (B, C) -> (B, C), ``x + W2 GELU(W1 LayerNorm(x))``; W2 starts at zero, so a new
    block starts as the identity.

    Args:
        width: C.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.outer(nn.functional.gelu(self.inner(self.norm(x))))


class LandmarkRegressor(nn.Module):
    """(B, 68, 2) and (B, 468, 2) landmarks with confidences -> {group: (B, K)} (module docstring).

    Args:
        spec: the scene the crops belong to (its neutral frontal face is the reference).
        hidden: width of the MLP.
        depth: hidden layers of the MLP (Linear, LayerNorm, GELU).
        blocks: residual blocks after them (``ResidualBlock``, then a LayerNorm); 0: none (the first network).
    """

    def __init__(self, spec: SceneSpec, hidden: int = 512, depth: int = 3, blocks: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.hidden, self.depth, self.blocks = hidden, depth, blocks
        self.groups = tuple(spec.model.groups) + GEOMETRY_GROUPS
        self.register_buffer("weights", spec.model.landmark_confidence.detach().float().cpu(), persistent=False)
        with torch.no_grad():
            neutral = render_scene(spec, spec.initial(1), None, dense=True)
            centre, spread = landmark_frame(neutral.landmarks2d.cpu(), self.weights)
        self.register_buffer("ref_centre", centre[0], persistent=False)
        self.register_buffer("ref_spread", spread[0], persistent=False)
        self.register_buffer("ref_landmarks", self._normalise(neutral.landmarks2d.cpu(), centre, spread)[0],
                             persistent=False)
        self.register_buffer("ref_dense", self._normalise(neutral.dense2d.cpu(), centre, spread)[0], persistent=False)
        layers, width = [], (NUM_LANDMARKS + NUM_MESH_POINTS) * 3 + FRAME_FEATURES
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU()]
            width = hidden
        if blocks > 0:
            layers += [ResidualBlock(hidden) for _ in range(blocks)] + [nn.LayerNorm(hidden)]
        self.net = nn.Sequential(*layers)
        self.head = ParamHead(hidden, spec, groups=self.groups)

    @staticmethod
    def _normalise(points: Tensor, centre: Tensor, spread: Tensor) -> Tensor:
        """(B, N, 2) -> (B, N, 2) in the frame (B, 2) centre, (B,) spread."""
        return (points - centre[:, None]) / spread.clamp_min(1e-6)[:, None, None]

    def features(self, landmarks: Tensor, confidence: Tensor, dense: Tensor | None,
                 dense_confidence: Tensor | None) -> Tensor:
        """(B, 68 * 3 + 468 * 3 + 3) network input (module docstring); ``dense`` None: no dense points."""
        B = landmarks.shape[0]
        if dense is None or dense_confidence is None:
            dense = landmarks.new_zeros(B, NUM_MESH_POINTS, 2)
            dense_confidence = landmarks.new_zeros(B, NUM_MESH_POINTS)
        centre, spread = landmark_frame(landmarks, self.weights)  # (B, 2), (B,)
        parts = []
        for points, present, reference in ((landmarks, confidence > 0, self.ref_landmarks),
                                           (dense, dense_confidence > 0, self.ref_dense)):
            present = present.to(points.dtype)  # (B, N)
            offsets = (self._normalise(points, centre, spread) - reference) * LANDMARK_GAIN * present[..., None]
            parts += [offsets.flatten(1), present]
        frame = torch.cat([(spread / self.ref_spread).log()[:, None], (centre - self.ref_centre) / self.ref_spread], 1)
        return torch.cat(parts + [frame], dim=1)

    def in_plane_rotation(self, landmarks: Tensor, confidence: Tensor) -> Tensor:
        """(B, 2, 2) rotation taking the neutral face's 68 points to the observed ones' orientation (weighted
        Procrustes in the face's frame; pixel coordinates x right, y down)."""
        centre, spread = landmark_frame(landmarks, self.weights)
        points = self._normalise(landmarks, centre, spread)  # (B, 68, 2)
        reference = self.ref_landmarks - (self.weights[:, None] * self.ref_landmarks).sum(0) / self.weights.sum()
        w = self.weights * (confidence > 0)  # (B, 68)
        cos = (w * (reference * points).sum(-1)).sum(1)
        sin = (w * (reference[:, 0] * points[..., 1] - reference[:, 1] * points[..., 0])).sum(1)
        angle = torch.atan2(sin, cos)  # (B,)
        return torch.stack([torch.stack([angle.cos(), -angle.sin()], -1),
                            torch.stack([angle.sin(), angle.cos()], -1)], -2)

    def forward(self, landmarks: Tensor, confidence: Tensor, dense: Tensor | None = None,
                dense_confidence: Tensor | None = None) -> dict[str, Tensor]:
        """Landmarks in the pixels of crops of the spec's size -> {group: (B, K)} for every group of the scene.

        Args:
            landmarks: (B, 68, 2) iBUG-68 points; confidence: (B, 68).
            dense: (B, 468, 2) MediaPipe face-mesh points, or None; dense_confidence: (B, 468), or None.
        """
        B = landmarks.shape[0]
        H, W = self.spec.image_size
        principal = landmarks.new_tensor([(W - 1) / 2, (H - 1) / 2])
        rotation = self.in_plane_rotation(landmarks, confidence)  # (B, 2, 2)

        def upright(points: Tensor | None) -> Tensor | None:  # rows: R^T (p - c) + c
            return None if points is None else (points - principal) @ rotation + principal

        landmarks, dense = upright(landmarks), upright(dense)
        initial = self.spec.initial(B, landmarks)
        predicted = self.head(self.net(self.features(landmarks, confidence, dense, dense_confidence)), initial)
        return rolled({**initial, **predicted}, rotation)
