"""Landmark regressor: a face's dense (468) and 68 landmarks in crop pixels -> every parameter group landmarks
determine (the model's identity and expression, head pose, translation, focal length), in one pass.

The landmarks are first turned upright: the in-plane rotation of the 68 points against the neutral face's
(weighted Procrustes) is undone about the principal point, and the prediction is rolled back with
``scene.camera_roll.rolled`` (exact for f2p's cameras), so an in-plane turn of the photo changes nothing but the
predicted roll. Then they are brought into the face's own frame as ``nets.landmarks.LandmarkEncoder`` does (weighted
centroid and spread of the 68 points, ``scene.params.landmark_frame``), as offsets from the neutral frontal face's
points amplified by ``LANDMARK_GAIN``, each multiplied by its presence (confidence > 0: a photo without dense points
gives zeros there), next to the presences and the frame's offset from the neutral face's (log spread ratio, centre
shift). An MLP (``depth`` layers of ``hidden`` units, LayerNorm and GELU, then ``blocks`` pre-norm residual blocks
``x + W2 GELU(W1 LN(x))`` of the same width and a final LayerNorm; ``blocks=0``, the shipped ICT network, has
neither; the SFM one has 3) feeds ``nets.param_head.ParamHead`` restricted to the geometric groups: sliders stay in
their bounds, the translation is a correction of ``SceneSpec.translation_covering``.
The groups landmarks do not determine (light, colours) are ``SceneSpec.initial``'s.

Cascaded refinement (``refine`` stages, 0 by default; the shipped ICT network has 2, the SFM one none): each
``RefinementStage`` reads the reprojection residuals of the current answer (observed minus projected 68 and 468
points, in the face's frame, amplified as the offsets are) next to the previous stage's features, and corrects the
head's unconstrained outputs (``ParamHead.raw``), a learned step of supervised descent (Xiong and De la Torre, CVPR
2013) trained end to end; it learns how far to follow residuals that detector noise makes, which a Gauss-Newton step
cannot.

Optionally the crop too (``image_encoder``, e.g. ``"resnet18"``: ``nets.encoder.ResNetEncoder``, randomly
initialised): the crop, turned upright with the landmarks (the same in-plane rotation about the principal point),
is encoded and its features join the landmark features at the MLP's input. Trained on rendered crops
(``data.landmark_synthetic``'s ``images``; ``configs/landmark_image_regressor.yaml``), for a GPU: on a CPU the
renders and the ResNet make a training step about 260 times the landmark-only one per face (README).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from f2p.conventions import NUM_LANDMARKS
from f2p.face_mesh import NUM_MESH_POINTS
from f2p.morphable.dense import landmark_points
from f2p.nets.param_head import ParamHead
from f2p.nets.landmarks import LANDMARK_GAIN
from f2p.scene.camera_roll import rolled
from f2p.scene.compose import render_scene, scene_camera
from f2p.scene.params import LOG_FOCAL, POSE, TRANSLATION, SceneSpec, landmark_frame

GEOMETRY_GROUPS = (POSE, TRANSLATION, LOG_FOCAL)
"""The scene groups landmarks determine (light and colour they do not)."""
FRAME_FEATURES = 3
"""log spread ratio and centre shift (x, y) of the face's frame against the neutral face's."""
ImageEncoder = Literal["resnet18", "resnet34", "resnet50"]
"""A crop encoder a landmark regressor may have (``image_encoder``; torchvision ResNets, f2p's ``ResNetEncoder``);
as a type, LightningCLI refuses other config values in one line."""
IMAGE_ENCODERS: tuple[str, ...] = get_args(ImageEncoder)


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


class RefinementStage(nn.Module):
    """One refinement step: (B, (68 + 468) * 2) residual features and (B, C_in) features of the previous stage ->
    {group: (B, K)} corrections of the head's unconstrained outputs and (B, C) features of this stage (two Linear,
    LayerNorm, GELU layers of C units; the output layer starts at zero, so a new stage changes nothing).

    Args:
        in_features: C_in.
        hidden: C.
        sizes: {group: K} of the head.
    """

    def __init__(self, in_features: int, hidden: int, sizes: dict[str, int]) -> None:
        super().__init__()
        self.sizes = dict(sizes)
        width = (NUM_LANDMARKS + NUM_MESH_POINTS) * 2 + in_features
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU())
        self.out = nn.Linear(hidden, sum(self.sizes.values()))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, residuals: Tensor, features: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        hidden = self.net(torch.cat([residuals, features], dim=1))
        parts = self.out(hidden).split(list(self.sizes.values()), dim=1)
        return dict(zip(self.sizes, parts)), hidden


class LandmarkRegressor(nn.Module):
    """(B, 68, 2) and (B, 468, 2) landmarks with confidences -> {group: (B, K)} (module docstring).

    Args:
        spec: the scene the crops belong to (its neutral frontal face is the reference).
        hidden: width of the MLP.
        depth: hidden layers of the MLP (Linear, LayerNorm, GELU).
        blocks: residual blocks after them (``ResidualBlock``, then a LayerNorm); 0: none (the first network).
        refine: refinement stages after the head (``RefinementStage``); 0: none.
        refine_hidden: width of each refinement stage.
        image_encoder: one of ``IMAGE_ENCODERS`` to read the (B, 3, S, S) crop as well; None: landmarks only.

    Raises:
        ValueError: an ``image_encoder`` not in ``IMAGE_ENCODERS``, or a non-square crop with one.
    """

    def __init__(self, spec: SceneSpec, hidden: int = 512, depth: int = 3, blocks: int = 0, refine: int = 0,
                 refine_hidden: int = 384, image_encoder: ImageEncoder | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.hidden, self.depth, self.blocks = hidden, depth, blocks
        self.refine, self.refine_hidden, self.image_encoder = refine, refine_hidden, image_encoder
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
        self.crop_encoder = None
        if image_encoder is not None:
            if image_encoder not in IMAGE_ENCODERS:
                raise ValueError(f"image_encoder must be one of {IMAGE_ENCODERS} or None, got {image_encoder!r}")
            if spec.image_size[0] != spec.image_size[1]:
                raise ValueError(f"a landmark regressor that reads crops needs square crops, got {spec.image_size}")
            from f2p.nets.encoder import ResNetEncoder  # torchvision: imported only for networks that read crops

            self.crop_encoder = ResNetEncoder(image_encoder)
            width += self.crop_encoder.feature_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU()]
            width = hidden
        if blocks > 0:
            layers += [ResidualBlock(hidden) for _ in range(blocks)] + [nn.LayerNorm(hidden)]
        self.net = nn.Sequential(*layers)
        self.head = ParamHead(hidden, spec, groups=self.groups)
        self.refinement = nn.ModuleList(
            RefinementStage(hidden if i == 0 else refine_hidden, refine_hidden, self.head.sizes) for i in range(refine))

    @staticmethod
    def _normalise(points: Tensor, centre: Tensor, spread: Tensor) -> Tensor:
        """(B, N, 2) -> (B, N, 2) in the frame (B, 2) centre, (B,) spread."""
        return (points - centre[:, None]) / spread.clamp_min(1e-6)[:, None, None]

    def features(self, landmarks: Tensor, confidence: Tensor, dense: Tensor | None,
                 dense_confidence: Tensor | None) -> Tensor:
        """(B, 68 * 3 + 468 * 3 + 3) network input (module docstring); ``dense`` None: no dense points."""
        dense, dense_confidence = _dense_or_absent(landmarks, dense, dense_confidence)
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
                dense_confidence: Tensor | None = None, image: Tensor | None = None) -> dict[str, Tensor]:
        """Landmarks in the pixels of crops of the spec's size -> {group: (B, K)} for every group of the scene.

        Args:
            landmarks: (B, 68, 2) iBUG-68 points; confidence: (B, 68).
            dense: (B, 468, 2) MediaPipe face-mesh points, or None; dense_confidence: (B, 468), or None.
            image: (B, 3, S, S) the crops in [0, 1], for a network with an ``image_encoder`` (ignored otherwise).

        Raises:
            ValueError: a network with an ``image_encoder`` given no crops, or crops of another size.
        """
        B = landmarks.shape[0]
        H, W = self.spec.image_size
        principal = landmarks.new_tensor([(W - 1) / 2, (H - 1) / 2])
        rotation = self.in_plane_rotation(landmarks, confidence)  # (B, 2, 2)

        def upright(points: Tensor | None) -> Tensor | None:  # rows: R^T (p - c) + c
            return None if points is None else (points - principal) @ rotation + principal

        landmarks, dense = upright(landmarks), upright(dense)
        dense, dense_confidence = _dense_or_absent(landmarks, dense, dense_confidence)
        initial = self.spec.initial(B, landmarks)
        inputs = self.features(landmarks, confidence, dense, dense_confidence)
        if self.crop_encoder is not None:
            inputs = torch.cat([inputs, self.crop_encoder(self.upright_crops(image, rotation))], dim=1)
        features = self.net(inputs)
        raw = self.head.raw(features)
        params = {**initial, **self.head.decode(raw, initial)}
        if self.refinement:  # what every stage's residuals share: the observed points and their unit
            observed, unit = self.observed(landmarks, confidence, dense, dense_confidence)
        for stage in self.refinement:
            correction, features = stage(self.residuals(params, observed, unit), features)
            raw = {name: value + correction[name] for name, value in raw.items()}
            params = {**initial, **self.head.decode(raw, initial)}
        return rolled(params, rotation)

    def with_crop_columns(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """A landmarks-only network's state dict (same ``hidden``, ``depth``, ``blocks``) made to start this network,
        which reads crops: the first layer gets zero input weights for the crop features, so the network answers as
        the landmarks-only one until training moves them (the crop encoder keeps its own start).

        Raises:
            ValueError: this network has no crop encoder or no hidden layer (``depth`` 0).
        """
        if self.crop_encoder is None or self.depth < 1:
            raise ValueError("only a network with an image_encoder and depth >= 1 takes a landmarks-only state dict")
        weight = state["net.0.weight"]  # (hidden, landmark features)
        extra = self.net[0].in_features - weight.shape[1]
        return state | {"net.0.weight": torch.cat([weight, weight.new_zeros(weight.shape[0], extra)], dim=1)}

    def upright_crops(self, image: Tensor | None, rotation: Tensor) -> Tensor:
        """(B, 3, S, S) crops turned by the (B, 2, 2) in-plane ``rotation`` that turns their landmarks upright, about
        the principal point (the crop's centre): a pixel ``p`` of the result shows the crop at ``R (p - c) + c``."""
        if image is None:
            raise ValueError(f"this landmark regressor reads the crops too (image_encoder {self.image_encoder!r}): "
                             "give them")
        if tuple(image.shape[-2:]) != self.spec.image_size:
            raise ValueError(f"the landmark regressor takes {self.spec.image_size} crops, got {tuple(image.shape[-2:])}")
        theta = torch.cat([rotation, rotation.new_zeros(rotation.shape[0], 2, 1)], dim=2)  # normalised coords, square
        grid = F.affine_grid(theta, list(image.shape), align_corners=False)
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def observed(self, landmarks: Tensor, confidence: Tensor, dense: Tensor,
                 dense_confidence: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 68 + 468, 2) observed points (upright crop pixels) and (B, 68 + 468, 1) the unit of their residuals:
        ``LANDMARK_GAIN`` over the observed face's spread (``scene.params.landmark_frame``), zero where a point is
        absent."""
        _, spread = landmark_frame(landmarks, self.weights)  # (B,)
        present = torch.cat([confidence, dense_confidence], dim=1) > 0  # (B, 68 + 468)
        unit = LANDMARK_GAIN * present.to(landmarks.dtype)[..., None] / spread.clamp_min(1e-6)[:, None, None]
        return torch.cat([landmarks, dense], dim=1), unit

    def residuals(self, params: dict[str, Tensor], observed: Tensor, unit: Tensor) -> Tensor:
        """(B, (68 + 468) * 2) observed minus projected points of ``params``, times ``unit`` (``observed``'s
        outputs)."""
        model_params = {name: params[name] for name in self.spec.model.groups}
        projected = scene_camera(self.spec, params).project(landmark_points(self.spec.model, True, **model_params))
        return ((observed - projected) * unit).flatten(1)


def _dense_or_absent(landmarks: Tensor, dense: Tensor | None,
                     dense_confidence: Tensor | None) -> tuple[Tensor, Tensor]:
    """The dense points and confidences, or (B, 468, 2) zeros and (B, 468) zero confidences (absent) if None."""
    if dense is not None and dense_confidence is not None:
        return dense, dense_confidence
    B = landmarks.shape[0]
    return landmarks.new_zeros(B, NUM_MESH_POINTS, 2), landmarks.new_zeros(B, NUM_MESH_POINTS)
