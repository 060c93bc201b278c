"""Image encoder and parameter head: an aligned face crop in, every parameter group of a ``SceneSpec`` out.

``FaceRegressor = ResNetEncoder (image -> features) + ParamHead (features -> named parameters)``. The head keeps
every prediction meaningful: bounded groups (sliders) pass through a sigmoid into ``[lower, upper]``; unbounded
groups are ``initial + scale * z`` with ``scale`` from ``SceneSpec.output_scales`` (the prior standard deviation
where there is a prior), so one unit of network output is one standard deviation of the prior. Its last layers
start at zero, so an untrained regressor predicts exactly what fitting starts from (``SceneSpec.initial``, placed
over the landmarks when given), up to ``BOUNDED_MARGIN`` for sliders whose initial value sits on a bound.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from f2p.nets.landmarks import LandmarkEncoder
from f2p.pretrained import ImageNetNormalize, torchvision_state_dict
from f2p.scene.params import SceneSpec

BOUNDED_MARGIN = 0.01
"""A bounded group starts this fraction of its range inside the bound nearest to its initial value."""


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its classifier: (B, 3, H, W) RGB in [0, 1] -> (B, feature_dim) features.

    Args:
        arch: torchvision model name: resnet18, resnet34, resnet50, ...
        weights: None for random initialisation (nothing is read or downloaded), "torchvision" for the ImageNet
            weights from torch hub's cache, or the path of a state dict (see ``torchvision_state_dict``; a
            classifier in it is ignored).
    """

    def __init__(self, arch: str = "resnet18", weights: str | None = None) -> None:
        super().__init__()
        if not arch.startswith("resnet"):
            raise ValueError(f"arch must be a torchvision ResNet (resnet18, resnet34, resnet50, ...), got {arch!r}")
        net = torchvision.models.get_model(arch, weights=None)
        if weights is not None:
            state = {k: v for k, v in torchvision_state_dict(arch, weights).items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(f"{weights}: not a {arch} state dict (missing {missing[:3]}, unexpected "
                                 f"{unexpected[:3]})")
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.normalize = ImageNetNormalize()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, feature_dim)."""
        return self.net(self.normalize(images))


class ParamHead(nn.Module):
    """(B, D) features -> {group: (B, K)} for every group of ``spec.sizes()`` (or of ``groups``), in range (see
    module docstring).

    A group with more than ``bottleneck`` components (per-vertex colour) goes through a rank-``bottleneck`` linear
    map instead of a full one, which keeps the head small for 10^4-vertex meshes.

    Args:
        feature_dim: D.
        spec: the scene the parameters belong to.
        bottleneck: rank of the heads of large groups.
        groups: the groups to predict (default: every group of the scene), e.g. only those landmarks determine.
    """

    def __init__(self, feature_dim: int, spec: SceneSpec, bottleneck: int = 64,
                 groups: tuple[str, ...] | None = None) -> None:
        super().__init__()
        sizes = spec.sizes()
        unknown = set(groups or ()) - set(sizes)
        if unknown:
            raise ValueError(f"the scene of model {spec.model.name!r} has no group(s) {sorted(unknown)}")
        self.sizes = {name: K for name, K in sizes.items() if groups is None or name in groups}
        initial = {name: value[0] for name, value in spec.initial(1).items()}
        scales = spec.output_scales()
        self.heads = nn.ModuleDict()
        self.bounded: dict[str, bool] = {}
        for name, K in self.sizes.items():
            layers = [nn.Linear(feature_dim, K)] if K <= bottleneck else [
                nn.Linear(feature_dim, bottleneck), nn.Linear(bottleneck, K)]
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
            self.heads[name] = nn.Sequential(*layers)
            self.bounded[name] = name not in scales
            if self.bounded[name]:
                group = spec.model.groups[name]
                lower, upper = torch.tensor(group.lower), torch.tensor(group.upper)
                start = ((initial[name].cpu() - lower) / (upper - lower).clamp_min(1e-12))
                start = start.clamp(BOUNDED_MARGIN, 1 - BOUNDED_MARGIN)
                with torch.no_grad():
                    layers[-1].bias.copy_(torch.logit(start))
                self.register_buffer(f"lower_{name}", lower, persistent=False)
                self.register_buffer(f"range_{name}", upper - lower, persistent=False)
            else:
                self.register_buffer(f"scale_{name}", scales[name].cpu(), persistent=False)

    def scale(self, name: str) -> Tensor:
        """(K,) size of one standard deviation of group ``name`` (the range of a bounded group)."""
        return getattr(self, f"range_{name}" if self.bounded[name] else f"scale_{name}")

    def raw(self, features: Tensor) -> dict[str, Tensor]:
        """(B, D) features -> {group: (B, K)} unconstrained outputs: standardised offsets from the initial values,
        logits of a bounded group's position in its range (what ``decode`` turns into parameters)."""
        return {name: head(features) for name, head in self.heads.items()}

    def decode(self, raw: dict[str, Tensor], initial: dict[str, Tensor]) -> dict[str, Tensor]:
        """{group: (B, K)} unconstrained outputs (``raw``) and initial values (``SceneSpec.initial``) -> parameters."""
        out = {}
        for name, z in raw.items():
            if self.bounded[name]:
                out[name] = getattr(self, f"lower_{name}") + self.scale(name) * torch.sigmoid(z)
            else:
                out[name] = initial[name] + self.scale(name) * z
        return out

    def forward(self, features: Tensor, initial: dict[str, Tensor]) -> dict[str, Tensor]:
        """(B, D) features and {group: (B, K)} initial values (``SceneSpec.initial``) -> {group: (B, K)}."""
        return self.decode(self.raw(features), initial)


class FaceRegressor(nn.Module):
    """Aligned crops (and their landmarks) -> scene parameters in one pass.

    The landmarks place the initial translation (``SceneSpec.translation_covering``) and, with
    ``use_landmarks``, also enter the head through a ``LandmarkEncoder``, next to the image features.

    Args:
        encoder: module mapping (B, 3, S, S) images in [0, 1] to (B, D) features, with a ``feature_dim`` attribute.
        spec: the scene at the regressor's input size S.
        use_landmarks: feed landmarks to the head (then ``forward`` needs them).
        bottleneck: see ``ParamHead``.
    """

    def __init__(self, encoder: nn.Module, spec: SceneSpec, use_landmarks: bool = True, bottleneck: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        self.use_landmarks = use_landmarks
        features = encoder.feature_dim
        if use_landmarks:
            self.landmark_net = LandmarkEncoder(spec)
            features += self.landmark_net.feature_dim
        self.head = ParamHead(features, spec, bottleneck)

    def forward(self, images: Tensor, landmarks: Tensor | None = None) -> dict[str, Tensor]:
        """(B, 3, S, S) crops in [0, 1] and (B, 68, 2) landmarks in their pixels (or None) -> {group: (B, K)}."""
        B, _, H, W = images.shape
        if (H, W) != self.spec.image_size:
            raise ValueError(f"the regressor takes {self.spec.image_size} crops, got {(H, W)}")
        features = self.encoder(images)  # (B, D)
        if self.use_landmarks:
            if landmarks is None:
                raise ValueError("this regressor was built with use_landmarks=True: give the crops' landmarks")
            features = torch.cat([features, self.landmark_net(landmarks)], dim=1)
        return self.head(features, self.spec.initial(B, landmarks))
