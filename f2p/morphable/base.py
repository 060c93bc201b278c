"""The morphable-model interface: named parameter groups in, a mesh in metres out.

Every face model in f2p is a ``MorphableModel``: a stateless ``nn.Module`` whose model data are
non-persistent buffers (checkpoints never carry model data). Linear models (ICT, SFM, BFM, OBJ
rigs, f2p's npz) are all ``LinearMorphableModel`` built from a ``LinearModelData``; FLAME adds
skinning on top of the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from f2p.conventions import NUM_LANDMARKS
from f2p.errors import ModelFileError


@dataclass(frozen=True)
class ParamGroup:
    """One named group of model parameters, e.g. identity coefficients or expression sliders.

    Attributes:
        name: group name, the keyword of ``MorphableModel.forward``.
        size: number of components K.
        prior_std: (K,) standard deviation of a zero-mean Gaussian prior per component.
        lower: (K,) lower bounds, or None when unbounded.
        upper: (K,) upper bounds, or None when unbounded.
        component_names: (K,) names (``jawOpen``, ``eyeBlink_L``, ...) or None.
    """

    name: str
    size: int
    prior_std: tuple[float, ...]
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    component_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for label, values in (("prior_std", self.prior_std), ("lower", self.lower), ("upper", self.upper),
                              ("component_names", self.component_names)):
            if values is not None and len(values) != self.size:
                raise ValueError(f"parameter group {self.name!r}: {label} has {len(values)} entries, expected {self.size}")
        if (self.lower is None) != (self.upper is None):
            raise ValueError(f"parameter group {self.name!r}: give both lower and upper bounds or neither")
        if self.lower is not None and any(lo > hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"parameter group {self.name!r}: a lower bound exceeds its upper bound")

    @property
    def bounded(self) -> bool:
        return self.lower is not None

    def clamp(self, values: Tensor) -> Tensor:
        """Clamp (..., K) values into the group's bounds (identity when unbounded)."""
        if not self.bounded:
            return values
        lower = values.new_tensor(self.lower)
        upper = values.new_tensor(self.upper)
        return torch.maximum(torch.minimum(values, upper), lower)


@dataclass(frozen=True)
class MeshOutput:
    """A batch of meshes produced by a morphable model, in model space (metres).

    Attributes:
        verts: (B, V, 3) vertex positions.
        landmarks: (B, 68, 3) iBUG-68 landmark positions.
        albedo: (B, V, 3) per-vertex albedo in [0, 1], or None when the model has no albedo space.
    """

    verts: Tensor
    landmarks: Tensor
    albedo: Tensor | None = None


class MorphableModel(nn.Module):
    """Base class: named parameter groups in, ``MeshOutput`` out.

    Subclasses register buffers ``faces`` (F, 3) long, ``face_region`` (V,) bool and
    ``landmark_confidence`` (68,) float, and optionally ``uv`` (T, 2) with ``faces_uv`` (F, 3).
    """

    faces: Tensor
    face_region: Tensor
    landmark_confidence: Tensor

    def __init__(self, name: str, groups: tuple[ParamGroup, ...]) -> None:
        super().__init__()
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"model {name!r}: duplicate parameter group names {names}")
        self.name = name
        self.groups: dict[str, ParamGroup] = {g.name: g for g in groups}

    @property
    def num_vertices(self) -> int:
        return int(self.face_region.shape[0])

    @property
    def has_albedo(self) -> bool:
        return "albedo" in self.groups

    @property
    def device(self) -> torch.device:
        return self.faces.device

    def zero_params(self, batch_size: int) -> dict[str, Tensor]:
        """Return {group name: (B, K) zeros} on the model's device (float32)."""
        return {g.name: torch.zeros(batch_size, g.size, device=self.device) for g in self.groups.values()}

    def check_params(self, params: dict[str, Tensor]) -> int:
        """Validate names and shapes of ``params``; return the batch size B."""
        unknown = set(params) - set(self.groups)
        if unknown:
            raise KeyError(f"model {self.name!r} has no parameter group(s) {sorted(unknown)}; "
                           f"it has {sorted(self.groups)}")
        batch_sizes = set()
        for key, value in params.items():
            size = self.groups[key].size
            if value.ndim != 2 or value.shape[1] != size:
                raise ValueError(f"model {self.name!r}: {key} must have shape (B, {size}), got {tuple(value.shape)}")
            batch_sizes.add(value.shape[0])
        if len(batch_sizes) > 1:
            raise ValueError(f"model {self.name!r}: parameter groups disagree on batch size {sorted(batch_sizes)}")
        return batch_sizes.pop() if batch_sizes else 1

    def register_array(self, name: str, array: np.ndarray | None, dtype: torch.dtype) -> None:
        """Register a numpy array (or None) as a non-persistent buffer: model data never enter checkpoints."""
        tensor = None if array is None else torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)
        self.register_buffer(name, tensor, persistent=False)

    def landmarks_from_verts(self, verts: Tensor) -> Tensor:
        """(B, V, 3) vertices -> (B, 68, 3) landmarks through the (68, J) buffers ``landmark_vertices`` and
        ``landmark_weights``."""
        picked = verts[:, self.landmark_vertices]  # (B, 68, J, 3)
        return (picked * self.landmark_weights[None, :, :, None]).sum(dim=2)

    def forward(self, **params: Tensor) -> MeshOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def landmarks(self, **params: Tensor) -> Tensor:
        """(B, 68, 3) landmarks only; subclasses override this when it can skip building the whole mesh."""
        return self(**params).landmarks


