"""Scene groups (pose, translation, focal, light, colours) are defined once, in ``SceneSpec``: the fitting prior,
the regressor head and the exporter read them from there; stages may only name groups a scene has."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from f2p.export.results import PhotoResult, params_document
from f2p.fitting import QUALITIES, Fitter, Stage, default_schedule, schedule_for
from f2p.morphable.base import LinearMorphableModel, ParamGroup
from f2p.morphable.procedural import procedural_data
from f2p.morphable.registry import ModelNotFoundError, load_model
from f2p.nets.param_head import ParamHead
from f2p.render.cameras import default_camera
from f2p.render.lighting import NUM_SH, default_sh
from f2p.render.renderer import MeshRenderer
from f2p.scene import SceneSpec, render_scene
from f2p.scene.color_basis import num_smooth_colors
from f2p.scene.objective import FittingObjective
from f2p.scene.observations import Observations
from f2p.scene.params import (LIGHT, LIGHT_GROUP, LOG_FOCAL, POSE, SCENE_GROUPS, SMOOTH_COLOR, TRANSLATION,
                              VERTEX_COLOR, SceneGroup)

S = 32
EXPECTED = {  # name: (shape, prior std, regressor output scale), the values fits and trained regressors rely on
    POSE: ((3,), 0.6, (0.6,) * 3),
    TRANSLATION: ((3,), math.inf, (0.02, 0.02, 0.2)),
    LOG_FOCAL: ((1,), 0.3, (0.3,)),
    LIGHT: ((NUM_SH, 3), math.inf, (0.5,) * NUM_SH * 3),
}


def flame_like_model() -> LinearMorphableModel:
    """The procedural face without albedo and with FLAME's extra pose groups (linear stand-ins)."""
    data = procedural_data(grid=16)
    extra = (ParamGroup("jaw_pose", 3, prior_std=(0.2,) * 3), ParamGroup("neck_pose", 3, prior_std=(0.2,) * 3),
             ParamGroup("eye_pose", 6, prior_std=(0.25,) * 6))
    bases = {**data.bases, **{g.name: np.zeros((g.size, len(data.mean), 3), np.float32) for g in extra}}
    groups = tuple(g for g in data.groups if g.name != "albedo") + extra
    return LinearMorphableModel(dataclasses.replace(data, name="flame-like", groups=groups, bases=bases,
                                                    albedo_mean=None, albedo_basis=None))


@pytest.fixture(scope="module")
def albedo_spec(procedural_model):
    return SceneSpec(procedural_model, (S, S))


@pytest.fixture(scope="module")
def free_color_spec():
    return SceneSpec(flame_like_model(), (S, S))


def shared_model(models_dir, name):
    try:
        return load_model(name)
    except ModelNotFoundError:
        pytest.skip(f"shared model {name!r} not found under {models_dir}")


def test_each_scene_group_has_one_definition_with_todays_values(albedo_spec, free_color_spec):
    V = free_color_spec.model.num_vertices
    K = num_smooth_colors(V)
    expected = {**EXPECTED, SMOOTH_COLOR: ((K, 3), 0.1, (0.1,) * K * 3), VERTEX_COLOR: ((V, 3), 0.2, (0.2,) * V * 3)}
    for spec, names in ((albedo_spec, [POSE, TRANSLATION, LOG_FOCAL, LIGHT]), (free_color_spec, list(SCENE_GROUPS))):
        groups = spec.scene_groups()
        assert list(groups) == names
        sizes = spec.sizes()
        assert list(sizes) == list(spec.model.groups) + names  # model groups first, then the scene's
        for name, group in groups.items():
            shape, prior_std, scale = expected[name]
            assert (group.shape, group.prior_std) == (shape, prior_std), name
            assert sizes[name] == group.size == math.prod(shape)
            assert torch.equal(spec.prior_stds()[name], torch.full((group.size,), prior_std)), name
            assert torch.equal(spec.output_scales()[name], torch.tensor(scale)), name


def test_model_groups_keep_their_own_priors_and_bounded_groups_have_no_output_scale(albedo_spec):
    stds, scales = albedo_spec.prior_stds(), albedo_spec.output_scales()
    for name, group in albedo_spec.model.groups.items():
        assert torch.equal(stds[name], torch.tensor(group.prior_std))
        assert (name in scales) == (not group.bounded), name
        if not group.bounded:
            assert torch.equal(scales[name], torch.tensor(group.prior_std))


@pytest.mark.parametrize("which", ["albedo_spec", "free_color_spec"])
def test_the_fitting_prior_is_one_per_standard_deviation_of_every_group(which, request):
    spec = request.getfixturevalue(which)
    objective = FittingObjective(spec)
    obs = Observations(image=torch.zeros(1, 3, S, S), landmarks=torch.zeros(1, 68, 2), confidence=torch.ones(1, 68))
    for name, std in spec.prior_stds().items():
        params = spec.initial(1)
        free = torch.isinf(std)
        params[name] = torch.where(free, 1.0, std)[None]  # one standard deviation from zero where there is a prior
        prior = objective.terms(params, None, obs, {"prior"}, {name})["prior"]
        assert float(prior[0]) == pytest.approx(float((~free).float().mean()), rel=1e-5), name


