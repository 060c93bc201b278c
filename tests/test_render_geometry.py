"""Rotations, cameras, normals and SH lighting: values, conventions and float64 gradchecks."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from f2p import conventions as C
from f2p.render.cameras import OrthographicCamera, PinholeCamera, default_camera, default_focal_px
from f2p.render.lighting import CAMERA_TO_LIGHT, default_sh, sh_basis, sh_shading
from f2p.render.normals import vertex_normals
from f2p.render.rotations import (
    axis_angle_to_euler,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_to_axis_angle,
    euler_to_matrix,
    head_pose_extrinsics,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_multiply,
    quaternion_to_axis_angle,
)

f64 = torch.float64


def _pinhole(batch: int, dtype=f64, R=None, t=None, size=(48, 64)) -> PinholeCamera:
    full = lambda v: torch.full((batch,), v, dtype=dtype)  # noqa: E731
    R = torch.eye(3, dtype=dtype).expand(batch, 3, 3) if R is None else R
    t = torch.zeros(batch, 3, dtype=dtype) if t is None else t
    return PinholeCamera(fx=full(120.0), fy=full(110.0), cx=full(30.5), cy=full(20.25), R=R, t=t, image_size=size)


# --- rotations ---------------------------------------------------------------------------------

def test_axis_angle_matrix_round_trip_and_orthonormality():
    aa = torch.randn(500, 3, dtype=f64) * 1.2
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=f64).expand(500, 3, 3), atol=1e-12)
    assert torch.allclose(torch.det(R), torch.ones(500, dtype=f64))
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(R)), R, atol=1e-12)
    small = torch.randn(5, 3, dtype=f64) * 1e-5
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(small)), small, atol=1e-15)
    half_turns = euler_to_matrix(torch.tensor([[180.0, 0, 0], [0, 180, 0], [0, 0, 180]], dtype=f64))
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(half_turns)), half_turns, atol=1e-12)


def test_quaternions_compose_rotations_as_matrices_do():
    a, b = torch.randn(200, 3, dtype=f64) * 1.2, torch.randn(200, 3, dtype=f64) * 1.2
    b[:5] *= 1e-7  # the small-angle series
    qa, qb = axis_angle_to_quaternion(a), axis_angle_to_quaternion(b)
    q = matrix_to_quaternion(axis_angle_to_matrix(b))
    assert torch.allclose(torch.where(qb[:, :1] < 0, -qb, qb), q, atol=1e-12)
    composed = axis_angle_to_matrix(quaternion_to_axis_angle(quaternion_multiply(qa, qb)))
    assert torch.allclose(composed, axis_angle_to_matrix(a) @ axis_angle_to_matrix(b), atol=1e-12)


def test_axis_angle_matches_a_rotation_about_a_known_axis():
    R = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=f64))[0]
    assert torch.allclose(R @ torch.tensor([1.0, 0, 0], dtype=f64), torch.tensor([0.0, 1, 0], dtype=f64), atol=1e-12)


def test_euler_order_and_round_trip():
    ypr = torch.tensor([[20.0, -10.0, 5.0]], dtype=f64)
    y, p, r = (math.radians(a) for a in (20.0, -10.0, 5.0))
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]], dtype=f64)
    Ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]], dtype=f64)
    Rz = torch.tensor([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]], dtype=f64)
    assert torch.allclose(euler_to_matrix(ypr)[0], Rz @ Ry @ Rx, atol=1e-12)
    angles = (torch.rand(200, 3, dtype=f64) * 2 - 1) * torch.tensor([85.0, 175.0, 175.0], dtype=f64)
    assert torch.allclose(matrix_to_euler(euler_to_matrix(angles)), angles, atol=1e-9)
    assert torch.allclose(axis_angle_to_euler(euler_to_axis_angle(angles)), angles, atol=1e-9)


def test_rotation_gradchecks():
    aa = torch.randn(4, 3, dtype=f64, requires_grad=True)
    assert gradcheck(axis_angle_to_matrix, (aa,))
    zero = torch.zeros(2, 3, dtype=f64, requires_grad=True)  # the Taylor branch
    assert gradcheck(axis_angle_to_matrix, (zero,))
    ypr = (torch.rand(4, 3, dtype=f64) * 60 - 30).requires_grad_()
    assert gradcheck(euler_to_matrix, (ypr,))
    R = axis_angle_to_matrix(torch.randn(4, 3, dtype=f64) * 0.8).requires_grad_()
    assert gradcheck(matrix_to_axis_angle, (R,))
    assert gradcheck(matrix_to_euler, (euler_to_matrix(ypr.detach()).requires_grad_(),))


def test_head_pose_extrinsics_composes_the_model_flip():
    pose = torch.randn(3, 3, dtype=f64)
    translation = torch.randn(3, 3, dtype=f64)
    R, t = head_pose_extrinsics(pose, translation)
    assert torch.allclose(R, C.MODEL_TO_OPENCV.to(f64) @ axis_angle_to_matrix(pose))
    assert torch.equal(t, translation)
    with pytest.raises(ValueError, match="translation"):
        head_pose_extrinsics(pose, translation[:, :2])


def _project_after_head_pose(point_model, yaw_pitch_roll):
    cam = default_camera(1, (224, 224), dtype=f64)
    R, t = head_pose_extrinsics(euler_to_axis_angle(torch.tensor([yaw_pitch_roll], dtype=f64)), cam.t)
    posed = PinholeCamera(cam.fx, cam.fy, cam.cx, cam.cy, R, t, cam.image_size)
    return posed.project(torch.tensor([[point_model]], dtype=f64))[0, 0], cam


def test_positive_yaw_moves_the_nose_to_the_image_right():
    nose = [0.0, 0.0, 0.1]
    uv, cam = _project_after_head_pose(nose, [20.0, 0.0, 0.0])
    assert uv[0] > cam.cx[0] + 10
    uv, _ = _project_after_head_pose(nose, [-20.0, 0.0, 0.0])
    assert uv[0] < cam.cx[0] - 10


def test_positive_pitch_moves_the_nose_down_and_positive_roll_raises_the_left_eye():
    uv, cam = _project_after_head_pose([0.0, 0.0, 0.1], [0.0, 20.0, 0.0])
    assert uv[1] > cam.cy[0] + 10  # image y points down
    left_eye = [0.04, 0.0, 0.0]  # model +x is the subject's left, the image right
    uv_level, _ = _project_after_head_pose(left_eye, [0.0, 0.0, 0.0])
    uv_rolled, _ = _project_after_head_pose(left_eye, [0.0, 0.0, 15.0])
    assert uv_level[0] > cam.cx[0] and uv_rolled[1] < uv_level[1] - 5


# --- cameras -----------------------------------------------------------------------------------

def test_point_on_the_optical_axis_lands_on_the_principal_point():
    cam = _pinhole(1)
    uv = cam.project(torch.tensor([[[0.0, 0.0, 2.0]]], dtype=f64))[0, 0]
    assert torch.allclose(uv, torch.stack([cam.cx[0], cam.cy[0]]))
    ortho = OrthographicCamera(scale=torch.tensor([500.0], dtype=f64), cx=cam.cx, cy=cam.cy, R=cam.R, t=cam.t,
                               image_size=cam.image_size)
    assert torch.allclose(ortho.project(torch.tensor([[[0.0, 0.0, 2.0]]], dtype=f64))[0, 0], uv)


def test_pinhole_projection_formula_and_screen_depth():
    R = axis_angle_to_matrix(torch.tensor([[0.1, -0.2, 0.3]], dtype=f64))
    t = torch.tensor([[0.01, -0.02, 0.8]], dtype=f64)
    cam = _pinhole(1, R=R, t=t)
    X = torch.tensor([[[0.03, 0.05, -0.02]]], dtype=f64)
    Xc = (R[0] @ X[0, 0]) + t[0]
    screen = cam.to_screen(X)[0, 0]
    expected = torch.stack([120.0 * Xc[0] / Xc[2] + 30.5, 110.0 * Xc[1] / Xc[2] + 20.25, Xc[2]])
    assert torch.allclose(screen, expected)


def test_projection_gradchecks():
    R = axis_angle_to_matrix(torch.randn(2, 3, dtype=f64) * 0.3)
    t = torch.tensor([[0.0, 0.0, 1.0], [0.05, -0.02, 0.7]], dtype=f64)
    points = (torch.randn(2, 5, 3, dtype=f64) * 0.05).requires_grad_()
    focal = torch.tensor([300.0, 500.0], dtype=f64, requires_grad=True)
    trans = t.clone().requires_grad_()

    def pinhole(points, focal, trans):
        cam = PinholeCamera(focal, focal * 1.1, focal * 0 + 20.0, focal * 0 + 30.0, R, trans, (64, 64))
        return cam.to_screen(points)

    def ortho(points, focal, trans):
        cam = OrthographicCamera(focal, focal * 0 + 20.0, focal * 0 + 30.0, R, trans, (64, 64))
        return cam.to_screen(points)

    assert gradcheck(pinhole, (points, focal, trans))
    assert gradcheck(ortho, (points, focal, trans))


def test_weak_perspective_matches_pinhole_at_the_reference_depth():
    cam = _pinhole(1, t=torch.tensor([[0.0, 0.0, 2.0]], dtype=f64))
    weak = OrthographicCamera.weak_perspective(cam.fx, torch.tensor([2.0], dtype=f64), cam.cx, cam.cy, cam.R, cam.t,
                                               cam.image_size)
    point = torch.tensor([[[0.1, -0.05, 0.0]]], dtype=f64)
    assert torch.allclose(weak.project(point)[..., 0], cam.project(point)[..., 0])


def test_default_camera_sees_the_procedural_nose_tip_near_the_image_centre(procedural_model):
    mesh = procedural_model(**procedural_model.zero_params(1))
    cam = default_camera(1, (224, 224))
    assert cam.fx[0] == pytest.approx(1065.6, abs=0.1)  # 12 degrees at 224 px
    assert default_focal_px((112, 300)) == pytest.approx(1427.2, abs=0.1)  # the width sets the focal
    assert default_focal_px((300, 112)) == pytest.approx(532.8, abs=0.1)
    nose = cam.project(mesh.landmarks[:, C.NOSE_TIP : C.NOSE_TIP + 1])[0, 0]
    assert torch.allclose(nose, torch.tensor([111.5, 111.5]), atol=224 * 0.03)


def test_camera_validation_errors():
    with pytest.raises(ValueError, match="fx"):
        PinholeCamera(torch.ones(2), torch.ones(1), torch.ones(1), torch.ones(1), torch.eye(3)[None], torch.zeros(1, 3),
                      (8, 8))
    with pytest.raises(ValueError, match="image_size"):
        default_camera(1, (0, 8))
    with pytest.raises(ValueError, match="points"):
        default_camera(2, (8, 8)).project(torch.zeros(1, 4, 3))


def test_points_on_the_camera_plane_project_to_finite_values_with_finite_gradients():
    cam = _pinhole(1)
    points = torch.tensor([[[0.1, 0.1, 0.0], [0.1, 0.1, 1.0]]], dtype=f64, requires_grad=True)
    screen = cam.to_screen(points)
    screen.sum().backward()
    assert torch.isfinite(screen).all() and torch.isfinite(points.grad).all()


# --- normals -----------------------------------------------------------------------------------

def test_vertex_normals_are_unit_and_point_out_of_the_procedural_face(procedural_model):
    verts = procedural_model(**procedural_model.zero_params(1)).verts
    normals = vertex_normals(verts, procedural_model.faces)
    assert torch.allclose(normals.norm(dim=-1), torch.ones(1, verts.shape[1]), atol=1e-5)
    assert normals[0, :, 2].mean() > 0.7  # the model's z points towards the viewer
    outward = (normals[0, :, :2] * verts[0, :, :2]).sum(-1)  # a dome: normals lean away from the centre
    assert (outward > -1e-4).float().mean() > 0.95


def test_vertex_normals_are_area_weighted_and_differentiable():
    # Two triangles sharing vertex 0: a big one in the z = 0 plane and a small one in the x = 0 plane.
    verts = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, -1], [0, 1, 0]]], dtype=f64)
    faces = torch.tensor([[0, 1, 2], [0, 3, 4]])
    n0 = vertex_normals(verts, faces)[0, 0]
    # doubled areas: 4 along +z and 1 along +x
    expected = torch.nn.functional.normalize(torch.tensor([1.0, 0, 4.0], dtype=f64), dim=0)
    assert torch.allclose(n0, expected)
    wobbly = (verts + 0.1 * torch.randn_like(verts)).requires_grad_()
    assert gradcheck(lambda v: vertex_normals(v, faces), (wobbly,))


def test_vertex_normals_ignore_faces_with_invalid_corners():
    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [float("nan"), 5, 0]]], requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    normals = vertex_normals(verts, faces, valid=torch.isfinite(verts).all(-1))
    assert torch.allclose(normals[0, :3], torch.tensor([0.0, 0, 1]).expand(3, 3))
    normals[0, :3].sum().backward()
    assert torch.isfinite(verts.grad).all()


# --- lighting ----------------------------------------------------------------------------------

def test_sh_constants_reproduce_known_irradiance_values():
    n = torch.nn.functional.normalize(torch.randn(20000, 3, dtype=f64), dim=-1)[None]
    uniform = torch.zeros(1, 9, 3, dtype=f64)
    uniform[:, 0] = math.sqrt(4 * math.pi)  # radiance 1 from every direction
    assert torch.allclose(sh_shading(n, uniform), torch.ones_like(n))
    # A unit directional light along d has coefficients Y_k(d); the clamped-cosine truncated at l = 2
    # gives (1 + 2 + 5/4) / (4 pi) facing the light and (1 - 2 + 5/4) / (4 pi) facing away.
    d = torch.tensor([0.0, 0.6, 0.8], dtype=f64)
    band = torch.tensor([1, 2 / 3, 2 / 3, 2 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 1 / 4], dtype=f64)
    light = (sh_basis(d) / band)[None, :, None].expand(1, 9, 3)
    shading = sh_shading(torch.stack([d, -d])[None], light)[0, :, 0]
    assert torch.allclose(shading, torch.tensor([4.25, 0.25], dtype=f64) / (4 * math.pi))


def test_default_sh_is_white_and_frontal_in_the_light_frame():
    normals = torch.tensor([[[0.0, 0, 1], [1.0, 0, 0], [0, 0, -1]]])
    shading = sh_shading(normals, default_sh(1))
    assert torch.allclose(shading[0, :, 0], torch.tensor([1.0, 0.7, 0.4]))
    assert torch.allclose(shading[..., 0], shading[..., 2])
    towards_camera = CAMERA_TO_LIGHT @ torch.tensor([0.0, 0.0, -1.0])  # OpenCV -z faces the camera
    assert torch.equal(towards_camera, torch.tensor([0.0, 0.0, 1.0]))


def test_sh_shading_gradcheck_and_shapes():
    normals = torch.nn.functional.normalize(torch.randn(2, 4, 5, 3, dtype=f64), dim=-1).requires_grad_()
    coeffs = torch.randn(2, 9, 3, dtype=f64, requires_grad=True)
    assert sh_shading(normals, coeffs).shape == (2, 4, 5, 3)
    assert gradcheck(sh_shading, (normals, coeffs))
    with pytest.raises(ValueError, match="coeffs"):
        sh_shading(normals, coeffs[:, :4])
