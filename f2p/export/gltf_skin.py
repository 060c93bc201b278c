"""head.glb's glTF skin for models with joints (FLAME: global, neck, jaw, eyes), added by ``gltf.HeadGlb``.

What a skinned head.glb holds beyond an unskinned one (``f2p.export.gltf``):

- The mesh is the rest mesh: identity and expression at their fitted values (as morph targets and their default
  weights), every joint rotation at zero; the fitted ``neck_pose``, ``jaw_pose`` and ``eye_pose`` are the joint
  nodes' ``rotation`` quaternions (x, y, z, w), so the neck, jaw and eyes are animatable.
- Joint nodes, one per model joint, named as the model names them (``flame.JOINT_NAMES``: global, neck, jaw,
  left_eye, right_eye) and nested as its kinematic tree; each node's ``translation`` is its rest position minus
  its parent's, the rest positions being the joint regressor applied to the rest mesh at the default morph
  weights (the fitted identity and expression: FLAME regresses its joints from the expressed mesh, so that the
  file's default state is FLAME's fitted mesh; a glTF joint cannot follow the morph weights, so animating the
  expression away from the fitted one keeps the joints where the fitted expression put them).
- ``inverseBindMatrices``: ``T(-J_j)``, the inverse of each joint's rest transform in model space.
- ``JOINTS_0`` (unsigned short) and ``WEIGHTS_0`` (float): the model's skinning weights, per vertex its
  ``JOINT_INFLUENCES`` largest positive ones renormalised to sum 1 (unused slots: joint 0, weight 0). A vertex with
  more positive weights than that loses its smallest ones (every engine reads one set of four; FLAME is exact where
  a vertex has at most four).
- Head pose: glTF ignores the transform of a skinned mesh's node (its joints place it), so the fitted head
  rotation moves from the head node ``gltf.HEAD_NODE`` (which keeps the mesh and the skin, with no transform) to
  the skeleton's parent, node ``<head node>_pose`` (no translation): world vertices are ``R_head @ LBS(v)``, rotated
  once. The global joint's rotation stays zero (FLAME's root is not a parameter; the head pose is the node's).
- Not in the file: FLAME's pose-corrective blendshapes (vertex offsets driven by the joint rotations), which a glTF
  skin cannot express. The skinned mesh is FLAME's linear blend skinning without them
  (``FlameModel(pose_correctives=False)``); how far that is from FLAME's own mesh grows with the joint rotations
  (tests/test_export_gltf_skin.py measures it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pygltflib
import torch
from torch import Tensor

from f2p.morphable.base import MorphableModel
from f2p.morphable.flame import JOINT_NAMES, FlameModel
from f2p.render.rotations import axis_angle_to_matrix, matrix_to_quaternion

JOINT_INFLUENCES = 4
"""Joints per vertex in ``JOINTS_0`` / ``WEIGHTS_0`` (glTF's one set, the most every engine reads)."""
JOINT_GROUPS = ("neck_pose", "jaw_pose", "eye_pose")
"""FLAME's parameter groups that are joint rotations (the skin's, not the mesh's)."""

Accessor = Callable[..., int]
"""``GlbBuilder.accessor``: (array, kind, target) -> accessor index."""


@dataclass(frozen=True)
class HeadSkin:
    """A model's joints at one face's fitted parameters, on the model's V vertices and J joints.

    Attributes:
        names: (J,) joint names.
        parents: (J,) parent of each joint, -1 for the root; parents precede children.
        rest: (J, 3) rest joint positions, metres, model space.
        rotations: (J, 4) fitted joint rotations as unit quaternions (x, y, z, w).
        joints: (V, JOINT_INFLUENCES) uint16 joint indices of each vertex.
        weights: (V, JOINT_INFLUENCES) float32 their weights, summing to 1 per vertex.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest: np.ndarray
    rotations: np.ndarray
    joints: np.ndarray
    weights: np.ndarray


def rest_params(model: MorphableModel, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """{group: values} without the joint rotations of a model with joints (missing groups read as zero: the rest
    pose), unchanged for other models."""
    if not isinstance(model, FlameModel):
        return params
    return {name: value for name, value in params.items() if name not in JOINT_GROUPS}


def axis_angle_quaternions(axis_angles: Tensor) -> np.ndarray:
    """(..., 3) axis-angle rotations (radians) -> (..., 4) float64 unit quaternions in glTF's order (x, y, z, w)."""
    wxyz = matrix_to_quaternion(axis_angle_to_matrix(torch.as_tensor(axis_angles).detach().double().cpu()))
    return wxyz[..., [1, 2, 3, 0]].numpy()


def skin_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) skinning weights -> (V, JOINT_INFLUENCES) uint16 joints and float32 weights: per vertex the largest
    positive weights, renormalised to sum 1; unused slots hold joint 0 with weight 0."""
    V, J = weights.shape
    order = np.argsort(-weights, axis=1, kind="stable")[:, :JOINT_INFLUENCES]  # (V, <=4) largest first
    top = np.take_along_axis(weights, order, axis=1).astype(np.float64)
    used = top > 0
    if not used[:, 0].all():
        raise ValueError("every vertex needs a positive skinning weight")
    top = np.where(used, top, 0.0)
    joints = np.zeros((V, JOINT_INFLUENCES), dtype=np.uint16)
    kept = np.zeros((V, JOINT_INFLUENCES), dtype=np.float64)
    joints[:, :order.shape[1]] = np.where(used, order, 0)
    kept[:, :order.shape[1]] = top / top.sum(axis=1, keepdims=True)
    return joints, kept.astype(np.float32)


def head_skin(model: MorphableModel, params: dict[str, Tensor],
              rest_verts: Callable[[], np.ndarray]) -> HeadSkin | None:
    """The skin of one face, or None for a model without joints.

    Args:
        model: the face model.
        params: {group: (1, K)} fitted parameters of one face (model groups only).
        rest_verts: gives the (V, 3) rest mesh at the default morph weights (``HeadMorphs.morphed`` of rest params);
            called for a model with joints only (ICT's 53 targets: 1 ms, 10 ms on a busy machine, for nothing).
    """
    if not isinstance(model, FlameModel):
        return None
    rest = model.joint_regressor.double().cpu().numpy() @ rest_verts()  # (J, 3)
    joints, weights = skin_weights(model.skinning_weights.double().cpu().numpy())
    return HeadSkin(names=JOINT_NAMES, parents=model.parents, rest=rest,
                    rotations=axis_angle_quaternions(model.joint_axis_angles(**params)[0]), joints=joints,
                    weights=weights)


def add_skin(gltf: pygltflib.GLTF2, accessor: Accessor, skin: HeadSkin, source: np.ndarray, head_node: int) -> None:
    """Add ``skin`` to the head document ``gltf`` (module docstring): the pose node (taking the head node's
    rotation) in the scene, the joint nodes under it, the skin on node ``head_node`` and ``JOINTS_0`` /
    ``WEIGHTS_0`` on its primitive.

    Args:
        gltf: the document, with its head node ``head_node`` (mesh, rotation) in scene 0 and no other node.
        accessor: ``GlbBuilder.accessor`` of the document's builder.
        skin: the face's skin.
        source: (N,) model vertex of each glTF vertex (``VertexLayout.source``).
        head_node: index of the head node.
    """
    head = gltf.nodes[head_node]
    pose_node = len(gltf.nodes)
    first_joint = pose_node + 1
    gltf.nodes.append(pygltflib.Node(name=f"{head.name}_pose", rotation=head.rotation, children=[first_joint]))
    head.rotation = None
    for j, (name, parent) in enumerate(zip(skin.names, skin.parents)):
        offset = skin.rest[j] - (skin.rest[parent] if parent >= 0 else 0.0)
        children = [first_joint + c for c, p in enumerate(skin.parents) if p == j]
        gltf.nodes.append(pygltflib.Node(name=name, translation=offset.tolist(), rotation=skin.rotations[j].tolist(),
                                         children=children or None))
    J = len(skin.names)
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (J, 1, 1))
    inverse_bind[:, :3, 3] = -skin.rest
    inverse_bind = inverse_bind.transpose(0, 2, 1).reshape(J, 16)  # glTF matrices are column-major
    gltf.skins.append(pygltflib.Skin(name=f"{head.name}_skin", skeleton=pose_node,
                                     joints=list(range(first_joint, first_joint + J)),
                                     inverseBindMatrices=accessor(np.ascontiguousarray(inverse_bind), pygltflib.MAT4)))
    head.skin = len(gltf.skins) - 1
    attributes = gltf.meshes[head.mesh].primitives[0].attributes
    attributes.JOINTS_0 = accessor(skin.joints[source], pygltflib.VEC4, pygltflib.ARRAY_BUFFER)
    attributes.WEIGHTS_0 = accessor(skin.weights[source], pygltflib.VEC4, pygltflib.ARRAY_BUFFER)
    gltf.scenes[0].nodes.append(pose_node)
