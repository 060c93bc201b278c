"""Synthetic recovery: faces rendered with known parameters, fitted (or predicted) and scored against the truth.

The faces are ``f2p.data.synthetic.SyntheticFaces`` (the regressor's synthetic data: item ``i`` a pure function of
the seed and ``i``, model groups from their priors with sliders clamped into their bounds, albedo from its prior or
a smooth random per-vertex colour for models without one, random SH light and background, the face placed where
``perception.crop`` aligns photo faces) drawn with ``synthetic_sampler``: yaw uniform in +-YAW_LIMIT_DEG, pitch and
roll moderate, no specular highlight, and the focal length fixed because ``default_schedule`` does not fit it.
Observations are the render, its projected landmarks plus optional Gaussian pixel noise and the face-region mask of
the noisy landmarks: what ``reconstruct`` gives the fitter for a photo crop, without identity embedding. The observed
outline (``OUTLINES``) is the model's fixed jaw and face-oval points, or with ``silhouette`` the occluding contour of
the true face at its pose (each sliding point moved to its silhouette candidate, ``scene.objective.slide_contour``),
as a detector that marks the visible outline of a turned face does; the fitted landmarks are scored against the fixed
ones either way (what f2p reports).

Scores per face: per-vertex error over ``model.face_region`` in mm, (a) in model space as fitted, (b) after a
rigid Procrustes alignment (rotation + translation) of the region and (c) after a similarity alignment (with a
uniform scale: a single image does not determine the face's absolute size, see ``evaluation.geometry``); RMSE of
each model group in prior-std units, plain and shape-weighted (``evaluation.shape_weights``: each component counted
by how far it moves the face); head-pose angle errors and translation error; landmark NME of the fitted
against the true landmarks. The parameter, vertex and pose errors are ``evaluation.parameters``, the ones the
regressor logs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from PIL import Image
from torch import Tensor

from f2p import face_mesh
from f2p.conventions import MM_PER_M
from f2p.data import batch as keys
from f2p.data.synthetic import SceneSampler, SyntheticFaces
from f2p.evaluation import OUTLINES
from f2p.evaluation.geometry import ALIGNMENTS
from f2p.evaluation.landmarks import LANDMARK_METRICS, landmark_nme
from f2p.evaluation.parameters import prior_scales, recovery_errors
from f2p.evaluation.pose import POSE_ANGLES
from f2p.evaluation.summary import landmark_summary, statistics
from f2p.export.figures import side_by_side
from f2p.fitting.estimate import Estimator
from f2p.losses.priors import slider_pair_stats
from f2p.morphable.base import MorphableModel
from f2p.morphable.contour import contour_candidates
from f2p.perception.masks import face_region_mask
from f2p.perception.photo import MASK_SOFTNESS
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import axis_angle_to_matrix, matrix_to_euler
from f2p.scene.compose import render_scene
from f2p.scene.objective import model_slider_pairs, slide_contour
from f2p.scene.observations import Observations
from f2p.scene.params import POSE, TRANSLATION, SceneSpec

YAW_LIMIT_DEG = 45.0
PITCH_LIMIT_DEG = 15.0
ROLL_LIMIT_DEG = 10.0
SIMILARITY_TARGETS_MM = ((0.0, 0.8), (1.0, 1.0))
"""(landmark noise up to, px; target, mm) of the fitting issue: the median over faces of the similarity-aligned
median face-region vertex error (the protocol of monocular shape benchmarks: one photo does not fix a face's size)
<= 0.8 mm with exact landmarks, <= 1.0 mm with 1 px of noise; no target with more noise."""
NOISE_SEED = 2**62
"""Landmark noise is drawn with seed ``NOISE_SEED + seed``, apart from the faces' own seeds."""
VERTEX_SPACES = {"model_space": ("", "model space"), "aligned": ("aligned_", "rigidly aligned"),
                 "similarity": ("similarity_", "similarity aligned")}
"""report.json name of each vertex-error space -> (prefix of its report.csv columns, label in tables)."""

FACE_FIELDS = ("face", "status", "error", "yaw_deg", "pitch_deg", "roll_deg", "vertex_median_mm", "vertex_mean_mm",
               "aligned_vertex_median_mm", "aligned_vertex_mean_mm", "similarity_vertex_median_mm",
               "similarity_vertex_mean_mm", *(f"{a}_error_deg" for a in POSE_ANGLES),
               "pose_error_deg", "translation_error_mm", *LANDMARK_METRICS, "seconds")
"""Columns of report.csv for synthetic faces (before the per-group parameter RMSE columns); the pose columns are
the true pose in f2p's convention."""
SLIDER_PAIR_KEYS = ("lr_diff", "lr_diff_true", "overlap", "overlap_true")
"""Per slider group with pairs (``slider_pair_columns``): mean L/R difference and opposing-pair overlap of the
fitted and of the true sliders."""


@dataclass(frozen=True)
class SyntheticEvaluation:
    """``records``: one flat dict per face; ``summary``: aggregate for report.json; ``worst``: (figure, caption) of
    the worst fits by aligned median vertex error, worst first."""

    records: list[dict]
    summary: dict
    worst: list[tuple[Image.Image, str]]


def similarity_target_mm(landmark_noise: float) -> float | None:
    """The similarity-aligned target (``SIMILARITY_TARGETS_MM``) for landmarks with ``landmark_noise`` px of noise,
    None above 1 px."""
    return next((target for noise, target in SIMILARITY_TARGETS_MM if landmark_noise <= noise), None)


def synthetic_sampler() -> SceneSampler:
    """The scene distribution of the synthetic evaluation (see the module docstring). Every setting is spelled out,
    so that the benchmark does not move when the training data's defaults do; report.json records them."""
    return SceneSampler(prior_scale=1.0, yaw_deg=YAW_LIMIT_DEG, pitch_deg=PITCH_LIMIT_DEG, roll_deg=ROLL_LIMIT_DEG,
                        shift_m=0.005, size_jitter=0.04, log_focal_std=0.0, ambient_range=0.25, tint=0.05,
                        light_std=0.3, tone_std=0.15, color_std=0.08, background_std=0.15, specular_max=0.0)


def observe(items: list[dict], landmark_noise: Tensor, device: torch.device, dense_noise: Tensor | None = None,
            spec: SceneSpec | None = None, truth: dict[str, Tensor] | None = None, outline: str = "fixed"
            ) -> tuple[Observations, Tensor]:
    """``SyntheticFaces`` items -> observations on ``device`` with ``landmark_noise`` (B, 68, 2) pixels added to the
    landmarks (and the face mask made from the noisy ones), and the (B, 68, 2) true (fixed) landmarks.

    With ``dense_noise`` ((B, 468, 2) pixels), the observations also carry the true dense landmarks of the items'
    parameters ``truth`` in ``spec`` (``morphable.dense`` projected through their cameras) plus that noise: a
    perfect dense detector up to the noise, for measuring the dense-landmark pipeline. With ``outline``
    ``silhouette`` (``OUTLINES``; needs ``spec`` and ``truth``) the observed jaw and face-oval points are the true
    face's occluding contour."""
    if outline not in OUTLINES:
        raise ValueError(f"unknown outline {outline!r}; use one of {OUTLINES}")
    images = torch.stack([item[keys.IMAGE] for item in items]).to(device)
    true_landmarks = torch.stack([item[keys.LANDMARKS] for item in items]).to(device)
    observed, dense_points = true_landmarks, None
    if dense_noise is not None or outline == "silhouette":
        scene = render_scene(spec, truth, None, dense=dense_noise is not None)
        dense_points = scene.dense2d
        if outline == "silhouette":
            observed, dense_points = slide_contour(spec.model, contour_candidates(spec.model), truth, scene.camera,
                                                   scene.landmarks2d, dense_points)
    landmarks = observed + landmark_noise.to(device)
    H, W = images.shape[-2:]
    dense_confidence = None
    if dense_noise is not None:
        dense_points = dense_points + dense_noise.to(device)
        dense_confidence = torch.ones_like(dense_points[..., 0])
    obs = Observations(image=images, landmarks=landmarks, confidence=torch.ones_like(landmarks[..., 0]),
                       face_mask=face_region_mask(landmarks, H, W, softness=MASK_SOFTNESS), dense=dense_points,
                       dense_confidence=dense_confidence)
    return obs, true_landmarks


def slider_pair_columns(model: MorphableModel, fitted: dict[str, Tensor], truth: dict[str, Tensor]
                        ) -> dict[str, Tensor]:
    """(B,) "<group>_lr_diff" and "<group>_overlap" (``losses.priors.slider_pair_stats``) of the fitted and, with
    "_true", the true sliders of every group with slider pairs (``scene.objective.model_slider_pairs``)."""
    columns = {}
    for name, pairs in model_slider_pairs(model).items():
        for suffix, values in (("", fitted[name]), ("_true", truth[name])):
            lopsided, overlap = slider_pair_stats(values, pairs)
            columns |= {f"{name}_lr_diff{suffix}": lopsided, f"{name}_overlap{suffix}": overlap}
    return columns


@torch.no_grad()
def score_faces(spec: SceneSpec, truth: dict[str, Tensor], fitted: dict[str, Tensor], true_landmarks: Tensor
                ) -> list[dict]:
    """Per-face scores (``FACE_FIELDS`` without face/status/error/seconds, plus "<group>_rmse_std" and the
    shape-weighted "<group>_rmse_shape", NaN for a group that does not move the face) of fitted against true
    parameters ({group: (B, K)} on the model's device) and (B, 68, 2) true landmarks. The parameter, vertex and
    pose errors are ``evaluation.parameters.recovery_errors`` in prior standard deviations (``prior_scales``)."""
    model = spec.model
    errors = recovery_errors(model, fitted, truth, prior_scales(model), alignments=ALIGNMENTS)
    raw, aligned, similarity = (errors.vertex_mm[a] for a in ("none", "rigid", "similarity"))  # (B, V_region)
    no_shape = torch.full_like(errors.rmse, math.nan)
    angles = matrix_to_euler(axis_angle_to_matrix(truth[POSE]))
    columns = {
        **{f"{a}_deg": angles[:, i] for i, a in enumerate(POSE_ANGLES)},
        "vertex_median_mm": raw.median(dim=1).values, "vertex_mean_mm": raw.mean(dim=1),
        "aligned_vertex_median_mm": aligned.median(dim=1).values, "aligned_vertex_mean_mm": aligned.mean(dim=1),
        "similarity_vertex_median_mm": similarity.median(dim=1).values,
        "similarity_vertex_mean_mm": similarity.mean(dim=1),
        **{f"{a}_error_deg": errors.pose_deg[a] for a in POSE_ANGLES}, "pose_error_deg": errors.pose_deg["geodesic"],
        "translation_error_mm": (fitted[TRANSLATION] - truth[TRANSLATION]).norm(dim=1) * MM_PER_M,
        **landmark_nme(render_scene(spec, fitted, None).landmarks2d, true_landmarks),
        **{f"{name}_rmse_std": value for name, value in errors.group_rmse.items()},
        **{f"{name}_rmse_shape": errors.group_shape_rmse.get(name, no_shape) for name in model.groups},
        **slider_pair_columns(model, fitted, truth),
    }
    return [{key: float(value[i]) for key, value in columns.items()} for i in range(len(true_landmarks))]


def evaluate_synthetic(spec: SceneSpec, renderer: MeshRenderer, estimate: Estimator, method: str, count: int,
                       seed: int = 0, landmark_noise: float = 0.0, batch_size: int = 8, worst: int = 6,
                       dense: bool = False, outline: str = "fixed",
                       on_batch: Callable[[int, int], None] | None = None) -> SyntheticEvaluation:
    """Render ``count`` synthetic faces, estimate their parameters and score the recovery.

    Args:
        spec: model (on the device to estimate on) and image size (the crop size of ``reconstruct``).
        renderer: renders the figures of the worst fits.
        estimate: fitting (``FittingEstimator``) or a regressor's one-pass prediction (``PredictionEstimator``).
        method: how the parameters are estimated, for the report.
        count: number of faces.
        seed: seed of the faces (``SyntheticFaces``) and of the landmark noise; the faces do not depend on
            ``batch_size``.
        landmark_noise: standard deviation in pixels of Gaussian noise on the observed landmarks.
        batch_size: faces fitted together.
        worst: how many of the worst fits to draw.
        dense: also observe the 468 dense landmarks (with the same noise level), as MediaPipe gives them.
        outline: the observed outline, one of ``OUTLINES`` (``observe``).
        on_batch: called as ``on_batch(faces done, count)`` after each batch.
    """
    device = spec.model.device
    # SyntheticFaces draws its parameters on the CPU, so it renders with a CPU copy of the model.
    data_spec = spec if device.type == "cpu" else replace(spec, model=copy.deepcopy(spec.model).cpu())
    faces = SyntheticFaces(data_spec, synthetic_sampler(), count, seed)
    generator = torch.Generator().manual_seed(NOISE_SEED + seed)
    noise = torch.randn(count, 68, 2, generator=generator) * landmark_noise
    dense_noise = torch.randn(count, face_mesh.NUM_MESH_POINTS, 2, generator=generator) * landmark_noise
    records: list[dict] = []
    fitted: dict[str, list[Tensor]] = {}
    for start in range(0, count, batch_size):
        indices = list(range(start, min(start + batch_size, count)))
        items = faces.__getitems__(indices)
        batch_truth = {name: torch.stack([item[keys.PARAMS][name] for item in items]).to(device)
                       for name in items[0][keys.PARAMS]}
        obs, true_landmarks = observe(items, noise[indices], device, dense_noise[indices] if dense else None, spec,
                                      batch_truth, outline)
        began = time.perf_counter()
        estimated = estimate(obs)
        seconds = (time.perf_counter() - began) / len(indices)
        for name, value in estimated.params.items():
            fitted.setdefault(name, []).append(value.cpu())
        for i, scores in zip(indices, score_faces(spec, batch_truth, estimated.params, true_landmarks)):
            error = estimated.errors[i - start]
            records.append({"face": f"synth_{i:04d}", "status": "failed" if error else "ok", "error": error,
                            **scores, "seconds": seconds})
        if on_batch is not None:
            on_batch(indices[-1] + 1, count)
    summary = summarise_faces(spec, records, method=method, seed=seed, landmark_noise=landmark_noise, dense=dense,
                              outline=outline)
    figures = draw_worst(spec, renderer, faces, {k: torch.cat(v) for k, v in fitted.items()}, records, worst)
    return SyntheticEvaluation(records, summary, figures)


def summarise_faces(spec: SceneSpec, records: list[dict], method: str, seed: int, landmark_noise: float,
                    dense: bool = False, outline: str = "fixed") -> dict:
    """Aggregate of ``score_faces`` records over the faces that did not fail (landmark CED counts failures)."""
    ok = [r for r in records if r["status"] == "ok"]

    def over_faces(key: str) -> dict:
        return statistics([r[key] for r in ok])

    vertex = {space: {"median_per_face": over_faces(f"{prefix}vertex_median_mm"),
                      "mean_per_face": over_faces(f"{prefix}vertex_mean_mm")}
              for space, (prefix, _) in VERTEX_SPACES.items()}
    target = similarity_target_mm(landmark_noise)
    similarity = vertex["similarity"]["median_per_face"].get("median", math.inf)
    return {
        "settings": {"model": spec.model.name, "faces": len(records), "image_size": list(spec.image_size),
                     "method": method, "seed": seed, "landmark_noise_px": landmark_noise, "dense_landmarks": dense,
                     "outline": outline,
                     "yaw_limit_deg": YAW_LIMIT_DEG, "face_region_vertices": int(spec.model.face_region.sum()),
                     "sampler": asdict(synthetic_sampler())},
        "counts": {"faces": len(records), "ok": len(ok), "failed": len(records) - len(ok)},
        "vertex_error_mm": vertex,
        "parameters_rmse_std": {name: over_faces(f"{name}_rmse_std") for name in spec.model.groups},
        "parameters_rmse_shape": {name: over_faces(f"{name}_rmse_shape") for name in spec.model.groups},
        "slider_pairs": {name: {key: over_faces(f"{name}_{key}") for key in SLIDER_PAIR_KEYS}
                         for name in model_slider_pairs(spec.model)},
        "pose_error_deg": {a: over_faces(f"{a}_error_deg") for a in POSE_ANGLES} | {
            "rotation": over_faces("pose_error_deg")},
        "translation_error_mm": over_faces("translation_error_mm"),
        "landmarks": landmark_summary(records),
        "seconds_per_face": over_faces("seconds"),
        "targets": {} if target is None else {"median per-vertex error, similarity (median over faces)": {
            "value": similarity, "target_mm": target, "met": similarity <= target}},
        "failures": [{"face": r["face"], "error": r["error"]} for r in records if r["status"] != "ok"],
    }


@torch.no_grad()
def draw_worst(spec: SceneSpec, renderer: MeshRenderer, faces: SyntheticFaces, fitted: dict[str, Tensor],
               records: list[dict], count: int) -> list[tuple[Image.Image, str]]:
    """Input | fit | overlay figures (``export.figures.side_by_side``, green = true landmarks, red = fitted) of the
    ``count`` faces with the largest similarity-aligned median vertex error (failed faces first); ``fitted`` is
    {group: (N, K)} on the CPU for all N faces."""
    ranked = sorted(range(len(records)), key=lambda i: (records[i]["status"] == "ok",
                                                        -records[i]["similarity_vertex_median_mm"]))[:count]
    if not ranked:
        return []
    items = faces.__getitems__(ranked)
    device = spec.model.device
    index = torch.tensor(ranked)
    scene = render_scene(spec, {k: v[index].to(device) for k, v in fitted.items()}, renderer)
    figures = []
    for j, (i, item) in enumerate(zip(ranked, items)):
        r = records[i]
        figure = side_by_side(item[keys.IMAGE], scene.render.image[j].cpu(), scene.render.mask[j].cpu(),
                              item[keys.LANDMARKS].numpy(), scene.landmarks2d[j].cpu().numpy())
        caption = (f"{r['face']}: {r['similarity_vertex_median_mm']:.2f} mm similarity aligned, "
                   f"{r['vertex_median_mm']:.2f} mm unaligned, yaw {r['yaw_deg']:+.0f} deg"
                   + (" (FAILED)" if r["status"] != "ok" else ""))
        figures.append((figure, caption))
    return figures
