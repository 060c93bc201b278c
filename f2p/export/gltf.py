"""The fitted head as a glTF 2.0 binary (.glb): identity mesh, expression morph targets, colours, pose.

What the file holds (one scene, one node, one mesh with one triangle primitive, one material):

- Frame and units: glTF's own, which are f2p's model space unchanged: metres, +Y up, +Z forward (out of the
  face, towards the viewer), +X towards the subject's left (glTF's "left" of an asset facing +Z). No axis flip or
  scale is applied anywhere.
- Base mesh (``POSITION``): the fitted identity at neutral expression, ``model(identity = fitted, every
  expression group = 0)``, with a skinned model's joint rotations at zero (FLAME's ``jaw_pose``, ``neck_pose``,
  ``eye_pose``: see "FLAME" below).
- Morph targets: one per expression component (groups ``EXPRESSION_GROUPS``: ``expression``, a rig's
  ``sliders``), POSITION deltas ``target_k = mesh(identity, e_k = s_k) - mesh(identity, e = 0)`` with every
  other expression component at 0. For a linear model (``LinearMorphableModel``) that is ``s_k * basis_k``,
  the same for every face, so ``HeadGlb`` builds those targets once per model and reuses them; otherwise
  (FLAME) the deltas are taken at the fitted parameters. Either way ``base + sum_k w_k target_k`` equals the
  model's mesh at the fitted parameters. No NORMAL deltas are written (engines shade morphed meshes with the base
  normals or recompute them).
- Weight mapping: ``s_k`` (``ExpressionComponent.scale``) is the slider's upper bound, so that the morph target
  at weight 1 is the slider at its max; a slider whose max is 0 (range [min, 0]) uses its min, an unbounded
  component (FLAME, BFM) uses 1. The glTF morph weight of a slider value ``v`` is ``w = v / s``: [0, 1] sliders
  are unchanged, a game slider in [-1, 1] gives weights in [-1, 1] (glTF morph weights may be negative), one in
  [0, 100] gives ``v / 100``. The fitted expression is the mesh's default ``weights``; the target names (the
  model's component names, ``<group>_<k>`` where it has none) are in ``mesh.extras.targetNames`` and the scales
  in ``mesh.extras.f2p.targetScales`` (the slider value at weight 1, so ``v = w * s``), with each target's
  parameter group in ``mesh.extras.f2p.targetGroups`` and its range of weights in ``mesh.extras.f2p.targetRanges``
  ([low, high]: the slider's bounds over its scale, +-3 prior standard deviations when unbounded).
- Colours (``COLOR_0``, float RGB): the given per-vertex colours, which f2p fits against photo pixels and so are
  sRGB-encoded, converted to the linear values glTF specifies for vertex colours (IEC 61966-2-1 transfer function).
- UVs (``TEXCOORD_0``) where the model has them, with glTF's origin at the top left (``v_gltf = 1 - v``, OBJ and
  f2p keep OBJ's bottom-left origin). glTF has one UV per vertex, so a vertex on a UV seam (several UVs) is
  written once per UV: ``vertex_layout`` gives the model vertex behind each glTF vertex. Models without UVs keep
  their vertex order and count.
- Normals (``NORMAL``): area-weighted unit normals of the base mesh, computed on the model's own triangles
  (smooth across UV seams); a vertex in no triangle of non-zero area gets +Z.
- Head pose: the node's ``rotation`` quaternion (x, y, z, w) is the fitted axis-angle head rotation ``R_head``
  of ``f2p.conventions`` (applied in model space, before the camera), so the node's world vertices are
  ``R_head @ v``, the posed mesh in model space. The head's translation is not written: f2p keeps it in the
  camera frame (``params.json``), not in model space.
- Size: morph targets are sparse accessors (glTF 2.0 core: only the listed vertices' deltas are stored, the rest
  read as 0) holding, per vertex, only the deltas that matter: the smallest deltas of a vertex are left out while
  the sum of their norms, each times its component's reach (the largest weight it takes, ``ExpressionComponent``),
  stays within ``MORPH_TOLERANCE_M`` (0.05 mm), so any weights within the reaches move no vertex further than
  that from the model's mesh. A target that keeps nothing has no data (all zeros). Triangle indices are 16-bit
  where the vertex count allows. ICT FaceKit's head: 10.3 MB with dense targets, 4.8 MB so (its 53 shapes move
  a few thousand vertices each, with sub-micrometre noise elsewhere).
- Material: a white, non-metallic, double-sided material (the vertex colours carry the colour; ICT's and SFM's
  skin meshes are open surfaces whose back faces show through the mouth and neck).
- Texture (models with UVs, when one is given: ``f2p.export.texture_bake``): an sRGB PNG in the buffer (written as
  f2p's other PNGs, ``figures.save_png``), the material's ``baseColorTexture`` on ``TEXCOORD_0`` (linear filtering,
  repeat wrapping). glTF multiplies ``COLOR_0`` into the base colour, so a textured head has no ``COLOR_0`` (the
  texture holds the vertex colours where the photo does not see the surface).

FLAME: its jaw, neck and eyes are a glTF skin (``f2p.export.gltf_skin``, which says what the file holds and
what a skin cannot express: FLAME's pose-corrective blendshapes); the head pose then sits on the skeleton's parent
node, not on ``HEAD_NODE``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pygltflib
import torch
from PIL import Image
from torch import Tensor

from f2p.atomic import atomic_writer
from f2p.export.figures import save_png
from f2p.export.gltf_skin import add_skin, head_skin, rest_params
from f2p.morphable.base import LinearMorphableModel, MorphableModel
from f2p.render.normals import vertex_normals
from f2p.render.rotations import axis_angle_to_matrix, matrix_to_quaternion

EXPRESSION_GROUPS = ("expression", "sliders")
"""Parameter groups written as morph targets (expression blendshapes, a game rig's sliders)."""
GENERATOR = "f2p"
MATERIAL_ROUGHNESS = 0.7
"""Roughness of the head's material (skin reads as moderately rough; no specular map is fitted)."""
DEFAULT_NORMAL = (0.0, 0.0, 1.0)
"""Normal of a vertex in no triangle of non-zero area (glTF requires unit normals)."""
SRGB_LINEAR_THRESHOLD = 0.04045
"""sRGB-encoded value below which the IEC 61966-2-1 transfer function is linear."""
SRGB_LINEAR_SLOPE = 12.92
SRGB_OFFSET = 0.055
SRGB_GAMMA = 2.4
BUFFER_ALIGNMENT = 4
"""glTF aligns every buffer view to 4 bytes (the largest component used here)."""
COMPONENT_TYPES = {np.float32: pygltflib.FLOAT, np.uint32: pygltflib.UNSIGNED_INT,
                   np.uint16: pygltflib.UNSIGNED_SHORT}
"""glTF component type of each array type written."""
MORPH_TOLERANCE_M = 5e-5
"""Largest movement of a morphed vertex that leaving out small target deltas may cause (metres; 0.05 mm, half the
0.1 mm the tests allow), for any morph weights within their components' reaches (``kept_deltas``)."""
UNBOUNDED_REACH_STD = 3.0
"""Reach of an unbounded expression component (FLAME, BFM) in prior standard deviations."""
PNG_MIME_TYPE = "image/png"
HEAD_NODE = 0
HEAD_MESH = 0
"""Indices of the head's node and mesh in ``head_document``'s glTF."""


@dataclass(frozen=True)
class ExpressionComponent:
    """One expression component of a model, written as one morph target.

    Attributes:
        group: its parameter group (one of ``EXPRESSION_GROUPS``).
        index: its position in the group.
        name: the model's component name, or ``<group>_<index>`` where the model names none.
        scale: the parameter value at morph weight 1 (module docstring: the slider's max, its min when the max is
            0, 1 when unbounded).
        weight_range: (low, high) morph weights the component takes: its bounds over ``scale`` for a bounded slider
            ((0, 1) for [0, 1]), +- ``UNBOUNDED_REACH_STD`` prior standard deviations when unbounded.
    """

    group: str
    index: int
    name: str
    scale: float
    weight_range: tuple[float, float]

    @property
    def reach(self) -> float:
        """The largest morph weight magnitude the component takes."""
        return max(abs(self.weight_range[0]), abs(self.weight_range[1]))


@dataclass(frozen=True)
class HeadMorphs:
    """The head as a base mesh plus morph targets, on the model's vertices (metres, model space).

    Attributes:
        base: (V, 3) fitted identity at neutral expression.
        targets: (K, V, 3) position deltas of each expression component at morph weight 1.
        weights: (K,) fitted morph weights (parameter value / component scale).
        components: (K,) the expression components, in target order.
    """

    base: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    components: tuple[ExpressionComponent, ...]

    @property
    def reach(self) -> np.ndarray:
        """(K,) the largest weight magnitude of each target: its component's reach, or the fitted weight's magnitude
        where that is larger."""
        return np.maximum(component_reach(self.components), np.abs(self.weights))

    def morphed(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) ``base + sum_k weights[k] * targets[k]``, with the fitted weights by default."""
        w = self.weights if weights is None else np.asarray(weights, dtype=np.float64)
        K, V, _ = self.targets.shape
        return self.base + (w @ self.targets.reshape(K, V * 3)).reshape(V, 3)


@dataclass(frozen=True)
class VertexLayout:
    """The glTF vertices of a model: one per (model vertex, UV) pair used by a triangle, or the model's own.

    Attributes:
        source: (N,) model vertex of each glTF vertex.
        faces: (F, 3) triangles indexing the N glTF vertices, in the model's triangle order.
        uv: (N, 2) texture coordinates with glTF's top-left origin, or None when the model has no UVs.
    """

    source: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class SparseTarget:
    """One morph target's POSITION deltas as head.glb stores them (module docstring, "Size").

    Attributes:
        rows: (M,) the glTF vertices whose deltas are stored, uint16 where the vertex count allows, else uint32;
            M = 0: no data (every delta reads as 0).
        values: (M, 3) float32 their deltas, metres.
        low, high: (3,) bounds of the (N, 3) deltas a reader reconstructs (0 where a delta is left out).
        count: N, the glTF vertices.
    """

    rows: np.ndarray
    values: np.ndarray
    low: list[float]
    high: list[float]
    count: int


def sparse_target(deltas: np.ndarray, kept: np.ndarray) -> SparseTarget:
    """(N, 3) deltas of one target on the glTF vertices and (N,) which are written -> SparseTarget."""
    N = len(deltas)
    values = np.where(kept[:, None], deltas, 0.0).astype(np.float32)  # (N, 3) what a reader reconstructs
    rows = np.flatnonzero(kept)
    index_type = np.uint16 if N <= np.iinfo(np.uint16).max else np.uint32
    return SparseTarget(rows=rows.astype(index_type), values=values[rows], low=values.min(axis=0).tolist(),
                        high=values.max(axis=0).tolist(), count=N)


def expression_components(model: MorphableModel) -> tuple[ExpressionComponent, ...]:
    """The model's expression components (groups ``EXPRESSION_GROUPS``, in the model's group order)."""
    components = []
    for group in model.groups.values():
        if group.name not in EXPRESSION_GROUPS:
            continue
        for k in range(group.size):
            name = group.component_names[k] if group.component_names else f"{group.name}_{k}"
            reach = UNBOUNDED_REACH_STD * group.prior_std[k]
            scale, weight_range = 1.0, (-reach, reach)
            if group.bounded:
                scale = group.upper[k] if group.upper[k] != 0 else (group.lower[k] if group.lower[k] != 0 else 1.0)
                weight_range = tuple(sorted((group.lower[k] / scale, group.upper[k] / scale)))
            components.append(ExpressionComponent(group.name, k, name, float(scale),
                                                  (float(weight_range[0]), float(weight_range[1]))))
    return tuple(components)


def component_reach(components: tuple[ExpressionComponent, ...]) -> np.ndarray:
    """(K,) ``ExpressionComponent.reach`` of each component."""
    return np.array([c.reach for c in components], dtype=np.float64)


def _batched_params(model: MorphableModel, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """{group: (K,) or (1, K)} for one face, any extra (scene) keys ignored -> {model group: (1, K)} float32."""
    single = {name: torch.as_tensor(value).detach().reshape(1, -1).to(model.device, torch.float32)
              for name, value in params.items() if name in model.groups}
    model.check_params(single)
    return single


def head_morphs(model: MorphableModel, params: dict[str, Tensor]) -> HeadMorphs:
    """Base mesh, expression morph targets and fitted weights of one face (see the module docstring).

    Args:
        model: the face model.
        params: {group: (K,)} fitted parameters of one face (``PhotoResult.params``; keys that are not groups of
            the model, such as ``pose``, are ignored; missing groups are zero).

    Returns:
        HeadMorphs on the model's V vertices, float64.
    """
    return HeadGlb(model).morphs(params)


def shared_targets(model: MorphableModel, components: tuple[ExpressionComponent, ...]) -> np.ndarray | None:
    """(K, V, 3) float64 deltas of the ``components`` at their scales where they are the same for every face (a
    linear model: ``scale_k * basis_k``), else None (FLAME: they depend on the fitted jaw, neck and eye pose)."""
    if not isinstance(model, LinearMorphableModel):
        return None
    targets = np.zeros((len(components), model.num_vertices, 3))
    for k, component in enumerate(components):
        targets[k] = component.scale * model.basis(component.group)[component.index].double().cpu().numpy()
    targets.setflags(write=False)  # shared by every face's HeadMorphs
    return targets


def morph_weights(model: MorphableModel, params: dict[str, Tensor]) -> np.ndarray:
    """(K,) float64 morph weights (parameter value / component scale) of one face's ``{group: (K,)}`` params, in
    ``expression_components`` order; a missing group is zero."""
    fitted = _batched_params(model, params)
    return np.array([float(fitted[c.group][0, c.index]) / c.scale if c.group in fitted else 0.0
                     for c in expression_components(model)], dtype=np.float64)


def vertex_layout(model: MorphableModel) -> VertexLayout:
    """The glTF vertices of ``model``: split at UV seams where it has UVs (``faces_uv``), else its own vertices.

    With UVs, each distinct (vertex, UV index) pair of a triangle corner becomes one glTF vertex, sorted by model
    vertex then UV index (vertices in no triangle are left out: they carry no surface).
    """
    faces = model.faces.cpu().numpy()
    uv = getattr(model, "uv", None)
    if uv is None:
        return VertexLayout(source=np.arange(model.num_vertices), faces=faces, uv=None)
    corners = np.stack([faces.reshape(-1), model.faces_uv.cpu().numpy().reshape(-1)], axis=1)  # (3F, 2)
    pairs, corner_vertex = np.unique(corners, axis=0, return_inverse=True)  # (N, 2), (3F,)
    texcoords = uv.double().cpu().numpy()[pairs[:, 1]]
    texcoords[:, 1] = 1.0 - texcoords[:, 1]  # OBJ's bottom-left origin -> glTF's top-left
    return VertexLayout(source=pairs[:, 0], faces=corner_vertex.reshape(faces.shape), uv=texcoords)


def pose_quaternion(pose: Tensor) -> tuple[float, float, float, float]:
    """(3,) axis-angle head pose ``R_head`` (radians, model space) -> glTF rotation quaternion (x, y, z, w)."""
    w, x, y, z = matrix_to_quaternion(axis_angle_to_matrix(torch.as_tensor(pose).detach().double().cpu()))
    return float(x), float(y), float(z), float(w)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear values in [0, 1] (IEC 61966-2-1), any shape."""
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= SRGB_LINEAR_THRESHOLD, values / SRGB_LINEAR_SLOPE,
                    ((values + SRGB_OFFSET) / (1.0 + SRGB_OFFSET)) ** SRGB_GAMMA)


