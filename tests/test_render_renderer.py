"""MeshRenderer: conventions, buffers, textures, landmarks, soft silhouettes, gradients, degenerate input."""

import pytest
import torch

from f2p import conventions as C
from f2p.render import (
    MeshRenderer,
    OrthographicCamera,
    PinholeCamera,
    TorchRasterizer,
    UVTexture,
    antialias,
    default_camera,
    default_focal_px,
    default_sh,
)
from f2p.render.antialias import face_neighbours
from f2p.render.rotations import euler_to_axis_angle, head_pose_extrinsics

SIZE = (64, 64)
DISTANCE = 1.5  # metres: the procedural face (15 x 20 cm) fills about half of the frame


def _camera(batch: int = 1, yaw_pitch_roll=(0.0, 0.0, 0.0), dtype=torch.float32, size=SIZE) -> PinholeCamera:
    base = default_camera(batch, size, distance=DISTANCE, dtype=dtype)
    pose = euler_to_axis_angle(torch.tensor([yaw_pitch_roll], dtype=dtype).expand(batch, 3))
    R, t = head_pose_extrinsics(pose, base.t)
    return PinholeCamera(base.fx, base.fy, base.cx, base.cy, R, t, size)


@pytest.fixture(scope="module")
def face(procedural_model):
    mesh = procedural_model(**procedural_model.zero_params(1))
    return mesh, procedural_model.faces


def test_channel_zero_is_red_and_the_background_fills_empty_pixels(face):
    mesh, faces = face
    red = torch.tensor([1.0, 0.0, 0.0]).expand_as(mesh.verts)
    out = MeshRenderer(background=(0.0, 0.0, 1.0))(mesh.verts, faces, _camera(), default_sh(1), colors=red)
    covered = out.mask[0, 0] > 0
    assert 0.2 < covered.float().mean() < 0.8
    assert (out.image[0, 0][covered] > 0.5).all()
    assert (out.image[0, 1:][:, covered] == 0).all()
    assert (out.image[0, :, ~covered] == torch.tensor([[0.0], [0.0], [1.0]])).all()


def test_buffers_have_documented_shapes_and_values(face):
    mesh, faces = face
    out = MeshRenderer()(mesh.verts, faces, _camera(), default_sh(1), colors=mesh.albedo, landmarks=mesh.landmarks)
    H, W = SIZE
    assert out.image.shape == (1, 3, H, W) and out.mask.shape == (1, 1, H, W) and out.depth.shape == (1, 1, H, W)
    assert out.normals.shape == (1, 3, H, W) and out.albedo.shape == (1, 3, H, W)
    assert out.pix_to_face.shape == (1, H, W) and out.bary.shape == (1, H, W, 3)
    assert out.landmarks2d.shape == (1, 68, 2) and out.landmarks_visible.dtype == torch.bool
    covered = out.mask[0, 0] > 0
    depth = out.depth[0, 0]
    assert ((depth[covered] > DISTANCE - 0.1) & (depth[covered] < DISTANCE + 0.01)).all()
    assert (depth[~covered] == 0).all() and (out.normals[0][:, ~covered] == 0).all()
    normals = out.normals[0][:, covered]
    assert torch.allclose(normals.norm(dim=0), torch.ones(int(covered.sum())), atol=1e-5)
    assert (normals[2] < 0).float().mean() > 0.99  # OpenCV frame: a frontal face looks back along -z
    assert torch.allclose(out.albedo[0][:, covered].mean(1), mesh.albedo[0].mean(0), atol=0.05)
    assert out.landmarks_visible.all()  # frontal: nothing hides a landmark


def test_positive_yaw_turns_the_rendered_nose_to_the_image_right(face):
    mesh, faces = face
    renderer = MeshRenderer()

    def nearest_column(yaw: float) -> int:
        out = renderer(mesh.verts, faces, _camera(yaw_pitch_roll=(yaw, 0.0, 0.0)), default_sh(1))
        depth = torch.where(out.mask[0, 0] > 0, out.depth[0, 0], float("inf"))
        return int(depth.argmin()) % SIZE[1]

    assert nearest_column(30.0) > nearest_column(0.0) + 2 > nearest_column(-30.0) + 4


def test_landmarks_turned_away_are_hidden(face):
    mesh, faces = face
    out = MeshRenderer()(mesh.verts, faces, _camera(yaw_pitch_roll=(75.0, 0.0, 0.0)), default_sh(1),
                         landmarks=mesh.landmarks)
    visible = out.landmarks_visible[0]
    assert visible[C.NOSE_TIP] and visible[list(C.JAW[:3])].all()  # the subject's right faces the camera
    assert not visible[list(C.JAW[-3:])].any()  # the left jaw is behind the head


