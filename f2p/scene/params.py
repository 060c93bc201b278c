"""Named per-photo parameters beyond the face model's own: head pose, translation, focal length, lighting and
(for models without an albedo space) a smooth colour field and free per-vertex colour.

Each is a ``SceneGroup``, the scene's counterpart of the model's ``ParamGroup``: its one definition gives the
unflattened shape, the fitting prior and the regressor's output scale. Parameters travel flattened, as
{group name: (B, K)}; ``SceneSpec.lighting`` and friends give them their shapes back.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from f2p.morphable.base import MorphableModel
from f2p.render.cameras import DEFAULT_FOV_DEG, default_focal_px
from f2p.render.lighting import NUM_SH, default_sh
from f2p.scene.color_basis import num_smooth_colors

POSE = "pose"  # (B, 3) axis-angle head rotation in model space
TRANSLATION = "translation"  # (B, 3) head position in the camera frame, metres
LOG_FOCAL = "log_focal"  # (B, 1) focal length = base focal * exp(log_focal)
LIGHT = "sh"  # (B, 27) second-order SH lighting, 9 coefficients x 3 colours (flattened)
SMOOTH_COLOR = "smooth_color"  # (B, K * 3) smooth colour offsets (scene.color_basis), only for models without albedo
VERTEX_COLOR = "vertex_color"  # (B, V * 3) free per-vertex colour offsets, only for models without albedo

SCENE_GROUPS = (POSE, TRANSLATION, LOG_FOCAL, LIGHT, SMOOTH_COLOR, VERTEX_COLOR)
DEFAULT_FACE_DISTANCE = 1.0
"""Default distance of the face from the camera in metres."""
BASE_COLOR = (0.7, 0.55, 0.45)
"""Skin tone that free per-vertex colours start from (models without albedo)."""


@dataclass(frozen=True)
class SceneGroup:
    """One named group of per-photo scene parameters.

    Attributes:
        name: the group's key in a params dict.
        shape: shape of one photo's values, e.g. (9, 3) for the light; params hold them flattened row-major to
            (B, K), K = ``size``.
        prior_std: standard deviation of the fitting prior, a zero-mean Gaussian on every component; math.inf for
            no prior.
        scale: the regressor's output change per unit of network output (``nets.param_head.ParamHead``), one value
            for every component or one per component; None for ``prior_std``.
    """

    name: str
    shape: tuple[int, ...]
    prior_std: float
    scale: float | tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scale, tuple) and len(self.scale) != self.size:
            raise ValueError(f"scene group {self.name!r}: scale has {len(self.scale)} entries, expected {self.size}")
        if self.scale is None and not math.isfinite(self.prior_std):
            raise ValueError(f"scene group {self.name!r}: a group without a prior needs a scale")

    @property
    def size(self) -> int:
        """K, the number of components."""
        return math.prod(self.shape)

    def prior_stds(self, device: torch.device | str | None = None) -> Tensor:
        """(K,) prior standard deviation of every component (math.inf for none)."""
        return torch.full((self.size,), self.prior_std, device=device)

    def output_scales(self, device: torch.device | str | None = None) -> Tensor:
        """(K,) regressor output scale of every component."""
        scale = self.prior_std if self.scale is None else self.scale
        return torch.tensor(scale, device=device).expand(self.size).clone()

    def flatten(self, values: Tensor) -> Tensor:
        """(..., *shape) -> (..., K)."""
        if tuple(values.shape[values.ndim - len(self.shape):]) != self.shape:
            raise ValueError(f"{self.name} values must have shape (..., {', '.join(map(str, self.shape))}), "
                             f"got {tuple(values.shape)}")
        return values.flatten(values.ndim - len(self.shape))

    def unflatten(self, values: Tensor) -> Tensor:
        """(..., K) -> (..., *shape)."""
        if values.ndim == 0 or values.shape[-1] != self.size:
            raise ValueError(f"{self.name} values must have shape (..., {self.size}), got {tuple(values.shape)}")
        return values.unflatten(-1, self.shape)


POSE_GROUP = SceneGroup(POSE, (3,), prior_std=0.6)
"""Radians: a soft prior that only keeps runaway poses in check."""
TRANSLATION_GROUP = SceneGroup(TRANSLATION, (3,), prior_std=math.inf, scale=(0.02, 0.02, 0.2))
"""No prior on where the head is. Regressor scale in metres, x, y, z: depth is poorly determined by an image (it
trades against the focal length), so it gets a wider scale."""
LOG_FOCAL_GROUP = SceneGroup(LOG_FOCAL, (1,), prior_std=0.3)
"""About 35 % either way from the base focal length at one standard deviation."""
LIGHT_GROUP = SceneGroup(LIGHT, (NUM_SH, 3), prior_std=math.inf, scale=0.5)
"""No prior on the light. Regressor scale in SH coefficient units (the default ambient coefficient is about 2.5)."""
COMMON_GROUPS = (POSE_GROUP, TRANSLATION_GROUP, LOG_FOCAL_GROUP, LIGHT_GROUP)
"""The scene groups of every model (their shapes do not depend on it)."""


def color_groups(num_vertices: int) -> tuple[SceneGroup, SceneGroup]:
    """The colour groups of a model without an albedo space and with ``num_vertices`` vertices V: the smooth
    colour field, (K, 3) coefficients of ``scene.color_basis`` (whose functions have unit RMS over the vertices),
    and the free per-vertex colour offsets, (V, 3)."""
    return (SceneGroup(SMOOTH_COLOR, (num_smooth_colors(num_vertices), 3), prior_std=0.1),
            SceneGroup(VERTEX_COLOR, (num_vertices, 3), prior_std=0.2))


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
        """Focal length in pixels at ``log_focal = 0``: ``fov_deg`` across the image width."""
        return default_focal_px(self.image_size, self.fov_deg)

    @property
    def free_vertex_color(self) -> bool:
        return not self.model.has_albedo

    def scene_groups(self) -> dict[str, SceneGroup]:
        """{group name: SceneGroup} of the scene: ``COMMON_GROUPS``, then ``color_groups`` for models without
        albedo."""
        groups = COMMON_GROUPS + (color_groups(self.model.num_vertices) if self.free_vertex_color else ())
        return {group.name: group for group in groups}

    def sizes(self) -> dict[str, int]:
        """{group name: K} for every group, model groups first."""
        sizes = {name: group.size for name, group in self.model.groups.items()}
        sizes.update({name: group.size for name, group in self.scene_groups().items()})
        return sizes

    def prior_stds(self) -> dict[str, Tensor]:
        """{group name: (K,) prior standard deviation} for every group (math.inf where there is no prior), model
        groups first, on the model's device."""
        device = self.model.device
        stds = {name: torch.tensor(group.prior_std, device=device) for name, group in self.model.groups.items()}
        stds.update({name: group.prior_stds(device) for name, group in self.scene_groups().items()})
        return stds

    def output_scales(self) -> dict[str, Tensor]:
        """{group name: (K,) regressor output per unit of network output} for every unbounded group (bounded model
        groups span their range instead): model groups their prior std, scene groups their ``scale``; on the
        model's device."""
        device = self.model.device
        scales = {name: torch.tensor(group.prior_std, device=device)
                  for name, group in self.model.groups.items() if not group.bounded}
        scales.update({name: group.output_scales(device) for name, group in self.scene_groups().items()})
        return scales

    @staticmethod
    def lighting(params: dict[str, Tensor]) -> Tensor:
        """(B, 9, 3) SH coefficients (9 x RGB) of ``params`` (B, 27); a single photo's (27,) gives (9, 3)."""
        return LIGHT_GROUP.unflatten(params[LIGHT])

    def smooth_color_coefficients(self, params: dict[str, Tensor]) -> Tensor:
        """(B, K, 3) coefficients of the smooth colour field (``scene.color_basis``) of ``params``."""
        return self._unflatten(SMOOTH_COLOR, params)

    def vertex_colors(self, params: dict[str, Tensor]) -> Tensor:
        """(B, V, 3) free per-vertex colour offsets of ``params``."""
        return self._unflatten(VERTEX_COLOR, params)

    def _unflatten(self, name: str, params: dict[str, Tensor]) -> Tensor:
        groups = self.scene_groups()
        if name not in groups:
            raise KeyError(f"model {self.model.name!r} has an albedo space: its scene has no {name!r} group")
        return groups[name].unflatten(params[name])

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
        params[LIGHT] = LIGHT_GROUP.flatten(default_sh(B).to(device))
        if self.free_vertex_color:
            for group in color_groups(self.model.num_vertices):
                params[group.name] = torch.zeros(B, group.size, device=device)
        if landmarks2d is not None:
            params[TRANSLATION] = self.translation_covering(landmarks2d)
        return params

    def translation_covering(self, landmarks2d: Tensor) -> Tensor:
        """Translation (B, 3) that puts the neutral frontal face's landmarks over ``landmarks2d`` (B, 68, 2).

        Depth from the ratio of model and image landmark spreads, x/y from the centroids.
        """
        model_center, model_spread, mean_depth = _neutral_frame(self.model)
        image_center, image_spread = landmark_frame(landmarks2d, self.model.landmark_confidence)  # (B, 2), (B,)
        H, W = self.image_size
        principal = landmarks2d.new_tensor([(W - 1) / 2, (H - 1) / 2])
        camera_depth = self.base_focal * model_spread / image_spread.clamp_min(1e-3)  # (B,) of the landmarks
        xy = (image_center - principal) * camera_depth[:, None] / self.base_focal - model_center
        # camera z = t_z - model z for a frontal face
        return torch.cat([xy, (camera_depth + mean_depth)[:, None]], dim=1)

    def clamp_(self, params: dict[str, Tensor]) -> None:
        """Project bounded model groups into their bounds, in place (no gradient)."""
        with torch.no_grad():
            for name, group in self.model.groups.items():
                if group.bounded and name in params:
                    params[name].copy_(group.clamp(params[name]))


_neutral_frames: weakref.WeakKeyDictionary[MorphableModel, tuple[Tensor, Tensor, Tensor]] = \
    weakref.WeakKeyDictionary()


def _neutral_frame(model: MorphableModel) -> tuple[Tensor, Tensor, Tensor]:
    """The neutral face's 68 landmarks in image axes (model y up -> image y down, metres): their (2,) weighted
    centroid, () spread (``landmark_frame``) and () weighted mean depth, on the model's device (once per model)."""
    cached = _neutral_frames.get(model)
    if cached is not None and cached[0].device == model.device:
        return cached
    with torch.no_grad():
        mean = model.landmarks(**model.zero_params(1))[0]  # (68, 3) model space, without the mesh
        weights = model.landmark_confidence  # (68,)
        center, spread = landmark_frame((mean[:, :2] * mean.new_tensor([1.0, -1.0]))[None], weights)
        frame = (center[0], spread[0], (weights / weights.sum() * mean[:, 2]).sum())
    _neutral_frames[model] = frame
    return frame
