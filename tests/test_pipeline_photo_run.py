"""pipeline.PhotoRun.export: a batch's outputs are those of its photos exported one by one."""

from __future__ import annotations

import json

import torch

from f2p.export.photo import PhotoExporter
from f2p.fitting.estimate import Estimate
from f2p.perception.identity.embedder import create_embedder
from f2p.perception.photo import PhotoSample
from f2p.pipeline.photo_run import PhotoRun
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import render_scene
from f2p.scene.params import SceneSpec

S = 96


def turned_faces(spec: SceneSpec, renderer: MeshRenderer) -> tuple[dict[str, torch.Tensor], list[PhotoSample]]:
    """Parameters of three differently turned faces and their renders as photos (each photo its own crop)."""
    params = spec.initial(3)
    params["pose"][:, :2] = torch.tensor([[0.1, 0.35], [-0.05, -0.2], [0.0, 0.1]])
    params["translation"][:, 2] = 0.9
    scene = render_scene(spec, params, renderer)
    samples = []
    for i in range(3):
        mask = scene.render.mask[i]
        photo = (scene.render.image[i] * mask + 0.5 * (1 - mask)).clamp(0, 1)
        landmarks = scene.landmarks2d[i]
        samples.append(PhotoSample(f"photo{i}.png", photo, landmarks, torch.ones(68), "test", photo, landmarks,
                                   torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.ones(1, S, S)))
    return params, samples


def test_the_identity_metric_of_a_batch_is_that_of_each_photo_alone_and_failed_photos_are_skipped(
        procedural_model, tmp_path):
    spec, renderer, embedder = SceneSpec(procedural_model, (S, S)), MeshRenderer(), create_embedder("dlib")
    params, samples = turned_faces(spec, renderer)
    with torch.no_grad():
        scene = render_scene(spec, params, renderer)
        crops = embedder.embed(torch.stack([s.crop for s in samples]), torch.stack([s.crop_landmarks for s in samples]))
    exporter = PhotoExporter(spec, renderer, embedder)
    errors = ["", "optimisation diverged", ""]
    estimate = Estimate(params, errors, [{} for _ in samples], scene)
    outcomes = PhotoRun(tmp_path / "batch", exporter, embedder).export(samples, ["a", "b", "c"], estimate, "fitting",
                                                                        0.1, crops)
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    assert not (tmp_path / "batch" / "b").exists()
    for i, name in ((0, "a"), (2, "c")):
        alone = exporter.export(samples[i], {k: v[i:i + 1] for k, v in params.items()}, tmp_path / "alone" / name,
                                {}, crops[i:i + 1], scene.row(i))
        batched = json.loads((tmp_path / "batch" / name / "metrics.json").read_text())
        assert abs(batched["identity_similarity"] - alone.metrics["identity_similarity"]) < 1e-5
    first, last = (json.loads((tmp_path / "batch" / n / "metrics.json").read_text())["identity_similarity"]
                   for n in ("a", "c"))
    assert first != last  # each photo's own render, not a neighbour's