def _unit_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) vertices, (F, 3) faces -> (V, 3) area-weighted unit normals, ``DEFAULT_NORMAL`` where undefined."""
    normals = vertex_normals(torch.from_numpy(verts)[None], torch.from_numpy(faces))[0].numpy()
    undefined = np.linalg.norm(normals, axis=1) < 0.5
    normals[undefined] = DEFAULT_NORMAL
    return normals


def kept_deltas(targets: np.ndarray, reach: np.ndarray, tolerance_m: float = MORPH_TOLERANCE_M) -> np.ndarray:
    """(K, V) which of the (K, V, 3) ``targets``' deltas are written: at each vertex the smallest deltas are dropped
    while the sum of their norms times their target's (K,) ``reach`` (``HeadMorphs.reach``) stays within
    ``tolerance_m``, so that for every weight vector within the reaches the morphed vertex moves by at most
    ``tolerance_m`` from the model's (module docstring, "Size")."""
    moves = np.linalg.norm(targets, axis=2) * reach[:, None]  # (K, V) metres at the component's reach
    order = np.argsort(moves, axis=0)  # per vertex, smallest first
    dropped_sorted = np.cumsum(np.take_along_axis(moves, order, axis=0), axis=0) <= tolerance_m
    kept = np.ones_like(moves, dtype=bool)
    np.put_along_axis(kept, order, ~dropped_sorted, axis=0)
    return kept


