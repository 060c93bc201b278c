"""FLAME's joints as head.glb's glTF skin: skinned from the file, the head reproduces FLAME without correctives.

Khronos' validator checks the skinned file in tests/test_export_gltf.py (its ``flame`` case)."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest
import torch

from f2p.export.gltf import head_gltf
from f2p.export.gltf_skin import JOINT_INFLUENCES, rest_params, skin_weights
from f2p.morphable.flame import JOINT_NAMES, FlameModel
from f2p.render.rotations import axis_angle_to_matrix, matrix_to_quaternion
from gltf_reading import read_glb
from test_export_gltf import MAX_ERROR_M, POSE, fitted_params, flame_model, rotation_matrix


def four_joint_flame() -> FlameModel:
    """The FLAME-like fixture with each vertex's smallest of its 5 weights set to 0 (FLAME's own vertices have few
    joints each; a glTF skin holds four)."""
    flame = flame_model()
    weights = flame.skinning_weights.clone()
    weights[torch.arange(len(weights)), weights.argmin(dim=1)] = 0.0
    flame.skinning_weights.copy_(weights / weights.sum(dim=1, keepdim=True))
    return flame


def local_matrix(node: pygltflib.Node) -> np.ndarray:
    """(4, 4) a node's T * R (f2p writes no scale or matrix)."""
    matrix = np.eye(4)
    if node.rotation is not None:
        matrix[:3, :3] = rotation_matrix(node.rotation)
    if node.translation is not None:
        matrix[:3, 3] = node.translation
    return matrix


def world_matrices(gltf: pygltflib.GLTF2) -> dict[int, np.ndarray]:
    """{node: (4, 4) world transform} of every node under scene 0."""
    world = {}

    def visit(index: int, parent: np.ndarray) -> None:
        world[index] = parent @ local_matrix(gltf.nodes[index])
        for child in gltf.nodes[index].children or []:
            visit(child, world[index])

    for root in gltf.scenes[gltf.scene].nodes:
        visit(root, np.eye(4))
    return world