def test_uv_texture_keeps_left_right_and_up(face, procedural_model):
    mesh, faces = face
    quadrants = torch.zeros(1, 3, 8, 8)
    quadrants[0, 0, :4, :4] = 1.0  # top-left red
    quadrants[0, 1, :4, 4:] = 1.0  # top-right green
    quadrants[0, 2, 4:, :4] = 1.0  # bottom-left blue
    texture = UVTexture(quadrants, procedural_model.uv, procedural_model.faces_uv)
    out = MeshRenderer()(mesh.verts, faces, _camera(), default_sh(1), texture=texture)
    H, W = SIZE
    albedo = out.albedo[0]
    # uv (0, 0) is the texture's bottom-left and the procedural uv follows model x (image right) and y (up).
    assert albedo[0, H // 2 - 8, W // 2 - 6] == 1 and albedo[1:, H // 2 - 8, W // 2 - 6].sum() == 0
    assert albedo[1, H // 2 - 8, W // 2 + 6] == 1 and albedo[[0, 2], H // 2 - 8, W // 2 + 6].sum() == 0
    assert albedo[2, H // 2 + 8, W // 2 - 6] == 1


def test_orthographic_camera_renders_the_same_silhouette_as_a_distant_pinhole(face):
    mesh, faces = face
    far = default_camera(1, SIZE, focal_px=default_focal_px(SIZE) * 20.0 / DISTANCE, distance=20.0)
    pinhole = PinholeCamera(far.fx, far.fy, far.cx, far.cy, far.R, far.t, SIZE)
    ortho = OrthographicCamera(far.fx / 20.0, far.cx, far.cy, far.R, far.t, SIZE)
    renderer = MeshRenderer()
    a = renderer(mesh.verts, faces, pinhole, default_sh(1)).mask
    b = renderer(mesh.verts, faces, ortho, default_sh(1)).mask
    assert a.sum() > 50 and (a != b).float().sum() <= 0.05 * a.sum()


def test_image_gradient_matches_finite_differences_on_interior_pixels(face):
    mesh, faces = face
    camera = _camera(yaw_pitch_roll=(20.0, 10.0, 0.0), dtype=torch.float64)
    verts = mesh.verts.double().detach()
    colors = mesh.albedo.double()
    sh = default_sh(1, dtype=torch.float64)
    sh[:, 3] = 0.4  # a light from the side makes shading depend on the normals' x
    renderer = MeshRenderer(backend="torch")
    nose = int(((verts[0, :, :2]) ** 2).sum(-1).argmin())  # a vertex in the middle of the face
    weights = torch.rand(1, 3, *SIZE, dtype=torch.float64)

    def render(v):
        return renderer(v, faces, camera, sh, colors=colors)

    step = 1e-6
    for axis in range(3):
        offset = torch.zeros_like(verts)
        offset[0, nose, axis] = step
        plus, minus = render(verts + offset), render(verts - offset)
        interior = (plus.pix_to_face == minus.pix_to_face)[:, None] & (plus.mask > 0)  # no pixel changes face
        numeric = (((plus.image - minus.image) * weights * interior).sum() / (2 * step)).item()
        v = verts.clone().requires_grad_()
        (render(v).image * weights * interior).sum().backward()
        analytic = v.grad[0, nose, axis].item()
        assert abs(numeric) > 1e-3
        assert analytic == pytest.approx(numeric, rel=1e-4)


def test_soft_mode_changes_only_silhouette_pixels_and_gives_them_gradients(face):
    mesh, faces = face
    verts = mesh.verts.clone().requires_grad_()
    hard = MeshRenderer()(verts, faces, _camera(), default_sh(1), colors=mesh.albedo)
    soft = MeshRenderer(soft=True)(verts, faces, _camera(), default_sh(1), colors=mesh.albedo)
    edge = torch.nn.functional.max_pool2d(hard.mask, 3, 1, 1) != -torch.nn.functional.max_pool2d(-hard.mask, 3, 1, 1)
    assert torch.equal(soft.image.masked_select(~edge), hard.image.masked_select(~edge))
    partial = (soft.mask > 0) & (soft.mask < 1)
    assert partial.sum() > 20 and not (partial & ~edge).any()
    assert not hard.mask.requires_grad  # a hard mask is a step function of the vertices
    grad_soft = torch.autograd.grad(soft.mask.sum(), verts)[0]
    moved = grad_soft[0].norm(dim=-1) > 0
    rim = verts[0, :, 0].detach() ** 2 / 0.075**2 + verts[0, :, 1].detach() ** 2 / 0.1**2 > 0.8  # outline vertices
    assert moved.sum() > 20 and moved[rim].float().mean() > moved[~rim].float().mean()


def test_antialiased_coverage_approximates_triangle_area_and_its_gradient():
    H, W = 48, 48
    generator = torch.Generator().manual_seed(3)
    hard_errors, soft_errors = [], []
    for _ in range(6):
        corners = torch.rand(3, 2, generator=generator) * 36 + 6
        screen = torch.cat([corners, torch.ones(3, 1)], 1)[None].requires_grad_()
        faces = torch.tensor([[0, 1, 2]])
        fragments = TorchRasterizer()(screen, faces, (H, W), True)
        hard = fragments.mask[..., None].float()
        coverage = antialias(hard, fragments, screen, faces).sum()
        e1, e2 = screen[0, 1, :2] - screen[0, 0, :2], screen[0, 2, :2] - screen[0, 0, :2]
        area = 0.5 * (e1[0] * e2[1] - e1[1] * e2[0]).abs()
        if area < 30:
            continue
        hard_errors.append((hard.sum() - area).abs().item() / area.item())
        soft_errors.append((coverage - area).abs().item() / area.item())
        grad_coverage = torch.autograd.grad(coverage, screen)[0][0, :, :2]
        grad_area = torch.autograd.grad(area, screen)[0][0, :, :2]
        cosine = torch.nn.functional.cosine_similarity(grad_coverage.flatten(), grad_area.flatten(), dim=0)
        assert cosine > 0.95
        assert grad_coverage.norm() == pytest.approx(grad_area.norm().item(), rel=0.25)
    assert len(soft_errors) >= 3
    assert sum(soft_errors) < 0.5 * sum(hard_errors)


def test_face_neighbours_pair_faces_across_shared_edges():
    faces = torch.tensor([[0, 1, 2], [2, 1, 3], [3, 4, 2]])
    # Edge k joins corners k + 1 and k + 2: face 0's edge 0 is (1, 2), shared with face 1.
    expected = torch.tensor([[1, -1, -1], [-1, 2, 0], [-1, 1, -1]])
    assert torch.equal(face_neighbours(faces, 5), expected)


def test_degenerate_meshes_give_defined_renders(face):
    mesh, faces = face
    renderer = MeshRenderer(background=0.25)
    sh = default_sh(1)
    broken = mesh.verts.clone()
    broken[0, :10] = float("nan")
    broken[0, 10:20] = float("inf")
    broken = broken.requires_grad_()
    out = renderer(broken, faces, _camera(), sh, colors=mesh.albedo, landmarks=mesh.landmarks)
    assert torch.isfinite(out.image).all() and torch.isfinite(out.normals).all() and out.mask.sum() > 100
    out.image.sum().backward()
    assert torch.isfinite(broken.grad[0, 20:]).all() and (broken.grad[0, :20] == 0).all()

    behind = torch.tensor([0.0, 0.0, 2 * DISTANCE])  # the camera looks along model -z from z = DISTANCE
    outside = torch.tensor([1.0, 0.0, 0.0])  # far to the side: outside the image
    for shift in (behind, outside):
        verts = (mesh.verts + shift).requires_grad_()
        out = renderer(verts, faces, _camera(), sh, landmarks=mesh.landmarks + shift)
        assert not out.mask.any() and (out.image == 0.25).all() and not out.landmarks_visible.any()
        out.image.sum().backward()
        assert torch.isfinite(verts.grad).all()

    empty = renderer(torch.zeros(1, 0, 3), torch.zeros(0, 3, dtype=torch.long), _camera(), sh)
    assert not empty.mask.any() and (empty.image == 0.25).all()
    for soft in (False, True):
        zero_area = torch.zeros(1, 3, 3)  # a triangle collapsed to a point
        out = MeshRenderer(soft=soft)(zero_area, torch.tensor([[0, 1, 2]]), _camera(), sh)
        assert not out.mask.any() and torch.isfinite(out.image).all()


def test_renderer_rejects_inconsistent_inputs(face, procedural_model):
    mesh, faces = face
    renderer = MeshRenderer()
    with pytest.raises(ValueError, match="sh_coeffs"):
        renderer(mesh.verts, faces, _camera(), default_sh(1)[:, :4])
    with pytest.raises(ValueError, match="camera batch size"):
        renderer(mesh.verts, faces, _camera(batch=2), default_sh(1))
    texture = UVTexture(torch.rand(1, 3, 4, 4), procedural_model.uv, procedural_model.faces_uv)
    with pytest.raises(ValueError, match="not both"):
        renderer(mesh.verts, faces, _camera(), default_sh(1), colors=mesh.albedo, texture=texture)
    with pytest.raises(ValueError, match="colors"):
        renderer(mesh.verts, faces, _camera(), default_sh(1), colors=mesh.albedo[:, :5])
    with pytest.raises(ValueError, match="unknown rasterizer backend"):
        MeshRenderer(backend="vulkan")
