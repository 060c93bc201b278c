"""Rasterizer backends against a brute-force z-buffer, perspective-correct barycentrics, degenerate input."""

import numpy as np
import pytest
import torch

from f2p.render.rasterize import BACKENDS, Fragments, TorchRasterizer, get_rasterizer

SIZE = (24, 32)  # (H, W), non-square on purpose
REAL_BACKENDS = [name for name in BACKENDS if name != "auto"]


def _random_triangles(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3n, 3) screen vertices of n overlapping random triangles (some partly outside) and (n, 3) faces."""
    rng = np.random.default_rng(seed)
    H, W = SIZE
    centres = rng.uniform([-3, -3], [W + 3, H + 3], size=(n, 1, 2))
    corners = centres + rng.normal(scale=6.0, size=(n, 3, 2))
    depth = rng.uniform(1.0, 3.0, size=(n, 3, 1))
    verts = np.concatenate([corners, depth], -1).reshape(1, 3 * n, 3)
    return torch.tensor(verts, dtype=torch.float32), torch.arange(3 * n).view(n, 3)


def _brute_force(screen: torch.Tensor, faces: torch.Tensor, perspective: bool) -> np.ndarray:
    """(H, W) nearest face by looping over faces in float64 (the reference for coverage and ties)."""
    H, W = SIZE
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    best_depth = np.full((H, W), np.inf)
    best_face = -np.ones((H, W), dtype=np.int64)
    tri_all = screen[0].double().numpy()[faces.numpy()]
    for f, ((x0, y0, z0), (x1, y1, z1), (x2, y2, z2)) in enumerate(tri_all):
        area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area2 == 0:
            continue
        b1 = ((xs - x0) * (y2 - y0) - (ys - y0) * (x2 - x0)) / area2
        b2 = ((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)) / area2
        b0 = 1 - b1 - b2
        inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
        depth = 1 / (b0 / z0 + b1 / z1 + b2 / z2) if perspective else b0 * z0 + b1 * z1 + b2 * z2
        closer = inside & (depth < best_depth)
        best_depth[closer], best_face[closer] = depth[closer], f
    return best_face


@pytest.mark.parametrize("backend", REAL_BACKENDS)
@pytest.mark.parametrize("perspective", [True, False])
def test_backends_match_a_brute_force_z_buffer(backend, perspective):
    screen, faces = _random_triangles(40, seed=1)
    expected = _brute_force(screen, faces, perspective)
    fragments = get_rasterizer(backend)(screen, faces, SIZE, perspective)
    assert fragments.pix_to_face.shape == (1, *SIZE)
    assert (fragments.pix_to_face[0].numpy() == expected).mean() > 0.998  # pixel centres on edges may differ
    assert (expected >= 0).mean() > 0.5  # the scene is not trivially empty


@pytest.mark.parametrize("backend", REAL_BACKENDS)
def test_small_and_large_triangles_at_the_image_border(backend):
    H, W = SIZE
    centres = [(0, 0), (W - 2, 0), (0, H - 2), (W - 1, H - 1), (W - 1, H // 2), (W // 2, H - 1)]
    tris = []
    for x, y in centres:  # a tiny triangle around a pixel centre, in front of a larger one past the border
        tris += [[x - 0.4, y - 0.4, 1.0], [x + 0.9, y - 0.3, 1.0], [x - 0.3, y + 0.9, 1.0]]
        tris += [[x - 3.03, y - 2.99, 2.0], [x + 4.07, y - 2.01, 2.0], [x - 1.98, y + 5.05, 2.0]]  # no edge on a centre
    screen = torch.tensor([tris], dtype=torch.float32)
    faces = torch.arange(len(tris)).view(-1, 3)
    fragments = get_rasterizer(backend)(screen, faces, SIZE, True)
    expected = _brute_force(screen, faces, True)
    assert (fragments.pix_to_face[0].numpy() == expected).all()
    assert set(range(0, len(centres) * 2, 2)) <= set(np.unique(expected))  # every tiny triangle is seen


def test_torch_backend_chunking_gives_identical_fragments():
    screen, faces = _random_triangles(60, seed=2)
    big = TorchRasterizer()(screen, faces, SIZE, True)
    small = TorchRasterizer(max_candidates=37)(screen, faces, SIZE, True)
    assert torch.equal(big.pix_to_face, small.pix_to_face)
    assert torch.equal(big.bary, small.bary) and torch.equal(big.zbuf, small.zbuf)


@pytest.mark.parametrize("backend", REAL_BACKENDS)
def test_perspective_barycentrics_interpolate_the_3d_point_seen_by_the_pixel(backend):
    # One triangle in the camera frame, projected with f = 40 px and the principal point (15.5, 11.5).
    f, cx, cy = 40.0, 15.5, 11.5
    cam_points = torch.tensor([[[-0.3, -0.2, 1.0], [0.4, -0.1, 2.5], [0.0, 0.35, 1.5]]])
    X, Y, Z = cam_points.unbind(-1)
    screen = torch.stack([f * X / Z + cx, f * Y / Z + cy, Z], -1)
    fragments = get_rasterizer(backend)(screen, torch.tensor([[0, 1, 2]]), SIZE, True)
    covered = fragments.mask[0]
    assert covered.sum() > 50
    point = (fragments.bary[0, ..., None] * cam_points[0]).sum(-2)  # (H, W, 3)
    ys, xs = torch.meshgrid(torch.arange(SIZE[0]), torch.arange(SIZE[1]), indexing="ij")
    u = f * point[..., 0] / point[..., 2] + cx
    v = f * point[..., 1] / point[..., 2] + cy
    assert torch.allclose(u[covered], xs[covered].float(), atol=1e-3)
    assert torch.allclose(v[covered], ys[covered].float(), atol=1e-3)
    assert torch.allclose(fragments.zbuf[0][covered], point[..., 2][covered], atol=1e-5)
    assert (fragments.bary[0][~covered] == 0).all() and (fragments.zbuf[0][~covered] == 0).all()


@pytest.mark.parametrize("backend", REAL_BACKENDS)
def test_affine_barycentrics_reproduce_the_pixel_position(backend):
    screen = torch.tensor([[[2.3, 1.7, 1.0], [29.1, 4.2, 2.0], [9.6, 22.8, 3.0]]])
    fragments = get_rasterizer(backend)(screen, torch.tensor([[0, 1, 2]]), SIZE, False)
    covered = fragments.mask[0]
    position = (fragments.bary[0, ..., None] * screen[0]).sum(-2)
    ys, xs = torch.meshgrid(torch.arange(SIZE[0]), torch.arange(SIZE[1]), indexing="ij")
    assert torch.allclose(position[..., 0][covered], xs[covered].float(), atol=1e-4)
    assert torch.allclose(position[..., 1][covered], ys[covered].float(), atol=1e-4)
    assert torch.allclose(fragments.zbuf[0][covered], position[..., 2][covered], atol=1e-5)


def test_nearest_face_wins_and_equal_depth_goes_to_the_lower_index():
    square = torch.tensor([[0.0, 0.0], [31.0, 0.0], [0.0, 23.0]])

    def layer(depth: float) -> torch.Tensor:
        return torch.cat([square, torch.full((3, 1), depth)], 1)

    screen = torch.cat([layer(2.0), layer(1.0), layer(1.0)])[None]
    faces = torch.arange(9).view(3, 3)
    for backend in REAL_BACKENDS:
        p2f = get_rasterizer(backend)(screen, faces, SIZE, True).pix_to_face
        assert set(p2f.unique().tolist()) == {-1, 1}, backend


@pytest.mark.parametrize("backend", REAL_BACKENDS)
def test_degenerate_input_gives_empty_fragments_without_nan(backend):
    rasterize = get_rasterizer(backend)
    nan, inf = float("nan"), float("inf")
    cases = {
        "nan": [[nan, 1, 1], [20, 2, 1], [5, 20, 1]],
        "inf": [[inf, 1, 1], [20, 2, 1], [5, 20, 1]],
        "zero area": [[1, 1, 1], [10, 10, 1], [20, 20, 1]],
        "behind": [[1, 1, -1], [20, 2, -1], [5, 20, -2]],
        "straddling": [[1, 1, 1], [20, 2, -1], [5, 20, 1]],
        "outside": [[-50, -50, 1], [-40, -50, 1], [-50, -40, 1]],
    }
    for label, corners in cases.items():
        screen = torch.tensor([corners], dtype=torch.float32, requires_grad=True)
        fragments = rasterize(screen, torch.tensor([[0, 1, 2]]), SIZE, True)
        assert not fragments.mask.any(), label
        assert torch.isfinite(fragments.bary).all() and torch.isfinite(fragments.zbuf).all(), label
        (fragments.bary.sum() + fragments.zbuf.sum()).backward()
        assert torch.isfinite(screen.grad).all(), label


@pytest.mark.parametrize("backend", REAL_BACKENDS)
def test_empty_meshes_rasterize_to_empty_fragments(backend):
    rasterize = get_rasterizer(backend)
    no_faces = rasterize(torch.rand(2, 5, 3), torch.zeros(0, 3, dtype=torch.long), SIZE, True)
    no_verts = rasterize(torch.rand(2, 0, 3), torch.zeros(0, 3, dtype=torch.long), SIZE, True)
    for fragments in (no_faces, no_verts):
        assert isinstance(fragments, Fragments) and fragments.pix_to_face.shape == (2, *SIZE)
        assert not fragments.mask.any()


def test_input_validation_and_backend_names():
    rasterize = get_rasterizer("torch")
    with pytest.raises(ValueError, match="face indices"):
        rasterize(torch.rand(1, 3, 3), torch.tensor([[0, 1, 3]]), SIZE, True)
    with pytest.raises(ValueError, match="screen_verts"):
        rasterize(torch.rand(3, 3), torch.tensor([[0, 1, 2]]), SIZE, True)
    with pytest.raises(ValueError, match="image_size"):
        rasterize(torch.rand(1, 3, 3), torch.tensor([[0, 1, 2]]), (0, 4), True)
    with pytest.raises(ValueError, match="unknown rasterizer backend 'opengl'.*pytorch3d"):
        get_rasterizer("opengl")
    assert get_rasterizer("auto", "cpu").name == "torch"
    assert get_rasterizer("pytorch3d").name == "pytorch3d"


def test_gradients_reach_every_corner_of_covering_faces():
    screen, faces = _random_triangles(10, seed=3)
    screen.requires_grad_()
    fragments = TorchRasterizer()(screen, faces, SIZE, True)
    (fragments.bary * torch.randn_like(fragments.bary)).sum().backward()
    visible = fragments.pix_to_face.unique()
    visible = visible[visible >= 0]
    moved = screen.grad[0].abs().sum(-1).view(-1, 3).sum(-1)  # per face
    assert (moved[visible] > 0).all()