def skinned_vertices(data: bytes) -> np.ndarray:
    """(N, 3) world vertices of the skinned head as the glTF spec defines them, read from the file alone: morph
    targets at their default weights, then ``sum_k w_k * world(joint_k) @ inverseBind_k`` (the mesh node's own
    transform ignored)."""
    glb = read_glb(data)
    gltf = glb["gltf"]
    head = gltf.nodes[0]
    (skin,) = gltf.skins
    assert head.skin == 0 and head.rotation is None and head.translation is None
    morphed = glb["base"] + np.einsum("k,kvc->vc", glb["weights"], glb["targets"])  # (N, 3)
    attributes = gltf.meshes[0].primitives[0].attributes
    assert gltf.accessors[attributes.JOINTS_0].componentType == pygltflib.UNSIGNED_SHORT
    assert gltf.accessors[attributes.WEIGHTS_0].componentType == pygltflib.FLOAT
    joints = glb["array"](attributes.JOINTS_0).astype(np.int64)  # (N, 4)
    weights = glb["array"](attributes.WEIGHTS_0)  # (N, 4)
    inverse_bind = glb["array"](skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    world = world_matrices(gltf)
    skinning = np.stack([world[node] @ inverse_bind[j] for j, node in enumerate(skin.joints)])  # (J, 4, 4)
    per_vertex = np.einsum("nk,nkab->nab", weights, skinning[joints])  # (N, 4, 4)
    return np.einsum("nab,nb->na", per_vertex[:, :3, :3], morphed) + per_vertex[:, :3, 3]


def flame_verts(flame: FlameModel, params: dict[str, torch.Tensor], pose_correctives: bool) -> np.ndarray:
    """(V, 3) FLAME's mesh at ``params`` rotated by the head pose ``POSE``, float64."""
    with torch.no_grad():
        verts = flame(pose_correctives=pose_correctives, **{k: v[None] for k, v in params.items()}).verts[0]
    return verts.double().numpy() @ axis_angle_to_matrix(POSE).double().numpy().T


def test_skinned_head_from_the_file_is_flame_without_correctives_at_the_fitted_pose():
    flame = four_joint_flame()
    params = fitted_params(flame, seed=3)
    data = head_gltf(flame, params, pose=POSE)
    skinned = skinned_vertices(data)
    expected = flame_verts(flame, params, pose_correctives=False)
    assert np.abs(skinned - expected).max() < MAX_ERROR_M
    gltf = read_glb(data)["gltf"]
    assert [gltf.nodes[j].name for j in gltf.skins[0].joints] == list(JOINT_NAMES)
    # The pose correctives are left out: FLAME's own mesh differs (this fixture's correctives are random, 1 cm scale).
    full = flame_verts(flame, params, pose_correctives=True)
    error_mm = 1000 * np.linalg.norm(skinned - full, axis=1)
    print(f"skinned vs FLAME with correctives: max {error_mm.max():.2f} mm, mean {error_mm.mean():.2f} mm")
    assert error_mm.max() > 1000 * MAX_ERROR_M


def test_joint_rotations_animate_the_jaw_like_flame():
    """Setting the jaw node's rotation in the file to another jaw pose gives FLAME's mesh at that pose."""
    flame = four_joint_flame()
    params = fitted_params(flame, seed=4)
    data = head_gltf(flame, params, pose=POSE)
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    jaw = next(node for node in gltf.nodes if node.name == "jaw")
    opened = {**params, "jaw_pose": torch.tensor([0.5, 0.1, -0.05])}
    w, x, y, z = matrix_to_quaternion(axis_angle_to_matrix(opened["jaw_pose"].double())).tolist()
    jaw.rotation = [x, y, z, w]
    assert np.abs(skinned_vertices(b"".join(gltf.save_to_bytes())) - flame_verts(flame, opened, False)).max() \
        < MAX_ERROR_M


def test_skin_weights_keep_the_four_largest_positive_weights_normalised():
    weights = np.array([[0.05, 0.3, 0.2, 0.25, 0.2], [0.0, 0.0, 0.7, 0.0, 0.3]])
    joints, kept = skin_weights(weights)
    assert joints.dtype == np.uint16 and kept.dtype == np.float32 and kept.shape == (2, JOINT_INFLUENCES)
    assert joints[0].tolist() == [1, 3, 2, 4]
    np.testing.assert_allclose(kept[0], np.array([0.3, 0.25, 0.2, 0.2]) / 0.95, rtol=1e-6)
    assert joints[1].tolist() == [2, 4, 0, 0] and kept[1].tolist() == pytest.approx([0.7, 0.3, 0.0, 0.0])
    np.testing.assert_allclose(kept.sum(axis=1), 1.0, atol=1e-7)
    with pytest.raises(ValueError, match="positive skinning weight"):
        skin_weights(np.zeros((1, 5)))


def test_models_without_joints_write_no_skin(procedural_model):
    params = fitted_params(procedural_model, seed=1)
    assert rest_params(procedural_model, params) is params
    gltf = read_glb(head_gltf(procedural_model, params, pose=POSE))["gltf"]
    assert len(gltf.nodes) == 1 and not gltf.skins and gltf.nodes[0].rotation is not None
    attributes = gltf.meshes[0].primitives[0].attributes
    assert attributes.JOINTS_0 is None and attributes.WEIGHTS_0 is None



def test_a_skinned_clip_turns_the_skeleton_root_the_mesh_node_stays_still():
    from f2p.export.gltf import HEAD_NODE, morph_weights
    from f2p.export.gltf_animation import animated_head_gltf

    flame = four_joint_flame()
    params = fitted_params(flame)
    K = len(morph_weights(flame, params))
    turn = np.array([[0.0, 0.0, 0.0, 1.0], [0.0, np.sin(0.2), 0.0, np.cos(0.2)]])
    gltf = pygltflib.GLTF2.load_from_bytes(animated_head_gltf(flame, params, np.array([0.0, 0.1]), np.zeros((2, K)),
                                                              turn))
    (channel,) = [c for c in gltf.animations[0].channels if c.target.path == "rotation"]
    skin = gltf.skins[gltf.nodes[HEAD_NODE].skin]
    assert channel.target.node == skin.skeleton != HEAD_NODE  # glTF ignores a skinned mesh node's own transform
    assert gltf.nodes[HEAD_NODE].rotation is None
