"""Differentiable rendering: cameras, rotations, SH lighting, rasterizer backends and the mesh renderer."""

from f2p.render.antialias import antialias, face_neighbours
from f2p.render.cameras import Camera, OrthographicCamera, PinholeCamera, default_camera, default_focal_px
from f2p.render.interpolate import interpolate_vertex_attributes
from f2p.render.lighting import CAMERA_TO_LIGHT, NUM_SH, default_sh, sh_basis, sh_shading, sh_shading_indexed
from f2p.render.normals import face_normals, vertex_normals
from f2p.render.rasterize import BACKENDS, Fragments, Rasterizer, TorchRasterizer, get_rasterizer
from f2p.render.renderer import MeshRenderer, RenderOutput
from f2p.render.rotations import (
    axis_angle_to_euler,
    axis_angle_to_matrix,
    euler_to_axis_angle,
    euler_to_matrix,
    head_pose_extrinsics,
    matrix_to_axis_angle,
    matrix_to_euler,
)
from f2p.render.texture import UVTexture

__all__ = [
    "BACKENDS", "CAMERA_TO_LIGHT", "NUM_SH", "Camera", "Fragments", "MeshRenderer", "OrthographicCamera",
    "PinholeCamera", "Rasterizer", "RenderOutput", "TorchRasterizer", "UVTexture", "antialias",
    "axis_angle_to_euler", "axis_angle_to_matrix", "default_camera", "default_focal_px", "default_sh",
    "euler_to_axis_angle", "euler_to_matrix", "face_neighbours", "face_normals", "get_rasterizer",
    "head_pose_extrinsics", "interpolate_vertex_attributes", "matrix_to_axis_angle", "matrix_to_euler", "sh_basis",
    "sh_shading", "sh_shading_indexed", "vertex_normals",
]