@dataclass
class LinearModelData:
    """Plain-numpy content of a linear morphable model, the common result of every linear loader.

    ``verts = mean + sum_g sum_k params[g][:, k] * bases[g][k]`` (metres), and when ``albedo_mean``
    is given ``albedo = albedo_mean + sum_k params["albedo"][:, k] * albedo_basis[k]``.

    Attributes:
        name: model name, e.g. ``"ict"``.
        mean: (V, 3) float32 mean shape in metres.
        faces: (F, 3) int64 triangles (quads already split).
        groups: parameter-group specs; every group except "albedo" has a basis in ``bases``.
        bases: {group name: (K, V, 3) float32 vertex offsets per unit coefficient, metres}.
        landmark_vertices: (68, J) int64 vertex indices, combined with ``landmark_weights``.
        landmark_weights: (68, J) float32 barycentric-style weights (rows sum to 1).
        landmark_confidence: (68,) float32, 1 for a true correspondence, lower for approximations.
        face_region: (V,) bool, the face area used by photometric losses and error metrics.
        albedo_mean: (V, 3) float32 in [0, 1], or None.
        albedo_basis: (K_albedo, V, 3) float32, or None.
        uv: (T, 2) float32 texture coordinates, or None.
        faces_uv: (F, 3) int64 indices into ``uv``, or None.
        metadata: free-form strings (source, licence) saved with the model.
    """

    name: str
    mean: np.ndarray
    faces: np.ndarray
    groups: tuple[ParamGroup, ...]
    bases: dict[str, np.ndarray]
    landmark_vertices: np.ndarray
    landmark_weights: np.ndarray
    landmark_confidence: np.ndarray
    face_region: np.ndarray
    albedo_mean: np.ndarray | None = None
    albedo_basis: np.ndarray | None = None
    uv: np.ndarray | None = None
    faces_uv: np.ndarray | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def validate(self, source: object) -> None:
        """Raise ``ModelFileError(source, ...)`` on inconsistent shapes, bad indices or non-finite values."""
        V = self.mean.shape[0] if self.mean.ndim == 2 else -1
        if self.mean.ndim != 2 or self.mean.shape[1] != 3 or V == 0:
            raise ModelFileError(source, f"mean shape must be (V, 3) with V > 0, got {self.mean.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.shape[0] == 0:
            raise ModelFileError(source, f"faces must be (F, 3) with F > 0, got {self.faces.shape}")
        if self.faces.min() < 0 or self.faces.max() >= V:
            raise ModelFileError(source, f"face indices must lie in [0, {V}), got [{self.faces.min()}, {self.faces.max()}]")
        arrays = {"mean": self.mean, "albedo_mean": self.albedo_mean, "albedo_basis": self.albedo_basis}
        arrays.update({f"{k} basis": v for k, v in self.bases.items()})
        for label, array in arrays.items():
            if array is not None and not np.all(np.isfinite(array)):
                raise ModelFileError(source, f"{label} contains NaN or infinite values")
        if self.albedo_mean is not None and self.albedo_mean.shape != (V, 3):
            raise ModelFileError(source, f"albedo_mean shape {self.albedo_mean.shape}, expected {(V, 3)}")
        for group in self.groups:
            if group.name == "albedo":
                if self.albedo_basis is None or self.albedo_mean is None:
                    raise ModelFileError(source, "an albedo group needs albedo_mean and albedo_basis")
                expected = (group.size, V, 3)
                if self.albedo_basis.shape != expected:
                    raise ModelFileError(source, f"albedo basis shape {self.albedo_basis.shape}, expected {expected}")
                continue
            basis = self.bases.get(group.name)
            if basis is None:
                raise ModelFileError(source, f"parameter group {group.name!r} has no basis")
            if basis.shape != (group.size, V, 3):
                raise ModelFileError(source, f"{group.name} basis shape {basis.shape}, expected {(group.size, V, 3)}")
        if self.landmark_vertices.shape != self.landmark_weights.shape or self.landmark_vertices.shape[0] != NUM_LANDMARKS:
            raise ModelFileError(source, f"landmark embedding must be (68, J) indices and weights, got "
                                         f"{self.landmark_vertices.shape} and {self.landmark_weights.shape}")
        if self.landmark_vertices.min() < 0 or self.landmark_vertices.max() >= V:
            raise ModelFileError(source, f"landmark vertex indices must lie in [0, {V})")
        if self.landmark_confidence.shape != (NUM_LANDMARKS,):
            raise ModelFileError(source, f"landmark_confidence must have shape (68,), got {self.landmark_confidence.shape}")
        if self.face_region.shape != (V,):
            raise ModelFileError(source, f"face_region must have shape ({V},), got {self.face_region.shape}")
        if (self.uv is None) != (self.faces_uv is None):
            raise ModelFileError(source, "uv and faces_uv must be given together")
        if self.faces_uv is not None and self.faces_uv.shape != self.faces.shape:
            raise ModelFileError(source, f"faces_uv shape {self.faces_uv.shape} differs from faces {self.faces.shape}")
        if self.uv is not None and (self.uv.ndim != 2 or self.uv.shape[1] != 2):
            raise ModelFileError(source, f"uv must have shape (T, 2), got {self.uv.shape}")
        if self.faces_uv is not None and (self.faces_uv.min() < 0 or self.faces_uv.max() >= len(self.uv)):
            raise ModelFileError(source, f"faces_uv indices must lie in [0, {len(self.uv)})")


class LinearMorphableModel(MorphableModel):
    """A linear (blendshape / PCA) morphable model built from ``LinearModelData``."""

    def __init__(self, data: LinearModelData) -> None:
        data.validate(data.metadata.get("source", data.name))
        super().__init__(data.name, data.groups)
        self.metadata = dict(data.metadata)

        buffer = self.register_array
        buffer("mean", data.mean, torch.float32)
        buffer("faces", data.faces, torch.long)
        buffer("face_region", data.face_region, torch.bool)
        buffer("landmark_vertices", data.landmark_vertices, torch.long)
        buffer("landmark_weights", data.landmark_weights, torch.float32)
        buffer("landmark_confidence", data.landmark_confidence, torch.float32)
        buffer("albedo_mean", data.albedo_mean, torch.float32)
        buffer("albedo_basis", data.albedo_basis, torch.float32)
        buffer("uv", data.uv, torch.float32)
        buffer("faces_uv", data.faces_uv, torch.long)
        self.shape_group_names = tuple(g.name for g in data.groups if g.name != "albedo")
        for group_name in self.shape_group_names:
            buffer(f"basis_{group_name}", data.bases[group_name], torch.float32)
        # The same model restricted to its 68 landmarks, for landmark-only fitting stages.
        self.register_buffer("landmark_mean", self.landmarks_from_verts(self.mean[None])[0], persistent=False)
        for group_name in self.shape_group_names:
            self.register_buffer(f"landmark_basis_{group_name}", self.landmarks_from_verts(self.basis(group_name)),
                                 persistent=False)

    def basis(self, group: str) -> Tensor:
        """(K, V, 3) basis of a shape group."""
        return getattr(self, f"basis_{group}")

    def to_data(self) -> LinearModelData:
        """Return the model's content as numpy arrays (for saving)."""

        def arr(t: Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().cpu().numpy()

        return LinearModelData(
            name=self.name, mean=arr(self.mean), faces=arr(self.faces), groups=tuple(self.groups.values()),
            bases={g: arr(self.basis(g)) for g in self.shape_group_names},
            landmark_vertices=arr(self.landmark_vertices), landmark_weights=arr(self.landmark_weights),
            landmark_confidence=arr(self.landmark_confidence), face_region=arr(self.face_region),
            albedo_mean=arr(self.albedo_mean), albedo_basis=arr(self.albedo_basis), uv=arr(self.uv),
            faces_uv=arr(self.faces_uv), metadata=dict(self.metadata))

    @staticmethod
    def _blend(B: int, mean: Tensor, terms: list[tuple[Tensor | None, Tensor]]) -> Tensor:
        """(N, 3) mean plus sum of (B, K) coefficients times (K, N, 3) bases -> (B, N, 3)."""
        points = mean.expand(B, -1, -1)
        for coeffs, basis in terms:
            if coeffs is not None:
                K, N, _ = basis.shape
                points = points + (coeffs @ basis.reshape(K, N * 3)).reshape(B, N, 3)
        return points

    def forward(self, **params: Tensor) -> MeshOutput:
        """Build meshes from named parameters; missing groups are zero.

        Args:
            **params: {group name: (B, K)} coefficients.

        Returns:
            MeshOutput with verts (B, V, 3), landmarks (B, 68, 3) and albedo (B, V, 3) or None.
        """
        B = self.check_params(params)
        verts = self._blend(B, self.mean, [(params.get(g), self.basis(g)) for g in self.shape_group_names])
        albedo = None
        if self.albedo_mean is not None:
            albedo = self._blend(B, self.albedo_mean, [(params.get("albedo"), self.albedo_basis)]).clamp(0.0, 1.0)
        return MeshOutput(verts=verts, landmarks=self.landmarks_from_verts(verts), albedo=albedo)

    def landmarks(self, **params: Tensor) -> Tensor:
        """(B, 68, 3) landmarks from the landmark-restricted bases, without building the mesh."""
        B = self.check_params(params)
        return self._blend(B, self.landmark_mean, [(params.get(g), getattr(self, f"landmark_basis_{g}"))
                                                   for g in self.shape_group_names])