class GlbBuilder:
    """A glTF 2.0 document with one binary buffer, built accessor by accessor; ``to_bytes`` gives the .glb.

    ``head_document`` builds the head with it; an animation adds its sampler accessors with
    ``accessor(array, kind)`` (no buffer-view target) and a ``pygltflib.Animation`` to ``gltf.animations`` before
    ``to_bytes``."""

    def __init__(self) -> None:
        self.gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator=GENERATOR))
        self._chunks: list[bytes] = []
        self._length = 0

    def _view(self, array: np.ndarray, target: int | None) -> int:
        """Append ``array``'s bytes as a tightly packed buffer view (4-byte aligned); return its index."""
        data = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=self._length, byteLength=len(data),
                                                          target=target))
        padding = -len(data) % BUFFER_ALIGNMENT
        self._chunks.append(data + b"\0" * padding)
        self._length += len(data) + padding
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, min_max: bool = False) -> int:
        """Append ``array`` ((N,) or (N, C), float32, uint32 or uint16) as a view and an accessor of type ``kind``
        (``pygltflib.VEC3`` ...); ``target``: the view's buffer target (None for animation data); ``min_max``:
        write the accessor's bounds (required for POSITION and animation inputs). Returns the accessor index."""
        rows = array.reshape(len(array), -1)
        self.gltf.accessors.append(pygltflib.Accessor(
            bufferView=self._view(array, target), componentType=COMPONENT_TYPES[array.dtype.type],
            count=len(array), type=kind, min=rows.min(axis=0).tolist() if min_max else None,
            max=rows.max(axis=0).tolist() if min_max else None))
        return len(self.gltf.accessors) - 1

    def sparse_accessor(self, target: SparseTarget, kind: str) -> int:
        """A float32 accessor of type ``kind`` that stores only ``target``'s rows (the others read as 0): a sparse
        accessor over zeros, or no data at all when no row is stored, with min/max of what readers get. Returns
        the accessor index."""
        accessor = pygltflib.Accessor(byteOffset=None, componentType=pygltflib.FLOAT, count=target.count, type=kind,
                                      min=target.low, max=target.high)
        if len(target.rows):
            accessor.sparse = pygltflib.Sparse(
                count=len(target.rows),
                indices=pygltflib.AccessorSparseIndices(bufferView=self._view(target.rows, None),
                                                        componentType=COMPONENT_TYPES[target.rows.dtype.type]),
                values=pygltflib.AccessorSparseValues(bufferView=self._view(target.values, None)))
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def texture(self, image: np.ndarray) -> int:
        """Append an (H, W, 3) uint8 sRGB image as a PNG image in the buffer, with a linear, repeating sampler and a
        texture; return the texture index."""
        png = io.BytesIO()
        save_png(Image.fromarray(image, "RGB"), png)
        self.gltf.images.append(pygltflib.Image(bufferView=self._view(np.frombuffer(png.getvalue(), np.uint8), None),
                                                mimeType=PNG_MIME_TYPE))
        self.gltf.samplers.append(pygltflib.Sampler(magFilter=pygltflib.LINEAR, minFilter=pygltflib.LINEAR,
                                                    wrapS=pygltflib.REPEAT, wrapT=pygltflib.REPEAT))
        self.gltf.textures.append(pygltflib.Texture(sampler=len(self.gltf.samplers) - 1,
                                                    source=len(self.gltf.images) - 1))
        return len(self.gltf.textures) - 1

    def to_bytes(self) -> bytes:
        """The .glb file's bytes (the document and its buffer)."""
        blob = b"".join(self._chunks)
        self.gltf.buffers = [pygltflib.Buffer(byteLength=len(blob))]
        self.gltf.set_binary_blob(blob)
        return b"".join(self.gltf.save_to_bytes())