@pytest.mark.parametrize("which", ["albedo_spec", "free_color_spec"])
def test_one_unit_of_head_output_moves_a_group_by_its_output_scale(which, request):
    spec = request.getfixturevalue(which)
    head = ParamHead(4, spec, bottleneck=8)
    scales = spec.output_scales()
    for name, module in head.heads.items():
        if name in scales:
            torch.nn.init.ones_(module[-1].bias)  # z = 1 for every component
    initial = spec.initial(1)
    out = head(torch.zeros(1, 4), initial)
    for name, scale in scales.items():
        torch.testing.assert_close(out[name][0] - initial[name][0], scale, rtol=1e-6, atol=1e-7, msg=name)
        assert torch.equal(head.scale(name), scale)


def test_lighting_round_trips_and_the_exporter_writes_it(albedo_spec):
    sh = torch.randn(2, NUM_SH, 3)
    params = albedo_spec.initial(2)
    params[LIGHT] = LIGHT_GROUP.flatten(sh)
    assert params[LIGHT].shape == (2, 27)
    assert torch.equal(albedo_spec.lighting(params), sh)
    assert torch.equal(albedo_spec.lighting(albedo_spec.initial(3)), default_sh(3))
    flat = {LIGHT: torch.arange(27.0)}  # one photo, row-major: coefficient k, colour c at 3 k + c
    assert SceneSpec.lighting(flat)[4].tolist() == [12.0, 13.0, 14.0]
    with pytest.raises(ValueError, match="27"):
        albedo_spec.lighting({LIGHT: torch.zeros(2, 9)})

    scene = render_scene(albedo_spec, params, None).row(0)
    one = {name: value[0] for name, value in params.items()}
    result = PhotoResult("photo.jpg", one, scene.camera, *[None] * 5, metrics={})
    assert params_document(albedo_spec.model, result)["lighting"]["sh"] == sh[0].tolist()


def test_colour_groups_unflatten_per_vertex_and_only_where_the_model_has_no_albedo(albedo_spec, free_color_spec):
    params = free_color_spec.initial(2)
    V = free_color_spec.model.num_vertices
    params[VERTEX_COLOR] = torch.arange(2 * V * 3.0).reshape(2, V * 3)
    colors = free_color_spec.vertex_colors(params)
    assert colors.shape == (2, V, 3) and colors[1, 2].tolist() == [float(V * 3 + 6 + c) for c in range(3)]
    assert free_color_spec.smooth_color_coefficients(params).shape == (2, num_smooth_colors(V), 3)
    with pytest.raises(KeyError, match="albedo"):
        albedo_spec.vertex_colors(params)


def test_scene_group_validation():
    with pytest.raises(ValueError, match="scale has 2 entries"):
        SceneGroup("x", (3,), prior_std=1.0, scale=(1.0, 2.0))
    with pytest.raises(ValueError, match="needs a scale"):
        SceneGroup("x", (3,), prior_std=math.inf)


def test_a_misspelt_stage_group_is_refused_by_the_fitter(albedo_spec):
    stage = Stage("shape", 1, ["pose", "expresion"])
    with pytest.raises(ValueError, match=r"stage 'shape'.*\['expresion'\].*'expression'"):
        Fitter(albedo_spec, MeshRenderer(backend="torch"), [Stage("rigid", 1, ["pose"]), stage])


def test_optional_groups_are_trained_only_where_the_scene_has_them(free_color_spec):
    stage = Stage("colour", 1, ["albedo", VERTEX_COLOR], {"photometric": 1.0})
    fitter = Fitter(free_color_spec, MeshRenderer(backend="torch"), [stage])  # no albedo here: accepted, skipped
    params = free_color_spec.initial(1)
    obs = Observations(image=torch.rand(1, 3, S, S), landmarks=render_scene(free_color_spec, params, None).landmarks2d,
                       confidence=torch.ones(1, 68))
    fitted = fitter.fit(obs, params).params
    assert not torch.equal(fitted[VERTEX_COLOR], params[VERTEX_COLOR])
    assert torch.equal(fitted[POSE], params[POSE])


@pytest.mark.parametrize("name", ["procedural", "flame-like", "ict", "sfm"])
def test_the_default_schedule_is_accepted_for_every_model(name, procedural_model, request):
    if name == "procedural":
        model = procedural_model
    elif name == "flame-like":
        model = flame_like_model()
    else:
        model = shared_model(request.getfixturevalue("models_dir"), name)
    spec = SceneSpec(model, (S, S))
    for quality in QUALITIES:
        Fitter(spec, MeshRenderer(backend="torch"), schedule_for(quality))
    trained = {group for stage in default_schedule() for group in stage.groups} & set(spec.sizes())
    assert {POSE, TRANSLATION, LIGHT, "identity", "expression"} <= trained
    assert (SMOOTH_COLOR in trained) == (VERTEX_COLOR in trained) == spec.free_vertex_color != ("albedo" in trained)


@pytest.mark.parametrize("size", [(224, 224), (96, 160), (160, 96)])
def test_default_camera_and_scene_share_one_field_of_view(size, albedo_spec):
    spec = dataclasses.replace(albedo_spec, image_size=size)
    camera = default_camera(1, size)
    assert float(camera.fx[0]) == pytest.approx(spec.base_focal, rel=1e-6)
    fitted = render_scene(spec, spec.initial(1), None).camera
    assert float(fitted.fx[0]) == pytest.approx(float(camera.fx[0]), rel=1e-6)
    assert spec.base_focal == pytest.approx(0.5 * size[1] / math.tan(math.radians(12.0) / 2))
