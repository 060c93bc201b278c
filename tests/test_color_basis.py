import numpy as np
import pytest
import torch

from f2p.morphable.registry import load_model
from f2p.scene import SceneSpec, render_scene
from f2p.scene.color_basis import NUM_SMOOTH_COLORS, smooth_color_basis, smooth_colors
from f2p.scene.params import SMOOTH_COLOR, VERTEX_COLOR


@pytest.fixture(scope="module")
def ict(models_dir):
    return load_model("ict")


def fit_residual(basis: torch.Tensor, field: torch.Tensor, region: torch.Tensor) -> float:
    """Relative RMS of the part of ``field`` (V,) that the basis cannot represent over ``region``."""
    A, b = basis[region].double(), field[region].double()
    coefficients = torch.linalg.lstsq(A, b[:, None]).solution
    return float((A @ coefficients)[:, 0].sub(b).norm() / b.norm())


def test_slow_colour_changes_over_the_face_are_representable_but_per_vertex_detail_is_not(ict):
    basis = smooth_color_basis(ict)
    region = ict.face_region
    assert basis.shape == (ict.num_vertices, NUM_SMOOTH_COLORS) and bool(torch.isfinite(basis).all())
    with torch.no_grad():
        verts = ict(**ict.zero_params(1)).verts[0]
    # A ruddy-cheek / darker-jaw kind of field: smooth, a few centimetres to a face across.
    smooth = torch.sin(verts[:, 0] / 0.04) + 0.5 * torch.cos(verts[:, 1] / 0.05) + 0.3
    assert fit_residual(basis, smooth, region) < 0.08
    # Per-vertex noise (what free per-vertex colours could absorb) is almost entirely outside the basis.
    noise = torch.randn(ict.num_vertices, generator=torch.Generator().manual_seed(0))
    assert fit_residual(basis, noise, region) > 0.9


def test_the_basis_continues_smoothly_beyond_the_face_and_is_the_same_on_every_run(ict):
    basis = smooth_color_basis(ict)
    faces = ict.faces
    edge_jump = (basis[faces[:, 0]] - basis[faces[:, 1]]).abs()  # (F, K)
    inside = ict.face_region[faces].all(dim=1)
    outside = ~ict.face_region[faces].any(dim=1)
    # No seam: the extension changes no faster across an edge than the face's own functions do.
    assert float(edge_jump[outside].max()) <= float(edge_jump[inside].max())
    from f2p.scene.color_basis import face_harmonics

    mean = ict(**ict.zero_params(1)).verts[0].detach().double().numpy()
    again = face_harmonics(mean, faces.numpy(), ict.face_region.numpy(), NUM_SMOOTH_COLORS)
    np.testing.assert_allclose(again, basis.numpy(), atol=1e-5)


def test_smooth_colour_is_a_scene_group_that_changes_the_rendered_colour(ict):
    spec = SceneSpec(ict, (64, 64))
    params = spec.initial(2)
    assert params[SMOOTH_COLOR].shape == (2, NUM_SMOOTH_COLORS * 3)
    assert params[VERTEX_COLOR].shape == (2, ict.num_vertices * 3)
    params[SMOOTH_COLOR][1, 0:3] = torch.tensor([0.1, -0.05, 0.0])  # the constant function: a tone shift
    scene = render_scene(spec, params, None)
    assert scene.colors is None  # landmark-only scenes build no colours
    from f2p.scene.compose import scene_colors

    mesh = ict(**ict.zero_params(2))
    colors = scene_colors(spec, params, mesh)
    offsets = smooth_colors(ict, params[SMOOTH_COLOR])
    torch.testing.assert_close(colors[1] - colors[0], offsets[1], atol=1e-6, rtol=0)
    region = ict.face_region
    assert float((colors[1, region, 0] - colors[0, region, 0]).mean()) > 0.05
