"""Parity of the torch backend with PyTorch3D (the reference) on the real ICT and SFM meshes.

Both backends render through the same ``MeshRenderer`` (same cameras, normals, shading); only the
rasterizer differs. The meshes fill a 128 px frame (PyTorch3D's un-binned CPU kernel costs
O(pixels x faces), so larger frames would make the test slow without testing more).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from f2p import conventions as C
from f2p.render import MeshRenderer, OrthographicCamera, PinholeCamera, default_camera, default_sh
from f2p.render.rasterize import barycentrics_at_pixels
from f2p.render.rotations import euler_to_axis_angle, head_pose_extrinsics

SIZE = (128, 128)
POSES = [[0.0, 0.0, 0.0], [35.0, -10.0, 5.0], [-60.0, 15.0, -10.0]]  # yaw, pitch, roll (degrees)


@dataclass(frozen=True)
class RealMesh:
    verts: torch.Tensor  # (V, 3) metres, model space
    faces: torch.Tensor  # (F, 3)
    landmarks: torch.Tensor  # (68, 3) metres; SFM's missing jaw points are NaN
    distance: float  # camera distance (metres) at which the mesh fills SIZE with the default focal


def _load_ict(models_dir: Path) -> RealMesh:
    path = models_dir / "ict_facekit" / "ict_facekit_light_v1_skin14062.npz"
    if not path.is_file():
        pytest.skip(f"ICT FaceKit npz not found at {path}")
    with np.load(path) as data:
        verts = torch.tensor(data["neutral"]) * C.M_PER_CM
        quads = torch.tensor(data["faces"], dtype=torch.long)
        landmark_index = torch.tensor(data["landmarks68_vertex_idx"])
    faces = torch.cat([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return RealMesh(verts, faces, verts[landmark_index], distance=1.9)


def _load_sfm(models_dir: Path) -> RealMesh:
    path = models_dir / "sfm_3448" / "sfm_shape_3448_converted.npz"
    if not path.is_file():
        pytest.skip(f"SFM npz not found at {path}")
    with np.load(path) as data:
        verts = torch.tensor(data["shape_mean"]) * C.M_PER_MM
        faces = torch.tensor(data["triangles"], dtype=torch.long)
        landmark_index = torch.tensor(data["ibug68_to_vertex"])
    landmarks = torch.where((landmark_index >= 0)[:, None], verts[landmark_index.clamp(min=0)], float("nan"))
    return RealMesh(verts, faces, landmarks, distance=1.2)


@pytest.fixture(scope="module", params=["ict", "sfm"])
def real_mesh(request, models_dir) -> RealMesh:
    return _load_ict(models_dir) if request.param == "ict" else _load_sfm(models_dir)


def _posed_camera(mesh: RealMesh, orthographic: bool = False):
    poses = POSES[1:2] if orthographic else POSES  # the affine path needs one pose, PyTorch3D's CPU kernel is slow
    base = default_camera(len(poses), SIZE, distance=mesh.distance)
    R, t = head_pose_extrinsics(euler_to_axis_angle(torch.tensor(poses)), base.t)
    if orthographic:
        return OrthographicCamera(scale=base.fx / mesh.distance, cx=base.cx, cy=base.cy, R=R, t=t, image_size=SIZE)
    return PinholeCamera(base.fx, base.fy, base.cx, base.cy, R, t, SIZE)


def _render(mesh: RealMesh, camera, backend: str):
    """Render every pose with per-vertex colours; return the output and the vertices (requiring grad)."""
    B = camera.batch_size
    verts = mesh.verts.expand(B, -1, -1).clone().requires_grad_()
    colors = (0.5 + 0.4 * torch.sin(60.0 * mesh.verts)).expand(B, -1, -1)  # texture-like albedo variation
    return MeshRenderer(backend=backend)(verts, mesh.faces, camera, default_sh(B), colors=colors), verts


@pytest.mark.parametrize("orthographic", [False, True], ids=["pinhole", "orthographic"])
def test_torch_backend_matches_pytorch3d(real_mesh, orthographic):
    camera = _posed_camera(real_mesh, orthographic)
    ours, our_verts = _render(real_mesh, camera, "torch")
    ref, ref_verts = _render(real_mesh, camera, "pytorch3d")

    covered = ours.mask[:, 0].bool() | ref.mask[:, 0].bool()
    assert covered.float().mean() > 0.15  # the mesh fills a good part of the frame
    same_face = (ours.pix_to_face == ref.pix_to_face) & covered
    assert same_face.sum() >= 0.999 * covered.sum()

    bary_error = (ours.bary - ref.bary).abs().amax(-1)[same_face]
    assert bary_error.max() < 1e-4

    agree = (same_face | ~covered)[:, None]  # (B, 1, H, W)
    image_error = (ours.image - ref.image).abs()
    assert image_error.masked_select(agree).max() < 1e-3
    assert image_error.mean() < 1e-4

    # Photometric loss over the pixels where both show the same face (all but <= 0.1 %): on the others
    # a sliver's 1 / area gradient would compare visibility, not gradients.
    target = torch.rand(ours.image.shape, generator=torch.Generator().manual_seed(0))
    for out, verts in ((ours, our_verts), (ref, ref_verts)):
        (((out.image - target) ** 2) * agree).sum().backward()
    relative = (our_verts.grad - ref_verts.grad).norm() / ref_verts.grad.norm()
    assert relative < 1e-2


def test_soft_masks_agree_across_backends(real_mesh):
    base = default_camera(1, SIZE, distance=real_mesh.distance)
    R, t = head_pose_extrinsics(euler_to_axis_angle(torch.tensor([POSES[1]])), base.t)
    camera = PinholeCamera(base.fx, base.fy, base.cx, base.cy, R, t, SIZE)
    masks = [MeshRenderer(backend=name, soft=True)(real_mesh.verts[None], real_mesh.faces, camera, default_sh(1)).mask
             for name in ("torch", "pytorch3d")]
    partial = (masks[0] > 0) & (masks[0] < 1)
    assert partial.sum() > 100  # the silhouette is antialiased
    assert (masks[0] - masks[1]).abs().mean() < 1e-4


def test_torch_backend_barycentrics_are_float64_accurate(real_mesh):
    """Our float32 barycentrics are within 1e-5 of a float64 evaluation, sliver triangles included."""
    camera = _posed_camera(real_mesh)
    verts = real_mesh.verts.expand(camera.batch_size, -1, -1)
    ours = MeshRenderer(backend="torch")(verts, real_mesh.faces, camera, default_sh(camera.batch_size))
    screen64 = camera.to_screen(verts).double()
    exact, _ = barycentrics_at_pixels(screen64, real_mesh.faces, ours.pix_to_face, perspective_correct=True)
    assert (ours.bary.double() - exact).abs().max() < 1e-5


def test_frontal_neutral_nose_tip_projects_near_the_principal_point(real_mesh):
    camera = default_camera(1, (224, 224), distance=1.0)
    out = MeshRenderer()(real_mesh.verts[None], real_mesh.faces, camera, default_sh(1),
                         landmarks=real_mesh.landmarks[None])
    nose = out.landmarks2d[0, C.NOSE_TIP]
    assert (nose - torch.tensor([111.5, 111.5])).abs().max() < 224 * 0.03
    assert out.landmarks_visible[0, C.NOSE_TIP]
    # The nose tip is the nearest point of a frontal face: the depth minimum is around it.
    depth = torch.where(out.mask[0, 0] > 0, out.depth[0, 0], float("inf"))
    row, col = divmod(int(depth.argmin()), 224)
    assert abs(col - nose[0]) < 224 * 0.03 and abs(row - nose[1]) < 224 * 0.05
