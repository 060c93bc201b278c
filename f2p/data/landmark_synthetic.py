"""Landmark-only synthetic faces for the landmark regressor: parameters from the model's priors, projected dense and
68-point landmarks with a detector's noise, and no rendering, so a batch costs milliseconds.

A batch is drawn as a whole from a generator seeded by ``item_seed(seed, index)``: batch ``index`` of a split is the
same in every run and process, and the splits (seeds ``seed + SPLIT_SEEDS[split]``) are disjoint. Each face:

- identity from its Gaussian prior, optionally moved towards MediaPipe's canonical face (``canonical_shift``: plus
  a uniform fraction in [0, ``canonical_shift``] of the canonical face's coefficients,
  ``morphable.canonical_identity``), as faces on photos sit off the prior's mean in that direction; expression
  sliders sparse and in range (each active with probability ``expression_active``, then ``|N(0, prior_std)|``
  clamped into its bounds; a ``_R`` slider copies its ``_L`` partner with probability ``expression_symmetry``);
- head pose: yaw uniform in +-``yaw_deg`` (+-``profile_yaw_deg`` for a fraction ``profile_fraction`` of the faces,
  up to profile), pitch and roll uniform in their ranges; focal length ``exp(N(0, log_focal_std))`` times the
  base, the distance following so that the face keeps its size;
- the crop convention: the head is placed where ``f2p.perception.crop`` aligns photo faces, then the 5-point
  similarity of ``crop_matrix`` is applied as camera changes (its rotation as a roll of the camera about the
  optical axis, its scale as focal length, its shift as a sideways move of the head), so faces sit in the crop
  as detected faces do (upright, same size), and the landmarks are projected from those final parameters (exact);
  optionally (``crop_from_noisy``) the crop is aligned again from the noisy 68 points of the next step, as a
  photo's crop comes from its detected points (the true face then sits off the template by the detector's error,
  the observed points on it), and moved by a further random placement (``placement_px``,
  ``placement_log_scale``), for faces as loosely placed as crops made any other way;
- visibility from the pose: a dense point whose surface faces away from the camera (``hidden``) gets the noise of
  the face oval (MediaPipe still returns it, as a guess);
- detector noise (``DetectorNoise``), measured: MediaPipe's 468 points on 37 f2p renders of ICT faces (seed 5,
  224 px, yaw within +-45 degrees; ``benchmarks/correspondence.py``'s ``measure``) against the correspondence
  points, after removing each point's mean offset over the faces (the correspondence's own bias: MediaPipe
  puts the brows of these eyebrow-less renders 9 px low), split into a per-face affine warp and independent
  per-point noise, both growing with the yaw;
- a fraction ``dense_drop`` of the faces has no dense points (confidence 0: a photo from a 68-point detector).

For a network that also reads the crop (``LandmarkRegressor(image_encoder=...)``), ``images`` (a
``data.synthetic.SceneSampler``: light, colour, background, highlight) renders each face at its final parameters
into a photo-like (B, 3, S, S) crop (key ``IMAGE``): the face where its landmarks say, the landmarks with their
detector noise. Rendering costs what the rest does not (about 10 ms a face at 224 px on one CPU thread).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from f2p.conventions import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from f2p.data import batch as keys
from f2p.data.synthetic import SPLIT_SEEDS, SceneSampler, aligned_translation, item_seed
from f2p.morphable.base import LinearMorphableModel, MorphableModel
from f2p.morphable.canonical_identity import canonical_coefficients
from f2p.morphable.correspondence import dense_correspondence
from f2p.morphable.dense import dense_landmarks
from f2p.morphable.registry import load_model
from f2p.perception.crop import crop_matrix
from f2p.perception.crop_size import CROP_SIZE
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import euler_to_axis_angle
from f2p.scene.camera_roll import rolled
from f2p.scene.compose import SceneOutput, render_scene
from f2p.scene.params import LOG_FOCAL, POSE, TRANSLATION, SceneSpec

log = logging.getLogger("f2p")

LANDMARKS, CONFIDENCE, DENSE, DENSE_CONFIDENCE, PARAMS, IMAGE = (keys.LANDMARKS, keys.CONFIDENCE, keys.DENSE,
                                                                keys.DENSE_CONFIDENCE, keys.PARAMS, keys.IMAGE)
"""Keys of a landmark batch (``data.batch``'s): (B, 68, 2), (B, 68), (B, 468, 2), (B, 468) in crop pixels, the
true {group: (B, K)} (the model's groups, pose, translation, log_focal), and with ``images`` the (B, 3, S, S)
crops."""


@dataclass(frozen=True)
class DetectorNoise:
    """Detector-like landmark noise in units of the face's outer-eye-corner distance E (unforeshortened: the
    model's eye-corner distance at the face's depth), every magnitude times ``1 + yaw_slope * |sin yaw|``.

    Measured (module docstring), after removing the correspondence's bias: the residual splits into a per-face
    affine warp (linear coefficients 0.052, shift 0.029 E, standard deviations over yaws within +-45 degrees) and
    a per-point part (0.027 E per axis at |yaw| < 15 degrees, 0.058 E at 30-45 degrees: linear in |sin yaw| with
    slope 3.1), the face oval's per-point part 1.5 times the inner points'. The magnitudes below are those at
    yaw 0, scaled by 0.77 so that the model's median point error over yaws within +-45 degrees is the measured
    one: 0.053 E inside the oval (0.069 E unscaled) and 0.083 E on it (0.076 E here).

    Attributes:
        point_std: independent per-point, per-axis noise at yaw 0, E.
        linear_std: standard deviation of each entry of a per-face 2x2 linear warp about the face centre, at yaw 0.
        shift_std: per-face shift, per axis, E, at yaw 0.
        yaw_slope: growth of every magnitude with |sin yaw|.
        oval_factor: per-point noise factor of face-oval and hidden points.
    """

    point_std: float = 0.0154
    linear_std: float = 0.0185
    shift_std: float = 0.0104
    yaw_slope: float = 3.1
    oval_factor: float = 1.5

    def apply(self, points: Tensor, eye_px: Tensor, yaw: Tensor, loose: Tensor, level: Tensor,
              g: torch.Generator) -> Tensor:
        """Noisy copy of ``points``.

        Args:
            points: (B, N, 2) exact landmarks in pixels.
            eye_px: (B,) E in pixels.
            yaw: (B,) head yaw, radians.
            loose: (B, N) bool, points with the oval's noise (face oval, hidden).
            level: (B,) multiplier of every magnitude (1: the measured noise).
            g: CPU generator.
        """
        B, N, _ = points.shape
        grown = level * (1 + self.yaw_slope * yaw.sin().abs())  # (B,)
        scale = eye_px * grown  # (B,) pixels per unit of the grown E
        centre = points.mean(1, keepdim=True)  # (B, 1, 2)
        linear = torch.randn(B, 2, 2, generator=g) * self.linear_std * grown[:, None, None]
        shift = torch.randn(B, 1, 2, generator=g) * self.shift_std * scale[:, None, None]
        point = torch.randn(B, N, 2, generator=g) * self.point_std * scale[:, None, None]
        point = point * torch.where(loose, self.oval_factor, 1.0)[..., None]
        return points + (points - centre) @ linear.transpose(1, 2) + shift + point


@dataclass(frozen=True)
class LandmarkSampler:
    """The distribution of landmark-only synthetic faces (module docstring).

    Attributes:
        yaw_deg: yaw range of most faces, degrees.
        profile_yaw_deg: yaw range of the ``profile_fraction`` of faces.
        profile_fraction: share of faces drawn from the wide yaw range.
        pitch_deg, roll_deg: uniform ranges, degrees (roll before the crop's alignment takes most of it out).
        log_focal_std: standard deviation of ``log_focal`` before the crop's scale.
        expression_active: probability that a slider is active.
        expression_symmetry: probability that a ``_R`` slider copies its ``_L`` partner.
        dense_drop: share of faces without dense points.
        noise: the detector noise; None for exact landmarks.
        noise_levels: each face's noise is ``noise`` times a level uniform in this range (detectors and photos
            differ: dlib's 68 points on visible-contour photos score about half MediaPipe's NME, README
            "Perception"); ``(1, 1)`` for the measured noise alone.
        crop_from_noisy: align the crop again from the noisy 68 points (module docstring); needs ``noise``.
        placement_px: standard deviation of a further random shift of the face in the crop, pixels per axis.
        placement_log_scale: standard deviation of the log of a further random scale of the face in the crop.
        canonical_shift: largest fraction of MediaPipe's canonical face's coefficients added to the unbounded shape
            groups (module docstring); 0 for the prior alone. Linear models only.
    """

    yaw_deg: float = 50.0
    profile_yaw_deg: float = 90.0
    profile_fraction: float = 0.3
    pitch_deg: float = 30.0
    roll_deg: float = 20.0
    log_focal_std: float = 0.3
    expression_active: float = 0.3
    expression_symmetry: float = 0.7
    dense_drop: float = 0.1
    noise: DetectorNoise | None = DetectorNoise()
    noise_levels: tuple[float, float] = (1.0, 1.0)
    crop_from_noisy: bool = False
    placement_px: float = 0.0
    placement_log_scale: float = 0.0
    canonical_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_from_noisy and self.noise is None:
            raise ValueError("LandmarkSampler: crop_from_noisy needs a detector noise (noise is None)")
        if self.placement_px < 0 or self.placement_log_scale < 0:
            raise ValueError(f"LandmarkSampler: placement_px and placement_log_scale must be >= 0, got "
                             f"{self.placement_px} and {self.placement_log_scale}")
        if self.canonical_shift < 0:
            raise ValueError(f"LandmarkSampler: canonical_shift must be >= 0, got {self.canonical_shift}")

    def model_params(self, model: MorphableModel, B: int, g: torch.Generator) -> dict[str, Tensor]:
        """{group: (B, K)} of the model's groups (module docstring)."""
        params = {}
        for name, group in model.groups.items():
            std = torch.tensor(group.prior_std)
            if not group.bounded:
                params[name] = torch.randn(B, group.size, generator=g) * std
                continue
            active = torch.rand(B, group.size, generator=g) < self.expression_active
            values = (torch.randn(B, group.size, generator=g) * std).abs() * active
            names = group.component_names or ()
            index = {n: i for i, n in enumerate(names)}
            pairs = [(index[n], index[n[:-2] + "_L"]) for n in names if n.endswith("_R") and n[:-2] + "_L" in index]
            if pairs:
                right, left = torch.tensor(pairs).T
                copy = torch.rand(B, 1, generator=g) < self.expression_symmetry
                values[:, right] = torch.where(copy, values[:, left], values[:, right])
            params[name] = group.clamp(values)
        if self.canonical_shift > 0:
            if not isinstance(model, LinearMorphableModel):
                raise ValueError(f"LandmarkSampler: canonical_shift needs a linear model, not {model.name}")
            fraction = torch.rand(B, 1, generator=g) * self.canonical_shift
            for name, coefficients in canonical_coefficients(model).items():
                params[name] = params[name] + fraction * coefficients.cpu()
        return params

    def pose(self, B: int, g: torch.Generator) -> Tensor:
        """(B, 3) yaw, pitch, roll in degrees."""
        wide = torch.rand(B, generator=g) < self.profile_fraction
        yaw_range = torch.where(wide, self.profile_yaw_deg, self.yaw_deg)
        ranges = torch.stack([yaw_range, torch.full((B,), self.pitch_deg), torch.full((B,), self.roll_deg)], 1)
        return (2 * torch.rand(B, 3, generator=g) - 1) * ranges


class LandmarkFaceBatches(Dataset):
    """``length`` batches of ``batch_size`` landmark-only faces; batch ``i`` is drawn with ``item_seed(seed, i)``.

    Args:
        spec: model and (square) crop size of the landmarks.
        sampler: the face distribution.
        length: number of batches.
        batch_size: faces per batch.
        seed: seed of this set.
        images: the appearance of rendered crops (module docstring); None: landmarks only.
    """

    def __init__(self, spec: SceneSpec, sampler: LandmarkSampler, length: int, batch_size: int, seed: int,
                 images: SceneSampler | None = None) -> None:
        H, W = spec.image_size
        if H != W:
            raise ValueError(f"landmark crops are square, got image size {(H, W)}")
        self.spec, self.sampler, self.length, self.batch_size, self.seed = spec, sampler, length, batch_size, seed
        self.images = images
        self.renderer = MeshRenderer() if images is not None else None
        model = spec.model
        with torch.no_grad():
            self.aligned = aligned_translation(spec).cpu()
            mean = model(**model.zero_params(1))
            self.mean_verts = mean.verts[0]
            corners = self.mean_verts[model.faces[dense_correspondence(model).triangles]]  # (468, 3, 3)
            normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            normals = torch.nn.functional.normalize(normals, dim=1)
            self.normals = normals * normals[:, 2].mean().sign()  # outwards: a frontal face faces +z
            self.eye_m = float((mean.landmarks[0, RIGHT_EYE_OUTER] - mean.landmarks[0, LEFT_EYE_OUTER]).norm())
        self.contour = dense_correspondence(model).contour

    def __len__(self) -> int:
        return self.length

    @torch.no_grad()
    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = torch.Generator().manual_seed(item_seed(self.seed, index))
        return self.draw(self.batch_size, g)

    def draw(self, B: int, g: torch.Generator) -> dict:
        """One batch of B faces (the module docstring's recipe), keys ``LANDMARKS`` ... ``PARAMS``."""
        spec, sampler = self.spec, self.sampler
        params = sampler.model_params(spec.model, B, g)
        angles = sampler.pose(B, g)
        params[POSE] = euler_to_axis_angle(angles)
        log_focal = torch.randn(B, 1, generator=g) * sampler.log_focal_std
        params[LOG_FOCAL] = log_focal
        params[TRANSLATION] = self.aligned.expand(B, 3) * torch.cat([torch.ones(B, 2), log_focal.exp()], 1)
        params = self._moved(params, crop_matrix(render_scene(spec, params, None).landmarks2d, size=spec.image_size[0]))
        scene = render_scene(spec, params, None, dense=True)
        R, t = scene.camera.R, scene.camera.t  # (B, 3, 3), (B, 3)
        eye_px = scene.camera.fx * self.eye_m / t[:, 2]  # (B,)
        dense, landmarks = scene.dense2d, scene.landmarks2d
        dense_conf = (torch.rand(B, 1, generator=g) >= sampler.dense_drop).float().expand(-1, dense.shape[1])
        if sampler.noise is not None:
            low, high = sampler.noise_levels
            level = low + (high - low) * torch.rand(B, generator=g)  # (B,)
            yaw = angles[:, 0].deg2rad()
            hidden = self._hidden(params, R, t)  # (B, 468)
            dense = sampler.noise.apply(dense, eye_px, yaw, hidden | self.contour, level, g)
            landmarks = sampler.noise.apply(landmarks, eye_px, yaw, torch.zeros(landmarks.shape[:2], dtype=torch.bool),
                                            level, g)
        params, landmarks, dense = self._placed(params, scene, landmarks, dense, g)
        batch = {LANDMARKS: landmarks, CONFIDENCE: torch.ones(landmarks.shape[:2]), DENSE: dense,
                 DENSE_CONFIDENCE: dense_conf.contiguous(), PARAMS: params}
        if self.images is not None:
            batch[IMAGE] = self._crops(params, g)
        return batch

    def _crops(self, params: dict[str, Tensor], g: torch.Generator) -> Tensor:
        """(B, 3, S, S) photo-like crops of the faces ``params`` (module docstring), appearance drawn from ``g``."""
        B = params[POSE].shape[0]
        drawn = [self.images.appearance(self.spec, self.mean_verts, g) for _ in range(B)]
        scene_params = params | {name: torch.cat([d[name] for d in drawn]) for name in drawn[0]}
        return self.images.photos(render_scene(self.spec, scene_params, self.renderer), scene_params, [g] * B)

    def _placed(self, params: dict[str, Tensor], scene: SceneOutput, landmarks: Tensor, dense: Tensor,
                g: torch.Generator) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The face re-aligned from its (B, 68, 2) noisy ``landmarks`` and randomly placed, as the sampler asks
        (module docstring): ``params`` moved, and the (B, 68, 2) ``landmarks`` and (B, 468, 2) ``dense`` points
        projected from them with their noise (their offsets from ``scene``'s exact points) moved along; unchanged
        if the sampler asks neither."""
        sampler, S = self.sampler, self.spec.image_size[0]
        if not (sampler.crop_from_noisy or sampler.placement_px > 0 or sampler.placement_log_scale > 0):
            return params, landmarks, dense
        B = landmarks.shape[0]
        matrix = (crop_matrix(landmarks, size=S) if sampler.crop_from_noisy
                  else torch.eye(2, 3).expand(B, 2, 3))  # (B, 2, 3)
        if sampler.placement_px > 0 or sampler.placement_log_scale > 0:  # p -> centre + s (p - centre) + d
            s = (torch.randn(B, generator=g) * sampler.placement_log_scale).exp()[:, None, None]
            centre = torch.full((B, 2, 1), (S - 1) / 2)
            d = torch.randn(B, 2, 1, generator=g) * sampler.placement_px
            matrix = torch.cat([s * matrix[:, :, :2], s * (matrix[:, :, 2:] - centre) + centre + d], dim=2)
        params = self._moved(params, matrix)
        moved = render_scene(self.spec, params, None, dense=True)
        linear = matrix[:, :, :2].transpose(1, 2)  # (B, 2, 2), acting on rows
        return (params, moved.landmarks2d + (landmarks - scene.landmarks2d) @ linear,
                moved.dense2d + (dense - scene.dense2d) @ linear)

    def _moved(self, params: dict[str, Tensor], matrix: Tensor) -> dict[str, Tensor]:
        """``params`` with the (B, 2, 3) similarity ``matrix`` of crop pixels applied as camera changes (module
        docstring): the scene's projections move by ``matrix``."""
        spec = self.spec
        S = spec.image_size[0]
        A, b = matrix[:, :, :2], matrix[:, :, 2]
        scale = torch.linalg.det(A).sqrt()  # (B,)
        B = A.shape[0]
        params = rolled(params, A / scale[:, None, None])  # the image rotation as a camera roll
        translation = params[TRANSLATION].clone()
        centre = torch.full((B, 2), (S - 1) / 2)
        shift = (A @ centre[..., None])[..., 0] + b - centre  # pixels the similarity moves the image centre by
        focal = spec.base_focal * (params[LOG_FOCAL][:, 0].exp() * scale)  # (B,)
        translation[:, :2] += shift * translation[:, 2:] / focal[:, None]
        return {**params, TRANSLATION: translation, LOG_FOCAL: focal[:, None].log() - math.log(spec.base_focal)}

    def _hidden(self, params: dict[str, Tensor], R: Tensor, t: Tensor) -> Tensor:
        """(B, 468) bool: dense points whose surface (the mean face's normal there) faces away from the camera."""
        model_params = {name: params[name] for name in self.spec.model.groups}
        points = dense_landmarks(self.spec.model, **model_params)  # (B, 468, 3) model space
        camera = points @ R.transpose(1, 2) + t[:, None]  # (B, 468, 3)
        normals = self.normals @ R.transpose(1, 2)  # (B, 468, 3)
        return (normals * camera).sum(-1) >= 0


class LandmarkFaceDataModule(LightningDataModule):
    """Landmark-only synthetic train/val/test sets of one face model (module docstring); the loaders hand out the
    pre-batched items as they are.

    Args:
        face_model: model name or path (``load_model``); must match the regressor's.
        image_size: side S of the square crops the landmarks are in; must match the regressor's.
        train_batches, val_batches, test_batches: batches per split (an epoch of training is ``train_batches``).
        batch_size: faces per batch.
        num_workers: data-loader worker processes.
        seed: base seed; the splits use ``seed + SPLIT_SEEDS[split]``.
        sampler: the face distribution (default ``LandmarkSampler()``).
        images: render each face's crop with this appearance (for a network with an image encoder); None (the
            default): landmarks only, no rendering.
    """

    def __init__(self, face_model: str = "ict", image_size: int = CROP_SIZE, train_batches: int = 1000,
                 val_batches: int = 4, test_batches: int = 8, batch_size: int = 256, num_workers: int = 0,
                 seed: int = 0, sampler: LandmarkSampler | None = None, images: SceneSampler | None = None) -> None:
        super().__init__()
        self.face_model, self.image_size, self.batch_size = face_model, image_size, batch_size
        self.sizes = {"train": train_batches, "val": val_batches, "test": test_batches}
        self.num_workers, self.seed = num_workers, seed
        self.sampler = sampler or LandmarkSampler()
        self.images = images
        self.datasets: dict[str, LandmarkFaceBatches] = {}

    def setup(self, stage: str) -> None:
        if self.datasets:
            return
        spec = SceneSpec(load_model(self.face_model), (self.image_size, self.image_size))
        for split, length in self.sizes.items():
            self.datasets[split] = LandmarkFaceBatches(spec, self.sampler, length, self.batch_size,
                                                       self.seed + SPLIT_SEEDS[split], self.images)
        log.info("landmark faces of %s at %d px: %s batches of %d", spec.model.name, self.image_size,
                 ", ".join(f"{n} {split}" for split, n in self.sizes.items()), self.batch_size)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=None, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
