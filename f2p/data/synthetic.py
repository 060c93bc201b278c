"""Synthetic faces with known parameters: drawn from the face model's priors, rendered by f2p's own renderer.

Item ``i`` of a dataset is a pure function of ``(seed, i)``: its parameters are drawn with a generator seeded from
both and rendered on demand, so train, validation and test sets (different seeds) are disjoint, identical across
runs and processes (DDP ranks), and cost no disk. The images imitate aligned photo crops: the neutral frontal face
sits where ``f2p.perception.crop`` puts a face, then pose, distance, focal length, light, colour and background vary.

Like photos, the images can hold more than the explicit model renders (``SceneSampler.specular_max > 0``, as in
``configs/regressor.yaml``): a specular highlight (Blinn-Phong, from the light's dominant direction) on top of f2p's
Lambertian shading. The parameters cannot explain it; the neural refiner, which sees normals and shading, can, and
that is what the refined portrait is for.

Used for supervised pre-training, for tests, and as the default data of ``configs/regressor.yaml``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import Dataset

from f2p.data import batch as keys
from f2p.data.split_loaders import SplitLoaders
from f2p.morphable.registry import load_model
from f2p.perception.align import apply_affine
from f2p.perception.crop import crop_matrix
from f2p.perception.masks import face_region_mask
from f2p.perception.photo import MASK_SOFTNESS
from f2p.render.lighting import CAMERA_TO_LIGHT, default_sh
from f2p.render.renderer import MeshRenderer, RenderOutput
from f2p.render.rotations import euler_to_axis_angle
from f2p.scene.compose import SceneOutput, render_scene
from f2p.scene.params import BASE_COLOR, LIGHT, LOG_FOCAL, NUM_SH, POSE, TRANSLATION, VERTEX_COLOR, SceneSpec

log = logging.getLogger("f2p")

SOURCE = "synthetic"
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2, "predict": 3}
"""Offsets added to the data module's seed per split."""
COLOR_WAVES = 4
"""Sinusoids summed into the smooth per-vertex colour field of models without albedo."""
COLOR_WAVELENGTH = 0.15
"""Metres: typical wavelength of the colour field's sinusoids."""
BACKGROUND_CELLS = 4
"""The background's smooth pattern is bilinearly upsampled from this many cells per side."""


