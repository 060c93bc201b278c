import numpy as np
import pytest
import torch

from f2p.morphable.ict import socket_vertices
from f2p.morphable.registry import load_model
from f2p.scene import SceneSpec, render_scene
from f2p.scene.color_basis import (NUM_SMOOTH_COLORS, face_domain, face_harmonics, smooth_color_basis,
                                   smooth_colors)
from f2p.scene.compose import scene_colors
from f2p.scene.params import SMOOTH_COLOR, VERTEX_COLOR


@pytest.fixture(scope="module")
def ict(models_dir):
    return load_model("ict")


def fit_residual(basis: torch.Tensor, field: torch.Tensor, region: torch.Tensor) -> float:
    """Relative RMS of the part of ``field`` (V,) that the basis cannot represent over ``region``."""
    A, b = basis[region].double(), field[region].double()
    coefficients = torch.linalg.lstsq(A, b[:, None]).solution
    return float((A @ coefficients)[:, 0].sub(b).norm() / b.norm())


def domain_of(model) -> torch.Tensor:
    mesh = model(**model.zero_params(1))
    return torch.from_numpy(face_domain(mesh.verts[0].double().numpy(), mesh.landmarks[0].double().numpy(),
                                        model.face_region.numpy()))


def test_slow_colour_changes_over_the_face_are_representable_but_per_vertex_detail_is_not(ict):
    basis = smooth_color_basis(ict)
    region = domain_of(ict)  # the skin that photos show to the photometric loss
    assert basis.shape == (ict.num_vertices, NUM_SMOOTH_COLORS) and bool(torch.isfinite(basis).all())
    with torch.no_grad():
        verts = ict(**ict.zero_params(1)).verts[0]
    # A ruddy-cheek / darker-jaw kind of field: smooth, a few centimetres to a face across.
    smooth = torch.sin(verts[:, 0] / 0.04) + 0.5 * torch.cos(verts[:, 1] / 0.05) + 0.3
    assert fit_residual(basis, smooth, region) < 0.08
    # Per-vertex noise (what free per-vertex colours could absorb) is almost entirely outside the basis.
    noise = torch.randn(ict.num_vertices, generator=torch.Generator().manual_seed(0))
    assert fit_residual(basis, noise, region) > 0.9


def test_unobserved_skin_takes_the_colours_of_the_face_edge_without_a_seam(ict):
    basis = smooth_color_basis(ict)
    mesh = ict(**ict.zero_params(1))
    domain = domain_of(ict)
    # The photo's face mask (jaw and brows) covers the domain; the forehead above the brows is left out.
    forehead = ict.face_region & (mesh.verts[0, :, 1] > mesh.landmarks[0, 19, 1] + 0.02)
    assert forehead.sum() > 100 and not (domain & forehead).any()
    faces = ict.faces
    face = torch.zeros_like(domain)
    face[faces[domain[faces].any(dim=1)].unique()] = True  # the vertices of the domain's triangles
    # Harmonic extension: elsewhere every function stays within the range it has on the face, so a colour
    # fitted to the face is never extrapolated into colours the face does not have...
    low, high = basis[face].min(dim=0).values, basis[face].max(dim=0).values
    assert bool(((basis[~face] >= low - 1e-4) & (basis[~face] <= high + 1e-4)).all())
    # ... and changes no faster across an edge than the face's own functions do (no seam).
    edge_jump = (basis[faces[:, 0]] - basis[faces[:, 1]]).abs()  # (F, K)
    assert float(edge_jump[~face[faces].any(dim=1)].max()) <= float(edge_jump[face[faces].all(dim=1)].max())


def test_the_basis_is_the_same_on_every_run(ict):
    mean = ict(**ict.zero_params(1)).verts[0].detach().double().numpy()
    again = face_harmonics(mean, ict.faces.numpy(), domain_of(ict).numpy(), NUM_SMOOTH_COLORS)
    np.testing.assert_allclose(again, smooth_color_basis(ict).numpy(), atol=1e-5)


def test_smooth_colour_is_a_scene_group_that_changes_the_rendered_colour(ict):
    spec = SceneSpec(ict, (64, 64))
    params = spec.initial(2)
    assert params[SMOOTH_COLOR].shape == (2, NUM_SMOOTH_COLORS * 3)
    assert params[VERTEX_COLOR].shape == (2, ict.num_vertices * 3)
    params[SMOOTH_COLOR][1, 0:3] = torch.tensor([0.1, -0.05, 0.0])  # the constant function: a tone shift
    assert render_scene(spec, params, None).colors is None  # landmark-only scenes build no colours
    mesh = ict(**ict.zero_params(2))
    colors = scene_colors(spec, params, mesh)
    offsets = smooth_colors(ict, spec.smooth_color_coefficients(params))
    skin = ~torch.from_numpy(np.any(list(socket_vertices(ict.name, ict.num_vertices).values()), axis=0))
    torch.testing.assert_close(colors[1, skin] - colors[0, skin], offsets[1, skin], atol=1e-6, rtol=0)
    assert torch.equal(colors[1, ~skin], colors[0, ~skin]), "the sockets keep their grey"
    region = ict.face_region
    assert float((colors[1, region, 0] - colors[0, region, 0]).mean()) > 0.05
