"""Named per-photo parameters beyond the face model's own: head pose, translation, focal length, lighting and
(for models without an albedo space) a smooth colour field and free per-vertex colour."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.morphable.base import MorphableModel
from f2p.render.lighting import default_sh
from f2p.scene.color_basis import num_smooth_colors

POSE = "pose"  # (B, 3) axis-angle head rotation in model space
TRANSLATION = "translation"  # (B, 3) head position in the camera frame, metres
LOG_FOCAL = "log_focal"  # (B, 1) focal length = base focal * exp(log_focal)
LIGHT = "sh"  # (B, 27) second-order SH lighting, 9 coefficients x 3 colours (flattened)
SMOOTH_COLOR = "smooth_color"  # (B, K * 3) smooth colour offsets (scene.color_basis), only for models without albedo
VERTEX_COLOR = "vertex_color"  # (B, V * 3) free per-vertex colour offsets, only for models without albedo

SCENE_GROUPS = (POSE, TRANSLATION, LOG_FOCAL, LIGHT, SMOOTH_COLOR, VERTEX_COLOR)
NUM_SH = 9
DEFAULT_FOV_DEG = 12.0
"""Default horizontal field of view of the crop (a portrait lens at about 1 m)."""
DEFAULT_FACE_DISTANCE = 1.0
"""Default distance of the face from the camera in metres."""
BASE_COLOR = (0.7, 0.55, 0.45)
"""Skin tone that free per-vertex colours start from (models without albedo)."""


def landmark_frame(landmarks2d: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Where and how large a face's landmarks are: weighted centroid (B, 2) and weighted RMS distance from it (B,).

    Args:
        landmarks2d: (B, N, 2) points.
        weights: (N,) non-negative weights (a model's ``landmark_confidence``).
    """
    w = weights / weights.sum()
    center = (w[None, :, None] * landmarks2d).sum(1)  # (B, 2)
    spread = (w[None] * ((landmarks2d - center[:, None]) ** 2).sum(-1)).sum(1).sqrt()  # (B,)
    return center, spread


@dataclass(frozen=True)
class SceneSpec:
    """What is unknown about one photo, for a given face model and crop size.

    Attributes:
        model: the morphable model.
        image_size: (H, W) of the image the camera renders.
        fov_deg: field of view that defines the base focal length.
    """

    model: MorphableModel
    image_size: tuple[int, int]
    fov_deg: float = DEFAULT_FOV_DEG

    def __post_init__(self) -> None:
        clash = set(self.model.groups) & set(SCENE_GROUPS)
        if clash:
            raise ValueError(f"model {self.model.name!r} uses reserved parameter names {sorted(clash)}")

    @property
    def base_focal(self) -> float:
        """Focal length in pixels at ``log_focal = 0``."""
        return 0.5 * self.image_size[1] / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def free_vertex_color(self) -> bool:
        return not self.model.has_albedo

    def sizes(self) -> dict[str, int]:
        """{group name: K} for every group, model groups first."""
        sizes = {name: group.size for name, group in self.model.groups.items()}
        sizes.update({POSE: 3, TRANSLATION: 3, LOG_FOCAL: 1, LIGHT: NUM_SH * 3})
        if self.free_vertex_color:
            sizes[SMOOTH_COLOR] = num_smooth_colors(self.model.num_vertices) * 3
            sizes[VERTEX_COLOR] = self.model.num_vertices * 3
        return sizes

    def initial(self, batch_size: int, landmarks2d: Tensor | None = None) -> dict[str, Tensor]:
        """Neutral face, frontal pose, default light; placed to cover ``landmarks2d`` when given.

        Args:
            batch_size: B.
            landmarks2d: (B, 68, 2) observed landmarks in the rendered image's pixels, or None.

        Returns:
            {group name: (B, K)} float32 tensors on the model's device.
        """
        B, device = batch_size, self.model.device
        params = self.model.zero_params(B)
        params[POSE] = torch.zeros(B, 3, device=device)
        params[TRANSLATION] = torch.tensor([0.0, 0.0, DEFAULT_FACE_DISTANCE], device=device).repeat(B, 1)
        params[LOG_FOCAL] = torch.zeros(B, 1, device=device)
        params[LIGHT] = default_sh(B).to(device).reshape(B, NUM_SH * 3)
        if self.free_vertex_color:
            sizes = self.sizes()
            params[SMOOTH_COLOR] = torch.zeros(B, sizes[SMOOTH_COLOR], device=device)
            params[VERTEX_COLOR] = torch.zeros(B, sizes[VERTEX_COLOR], device=device)
        if landmarks2d is not None:
            params[TRANSLATION] = self.translation_covering(landmarks2d)
        return params

    def translation_covering(self, landmarks2d: Tensor) -> Tensor:
        """Translation (B, 3) that puts the neutral frontal face's landmarks over ``landmarks2d`` (B, 68, 2).

        Depth from the ratio of model and image landmark spreads, x/y from the centroids.
        """
        mean = self.model(**self.model.zero_params(1)).landmarks[0]  # (68, 3) model space
        weights = self.model.landmark_confidence  # (68,)
        w = weights / weights.sum()
        model_xy = mean[:, :2] * mean.new_tensor([1.0, -1.0])  # model y up -> image y down
        model_center, model_spread = landmark_frame(model_xy[None], weights)
        image_center, image_spread = landmark_frame(landmarks2d, weights)  # (B, 2), (B,)
        model_center, model_spread = model_center[0], model_spread[0]
        H, W = self.image_size
        principal = landmarks2d.new_tensor([(W - 1) / 2, (H - 1) / 2])
        camera_depth = self.base_focal * model_spread / image_spread.clamp_min(1e-3)  # (B,) of the landmarks
        xy = (image_center - principal) * camera_depth[:, None] / self.base_focal - model_center
        # camera z = t_z - model z for a frontal face
        return torch.cat([xy, (camera_depth + (w * mean[:, 2]).sum())[:, None]], dim=1)

    def clamp_(self, params: dict[str, Tensor]) -> None:
        """Project bounded model groups into their bounds, in place (no gradient)."""
        with torch.no_grad():
            for name, group in self.model.groups.items():
                if group.bounded and name in params:
                    params[name].copy_(group.clamp(params[name]))
