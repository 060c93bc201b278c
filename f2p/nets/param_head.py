"""The parameter head: features in, every parameter group of a ``SceneSpec`` out, each in its meaningful range.

Bounded groups (sliders) pass through a sigmoid into ``[lower, upper]``; unbounded groups are ``initial + scale *
z`` with ``scale`` from ``SceneSpec.output_scales`` (the prior standard deviation where there is a prior), so one
unit of network output is one standard deviation of the prior. Its last layers start at zero, so an untrained head
predicts exactly what fitting starts from (``SceneSpec.initial``, placed over the landmarks when given), up to
``BOUNDED_MARGIN`` for sliders whose initial value sits on a bound. Shared by the image regressor
(``nets.encoder.FaceRegressor``) and the landmark network (``nets.landmark_regressor``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from f2p.scene.params import SceneSpec

BOUNDED_MARGIN = 0.01
"""A bounded group starts this fraction of its range inside the bound nearest to its initial value."""


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