class HeadGlb:
    """Builds the head.glb documents of one model's faces (module docstring), building what no face changes once,
    at its first use, and reusing it: the expression components, the glTF vertex layout and, where the model's
    morph targets are the same for every face (``shared_targets``), the targets as stored (kept rows, float32
    deltas, bounds), for faces whose weights stay within the components' reaches (any bounded slider in range).
    Each document is byte for byte that of a fresh ``HeadGlb`` (``head_gltf``).

    Args:
        model: the face model; its buffers must not change while the HeadGlb is used.
    """

    def __init__(self, model: MorphableModel) -> None:
        self.model = model

    @cached_property
    def components(self) -> tuple[ExpressionComponent, ...]:
        """(K,) the model's expression components, in target order."""
        return expression_components(self.model)

    @cached_property
    def layout(self) -> VertexLayout:
        """The model's glTF vertices (``vertex_layout``)."""
        return vertex_layout(self.model)

    @cached_property
    def shared_targets(self) -> np.ndarray | None:
        """(K, V, 3) the model's targets where every face has the same (``shared_targets``), else None."""
        return shared_targets(self.model, self.components)

    @cached_property
    def _shared_sparse(self) -> tuple[SparseTarget, ...]:
        """(K,) ``shared_targets`` as stored for weights within the components' reaches."""
        return self._sparse(self.shared_targets, component_reach(self.components))

    def _sparse(self, targets: np.ndarray, reach: np.ndarray) -> tuple[SparseTarget, ...]:
        """(K, V, 3) targets on the model's vertices, (K,) their reaches -> (K,) SparseTarget on the glTF vertices."""
        source = self.layout.source
        kept = kept_deltas(targets, reach)[:, source]  # (K, N)
        return tuple(sparse_target(delta[source], keep) for delta, keep in zip(targets, kept))

    def sparse_targets(self, morphs: HeadMorphs) -> tuple[SparseTarget, ...]:
        """(K,) ``morphs``' targets as stored: the shared ones where they apply (``morphs.targets`` is
        ``shared_targets`` and its weights stay within the components' reaches)."""
        if morphs.targets is self.shared_targets and np.array_equal(morphs.reach, component_reach(self.components)):
            return self._shared_sparse
        return self._sparse(morphs.targets, morphs.reach)

    def morphs(self, params: dict[str, Tensor]) -> HeadMorphs:
        """``head_morphs`` of one face's {group: (K,)} ``params``; ``targets`` is ``shared_targets`` where set."""
        model, components = self.model, self.components
        fitted = _batched_params(model, rest_params(model, params))  # a skinned model's joints at rest
        shared = self.shared_targets
        # Row 0: neutral expression; without shared targets, row 1 + k: component k at its scale, every other
        # expression component 0.
        rows = 1 if shared is not None else len(components) + 1
        batch = {name: value.expand(rows, -1).clone() for name, value in fitted.items()}
        for group in {c.group for c in components}:
            batch[group] = torch.zeros(rows, model.groups[group].size, device=model.device)
        if shared is None:
            for k, component in enumerate(components):
                batch[component.group][1 + k, component.index] = component.scale
        with torch.no_grad():
            verts = model(**batch).verts.double().cpu().numpy()  # (rows, V, 3)
        return HeadMorphs(base=verts[0], targets=verts[1:] - verts[:1] if shared is None else shared,
                          weights=morph_weights(model, params), components=components)

    def document(self, params: dict[str, Tensor], colors: Tensor | None = None, pose: Tensor | None = None,
                 texture: np.ndarray | None = None) -> GlbBuilder:
        """The fitted head as a glTF document (see the module docstring): node ``HEAD_NODE`` with mesh
        ``HEAD_MESH`` (one primitive, its morph targets and default weights) in scene 0, to write with
        ``to_bytes`` or extend (an animation of the node's rotation and the mesh's weights).

        Args:
            params: {group: (K,)} fitted parameters of one face (scene keys are ignored).
            colors: (V, 3) per-vertex colours in [0, 1], sRGB-encoded as f2p fits them (``PhotoResult.colors``), or
                None for no ``COLOR_0``.
            pose: (3,) axis-angle head pose (radians), or None for the identity rotation.
            texture: (H, W, 3) uint8 sRGB base colour texture on the model's UVs (``texture_bake``), or None; with
                one, ``colors`` are not written (module docstring, "Texture").
        """
        model = self.model
        morphs = self.morphs(params)
        layout = self.layout
        f32 = np.float32
        builder = GlbBuilder()
        gltf = builder.gltf
        array_buffer = pygltflib.ARRAY_BUFFER
        attributes = pygltflib.Attributes(
            POSITION=builder.accessor(morphs.base[layout.source].astype(f32), pygltflib.VEC3, array_buffer,
                                      min_max=True),
            NORMAL=builder.accessor(_unit_normals(morphs.base, model.faces.cpu().numpy())[layout.source].astype(f32),
                                    pygltflib.VEC3, array_buffer))
        if layout.uv is not None:
            attributes.TEXCOORD_0 = builder.accessor(layout.uv.astype(f32), pygltflib.VEC2, array_buffer)
        if texture is not None and layout.uv is None:
            raise ValueError(f"model {model.name!r} has no UVs for a texture")
        if colors is not None and texture is None:
            rgb = colors.detach().double().cpu().numpy()
            if rgb.shape != (model.num_vertices, 3):
                raise ValueError(f"colors must have shape ({model.num_vertices}, 3), got {rgb.shape}")
            attributes.COLOR_0 = builder.accessor(srgb_to_linear(rgb)[layout.source].astype(f32), pygltflib.VEC3,
                                                  array_buffer)
        targets = [pygltflib.Attributes(POSITION=builder.sparse_accessor(target, pygltflib.VEC3))
                   for target in self.sparse_targets(morphs)]
        index_type = np.uint16 if len(layout.source) <= np.iinfo(np.uint16).max else np.uint32
        indices = builder.accessor(layout.faces.reshape(-1).astype(index_type), pygltflib.SCALAR,
                                   pygltflib.ELEMENT_ARRAY_BUFFER, min_max=True)
        base_color = None if texture is None else pygltflib.TextureInfo(index=builder.texture(texture), texCoord=0)
        gltf.materials.append(pygltflib.Material(
            name=f"{model.name}_skin", doubleSided=True,
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 1.0],
                                                                baseColorTexture=base_color, metallicFactor=0.0,
                                                                roughnessFactor=MATERIAL_ROUGHNESS)))
        primitive = pygltflib.Primitive(attributes=attributes, indices=indices, material=0, mode=pygltflib.TRIANGLES,
                                        targets=targets or None)
        components = morphs.components
        gltf.meshes.append(pygltflib.Mesh(
            name=model.name, primitives=[primitive], weights=morphs.weights.tolist() if targets else None,
            extras={"targetNames": [c.name for c in components],
                    "f2p": {"model": model.name, "targetScales": [c.scale for c in components],
                            "targetRanges": [list(c.weight_range) for c in components],
                            "targetGroups": [c.group for c in components]}}))
        rotation = None if pose is None else list(pose_quaternion(pose))
        gltf.nodes.append(pygltflib.Node(name=f"{model.name}_head", mesh=HEAD_MESH, rotation=rotation))
        gltf.scenes.append(pygltflib.Scene(nodes=[HEAD_NODE]))
        gltf.scene = 0
        skin = head_skin(model, _batched_params(model, params), morphs.morphed)
        if skin is not None:
            add_skin(gltf, builder.accessor, skin, layout.source, HEAD_NODE)
        return builder

    def write(self, path: str | os.PathLike, params: dict[str, Tensor], colors: Tensor | None = None,
              pose: Tensor | None = None, texture: np.ndarray | None = None) -> None:
        """Write ``document(params, colors, pose, texture)``'s .glb to ``path`` atomically."""
        data = self.document(params, colors, pose, texture).to_bytes()
        with atomic_writer(path) as handle:
            handle.write(data)


def head_document(model: MorphableModel, params: dict[str, Tensor], colors: Tensor | None = None,
                  pose: Tensor | None = None) -> GlbBuilder:
    """``HeadGlb(model).document(params, colors, pose)``: one face's head as a glTF document."""
    return HeadGlb(model).document(params, colors, pose)


def head_gltf(model: MorphableModel, params: dict[str, Tensor], colors: Tensor | None = None,
              pose: Tensor | None = None) -> bytes:
    """The .glb bytes of ``head_document(model, params, colors, pose)``."""
    return head_document(model, params, colors, pose).to_bytes()


def write_head_glb(path: str | os.PathLike, model: MorphableModel, params: dict[str, Tensor],
                   colors: Tensor | None = None, pose: Tensor | None = None) -> None:
    """``HeadGlb(model).write(path, params, colors, pose)``: ``head_gltf(...)`` written to ``path`` atomically."""
    HeadGlb(model).write(path, params, colors, pose)