@dataclass(frozen=True)
class SceneSampler:
    """The distribution synthetic scenes are drawn from.

    Attributes:
        prior_scale: model groups are ``N(0, (prior_scale * prior_std)^2)``, clamped into bounds for sliders (about
            half of the sliders rest at 0, the others are active).
        yaw_deg, pitch_deg, roll_deg: head rotation, uniform in +-range.
        shift_m: standard deviation of the head's x/y offset from the aligned position, metres.
        size_jitter: standard deviation of the relative change of the face's image size.
        log_focal_std: standard deviation of ``log_focal``; the distance follows so that the face size is kept.
        ambient_range: the ambient light is scaled by a factor uniform in ``1 +- ambient_range``, per colour channel
            ``+- tint``.
        tint: per-channel ambient variation.
        light_std: standard deviation of the directional (white) SH coefficients, bands 1 and 2.
        tone_std: standard deviation of the relative skin-tone change (models without albedo).
        color_std: relative amplitude of the smooth per-vertex colour variation (models without albedo).
        background_std: amplitude of the background's smooth pattern around its random mean colour.
        specular_max: strength of a white specular highlight, uniform in [0, specular_max] (``specular_image``);
            0 (default) for images the explicit model explains exactly.
        shininess: Blinn-Phong exponent of the highlight.
        landmark_noise: standard deviation in crop pixels of Gaussian noise on the landmarks handed out with the
            image (a detector's error; the image and the parameters stay exact); 0 (default) for exact landmarks.
    """

    prior_scale: float = 1.0
    yaw_deg: float = 35.0
    pitch_deg: float = 15.0
    roll_deg: float = 10.0
    shift_m: float = 0.005
    size_jitter: float = 0.04
    log_focal_std: float = 0.1
    ambient_range: float = 0.25
    tint: float = 0.05
    light_std: float = 0.3
    tone_std: float = 0.15
    color_std: float = 0.08
    background_std: float = 0.15
    specular_max: float = 0.0
    shininess: float = 12.0
    landmark_noise: float = 0.0

    def sample(self, spec: SceneSpec, aligned: Tensor, mean_verts: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """One scene: {group: (1, K)} on the CPU.

        Args:
            spec: what to draw (the model's groups and the scene groups).
            aligned: (3,) translation that puts the neutral frontal face where aligned crops have it.
            mean_verts: (V, 3) the model's mean shape (support of the colour field).
            g: CPU random generator.
        """

        def normal(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g)

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return low + (high - low) * torch.rand(*shape, generator=g)

        params = {}
        for name, group in spec.model.groups.items():
            params[name] = group.clamp(normal(1, group.size) * torch.tensor(group.prior_std) * self.prior_scale)
        ranges = torch.tensor([self.yaw_deg, self.pitch_deg, self.roll_deg])
        params[POSE] = euler_to_axis_angle(uniform(-1.0, 1.0, 1, 3) * ranges)
        log_focal = normal(1, 1) * self.log_focal_std
        params[LOG_FOCAL] = log_focal
        depth = aligned[2] * log_focal.exp()[0, 0] * (1 + self.size_jitter * normal(1))[0]
        xy = aligned[:2] + self.shift_m * normal(2)
        params[TRANSLATION] = torch.cat([xy, depth[None]])[None]
        return params | self.appearance(spec, mean_verts, g)

    def appearance(self, spec: SceneSpec, mean_verts: Tensor, g: torch.Generator) -> dict[str, Tensor]:
        """One scene's light and, for models without albedo, its colour field: {group: (1, K)} on the CPU (the
        arguments as ``sample``'s)."""

        def normal(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g)

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return low + (high - low) * torch.rand(*shape, generator=g)

        sh = default_sh(1)  # (1, 9, 3)
        sh[:, 0] *= uniform(1 - self.ambient_range, 1 + self.ambient_range, 1, 1) * (1 + self.tint * normal(1, 3))
        sh[:, 1:] += self.light_std * normal(1, NUM_SH - 1, 1)  # white directional light
        params = {LIGHT: sh.reshape(1, NUM_SH * 3)}
        if spec.free_vertex_color:
            params[VERTEX_COLOR] = self._color_field(mean_verts, normal, uniform).reshape(1, -1)
        return params

    def photos(self, scene: SceneOutput, params: dict[str, Tensor], generators: list[torch.Generator]) -> Tensor:
        """(B, 3, S, S) photo-like images of a rendered ``scene`` of B faces: each face's specular highlight (up to
        ``specular_max``) over its render, on a random background (``random_background``), in [0, 1]; face ``b``
        draws from ``generators[b]`` (one generator may serve several faces)."""
        S = scene.render.image.shape[-1]
        background = torch.stack([random_background(S, self.background_std, g) for g in generators])
        strength = torch.cat([torch.rand(1, generator=g) * self.specular_max for g in generators])
        sh = params[LIGHT].reshape(-1, NUM_SH, 3)
        face = scene.render.image + specular_image(scene.render, sh, strength, self.shininess)
        mask = scene.render.mask  # (B, 1, S, S)
        return (face * mask + background * (1 - mask)).clamp(0.0, 1.0)

    def _color_field(self, verts: Tensor, normal, uniform) -> Tensor:
        """(V, 3) smooth colour offsets: a skin-tone shift plus ``COLOR_WAVES`` random sinusoids over the surface.

        Both mostly scale the base skin colour (lighter or darker skin keeps its hue); the tone also shifts each
        channel by a third of its amplitude.
        """
        frequencies = normal(COLOR_WAVES, 3) * (2 * math.pi / COLOR_WAVELENGTH)  # (N, 3) radians per metre
        phases = uniform(0.0, 2 * math.pi, COLOR_WAVES)
        waves = torch.sin(verts @ frequencies.T + phases)  # (V, N)
        brightness = normal(1) * self.tone_std + waves @ (normal(COLOR_WAVES) * self.color_std)  # (V,)
        return brightness[:, None] * torch.tensor(BASE_COLOR) + normal(1, 3) * self.tone_std / 3


def aligned_translation(spec: SceneSpec) -> Tensor:
    """(3,) translation placing the neutral frontal face where ``f2p.perception.crop`` aligns photo faces."""
    S = spec.image_size[1]
    landmarks = render_scene(spec, spec.initial(1), None).landmarks2d  # (1, 68, 2)
    target = apply_affine(crop_matrix(landmarks, size=S), landmarks)
    return spec.translation_covering(target)[0]


def specular_image(render: RenderOutput, sh: Tensor, strength: Tensor, shininess: float) -> Tensor:
    """(B, 3, H, W) white Blinn-Phong highlights of a render lit by ``sh``.

    The light comes from the dominant direction of the first-order SH coefficients (light frame: indices 3, 1, 2
    are x, y, z), the viewer from +z; ``highlight = strength * max(0, n . h)^shininess`` on the covered pixels.

    Args:
        render: the render (its camera-frame normals and mask are used).
        sh: (B, 9, 3) SH light.
        strength: (B,) highlight strength.
        shininess: Blinn-Phong exponent.
    """
    direction = F.normalize(sh[:, [3, 1, 2]].mean(-1), dim=1)  # (B, 3) light frame
    half = F.normalize(direction + direction.new_tensor([0.0, 0.0, 1.0]), dim=1)  # (B, 3)
    normals = torch.einsum("ij,bjhw->bihw", CAMERA_TO_LIGHT.to(render.normals), render.normals)
    cosine = (normals * half[:, :, None, None]).sum(1, keepdim=True).clamp_min(0.0)  # (B, 1, H, W)
    return (strength[:, None, None, None] * cosine**shininess * render.mask).expand(-1, 3, -1, -1)


def item_seed(seed: int, index: int) -> int:
    """The 32-bit generator seed of item ``index`` of the set ``seed`` (well mixed: neighbouring sets differ)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def random_background(size: int, std: float, g: torch.Generator) -> Tensor:
    """(3, S, S) background: a random colour plus a smooth random pattern of amplitude ``std``, in [0, 1]."""
    cells = torch.randn(1, 3, BACKGROUND_CELLS, BACKGROUND_CELLS, generator=g) * std
    pattern = F.interpolate(cells, size=(size, size), mode="bilinear", align_corners=False)[0]
    return (torch.rand(3, 1, 1, generator=g) + pattern).clamp(0.0, 1.0)


class SyntheticFaces(Dataset):
    """``length`` synthetic faces; item ``i`` is drawn with ``item_seed(seed, i)`` (see module docstring).

    A batch of items is rendered together (``__getitems__``).

    Args:
        spec: model and (square) image size.
        sampler: the scene distribution.
        length: number of items.
        seed: seed of this set.
    """

    def __init__(self, spec: SceneSpec, sampler: SceneSampler, length: int, seed: int) -> None:
        H, W = spec.image_size
        if H != W:
            raise ValueError(f"synthetic crops are square, got image size {(H, W)}")
        self.spec = spec
        self.sampler = sampler
        self.length = length
        self.seed = seed
        self.renderer = MeshRenderer()
        with torch.no_grad():
            self.aligned = aligned_translation(spec).cpu()
            self.mean_verts = spec.model(**spec.model.zero_params(1)).verts[0].cpu()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    @torch.no_grad()
    def __getitems__(self, indices: list[int]) -> list[dict]:
        """Items ``indices`` rendered as one batch (``DataLoader`` fetches batches through this)."""
        for index in indices:
            if not 0 <= index < self.length:
                raise IndexError(index)
        generators = [torch.Generator().manual_seed(item_seed(self.seed, index)) for index in indices]
        drawn = [self.sampler.sample(self.spec, self.aligned, self.mean_verts, g) for g in generators]
        params = {name: torch.cat([d[name] for d in drawn]) for name in drawn[0]}
        scene = render_scene(self.spec, params, self.renderer)
        S = self.spec.image_size[0]
        images = self.sampler.photos(scene, params, generators)
        noise = torch.stack([torch.randn(scene.landmarks2d.shape[1:], generator=g) for g in generators])
        landmarks = scene.landmarks2d + self.sampler.landmark_noise * noise  # (B, 68, 2)
        face_masks = face_region_mask(landmarks, S, S, softness=MASK_SOFTNESS)
        return [{
            keys.IMAGE: images[b],
            keys.LANDMARKS: landmarks[b],
            keys.CONFIDENCE: torch.ones(landmarks.shape[1]),
            keys.FACE_MASK: face_masks[b],
            keys.TO_PHOTO: torch.eye(2, 3),
            keys.INDEX: index,
            keys.NAME: f"{SOURCE}_{self.seed}_{index:06d}",
            keys.SOURCE: SOURCE,
            keys.PARAMS: {name: value[b] for name, value in params.items()},
        } for b, index in enumerate(indices)]


class SyntheticFaceDataModule(SplitLoaders, LightningDataModule):
    """Synthetic train/val/test/predict sets of one face model (see module docstring).

    Args:
        face_model: model name or path (``f2p.morphable.registry.load_model``); must match the regressor's.
        image_size: side S of the square crops; must match the regressor's.
        num_train, num_val, num_test, num_predict: items per split.
        batch_size: items per batch (per process under DDP).
        num_workers: data-loader worker processes (each renders its items).
        seed: base seed; the splits use ``seed + SPLIT_SEEDS[split]``.
        sampler: the scene distribution (default ``SceneSampler()``).
    """

    def __init__(self, face_model: str = "ict", image_size: int = 64, num_train: int = 2048, num_val: int = 64,
                 num_test: int = 256, num_predict: int = 8, batch_size: int = 16, num_workers: int = 0,
                 seed: int = 0, sampler: SceneSampler | None = None) -> None:
        super().__init__()
        self.face_model = face_model
        self.image_size = image_size
        self.sizes = {"train": num_train, "val": num_val, "test": num_test, "predict": num_predict}
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.sampler = sampler or SceneSampler()
        self.datasets: dict[str, SyntheticFaces] = {}

    def setup(self, stage: str) -> None:
        if self.datasets:
            return
        spec = SceneSpec(load_model(self.face_model), (self.image_size, self.image_size))
        for split, length in self.sizes.items():
            self.datasets[split] = SyntheticFaces(spec, self.sampler, length, self.seed + SPLIT_SEEDS[split])
        log.info("synthetic faces of %s at %d px: %s", spec.model.name, self.image_size,
                 ", ".join(f"{n} {split}" for split, n in self.sizes.items()))

