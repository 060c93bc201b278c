"""Differentiable rendering: cameras, rotations, SH lighting, rasterizer backends and the mesh renderer."""

from f2p.render.cameras import Camera, OrthographicCamera, PinholeCamera, default_camera, default_focal_px
from f2p.render.lighting import CAMERA_TO_LIGHT, NUM_SH, default_sh, sh_basis, sh_shading
from f2p.render.normals import face_normals, vertex_normals
from f2p.render.rotations import (
    axis_angle_to_euler,
    axis_angle_to_matrix,
    euler_to_axis_angle,
    euler_to_matrix,
    head_pose_extrinsics,
    matrix_to_axis_angle,
    matrix_to_euler,
)

__all__ = [
    "CAMERA_TO_LIGHT", "NUM_SH", "Camera", "OrthographicCamera", "PinholeCamera", "axis_angle_to_euler",
    "axis_angle_to_matrix", "default_camera", "default_focal_px", "default_sh", "euler_to_axis_angle",
    "euler_to_matrix", "face_normals", "head_pose_extrinsics", "matrix_to_axis_angle", "matrix_to_euler", "sh_basis",
    "sh_shading", "vertex_normals",
]
