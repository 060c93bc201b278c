"""Re-shading a fixed rasterization (MeshRenderer.reshade) and the colour-and-light stages that use it."""

from __future__ import annotations

import pytest
import torch

from f2p.fitting import Fitter, Stage
from f2p.fitting.fitter import Fitter as FitterClass
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import render_scene
from f2p.scene.observations import Observations
from f2p.scene.params import SceneSpec


@pytest.fixture(scope="module")
def spec(procedural_model):
    return SceneSpec(procedural_model, (64, 64))


def test_reshading_draws_what_a_full_render_of_the_new_colours_and_light_draws(spec):
    renderer = MeshRenderer(background=0.3)
    params = spec.initial(2)
    scene = render_scene(spec, params, renderer)
    colors = torch.rand(2, spec.model.num_vertices, 3, generator=torch.Generator().manual_seed(0))
    light = spec.lighting(params) + 0.2 * torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(1))
    full = renderer(scene.mesh.verts, spec.model.faces, scene.camera, light, colors=colors)
    reshaded = renderer.reshade(scene.render, spec.model.faces, colors, light)
    assert scene.render.mask.sum() > 100
    assert torch.allclose(reshaded, full.image, atol=1e-5)
    with pytest.raises(ValueError, match="hard renderer"):
        MeshRenderer(soft=True).reshade(scene.render, spec.model.faces, colors, light)


def test_a_colour_and_light_stage_fits_the_same_with_one_rasterization(spec, monkeypatch):
    truth = spec.initial(2)
    truth["albedo"] = torch.randn(2, spec.model.groups["albedo"].size, generator=torch.Generator().manual_seed(2))
    truth["sh"] = truth["sh"] * 1.3
    scene = render_scene(spec, truth, MeshRenderer())
    obs = Observations(image=scene.render.image, landmarks=scene.landmarks2d, confidence=torch.ones(2, 68),
                       face_mask=scene.render.mask)
    stages = [Stage("shading", 15, ["albedo", "sh"], {"photometric": 1.0, "prior": 1e-4})]
    start = spec.initial(2)
    reshaded = Fitter(spec, MeshRenderer(), stages).fit(obs, start)
    monkeypatch.setattr(FitterClass, "_reshaded", lambda self, stage_spec, fixed, params: self._scene(
        stage_spec, params, render=True, dense=False))
    rendered = Fitter(spec, MeshRenderer(), stages).fit(obs, start)
    before = Fitter(spec, MeshRenderer(), [Stage("none", 0, ["sh"], {"photometric": 1.0})]).fit(obs, start)
    assert (reshaded.losses["photometric"] < 0.8 * before.losses["photometric"]).all()  # it does fit
    for name in ("albedo", "sh"):
        assert torch.allclose(reshaded.params[name], rendered.params[name], atol=1e-4), name
