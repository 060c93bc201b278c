"""One clip (a video file or a folder of frames) into ``out_dir``: per-frame parameters with one shared identity.

Steps, each resumable (``ClipProgress``):

1. Detect: every frame is decoded (``perception.video.Clip``) and perceived (``FramePerceiver``: the detector of
   ``reconstruct --landmarks``, MediaPipe's dense mesh with ``auto``); a frame without a usable face is recorded as
   not found, with its reason. A clip with no face in any frame fails.
2. Identity: ``ClipOptions.keyframes`` found frames spread evenly over the clip are fitted together with the
   quality's full schedule (``fitting.schedule.schedule_for``), leaving out keyframes whose final landmark loss
   exceeds ``OUTLIER_FACTOR`` times the keyframes' median (a blink or a badly detected frame); from those fits,
   one identity is solved for all of them jointly with each keyframe's pose and expression on their landmarks
   (``fitting.shared_identity``: the multi-view MAP estimate, the prior counted once; ``JOINT_ITERATIONS``
   Levenberg-Marquardt steps of the schedule's last landmark stage). ``best``, which has no such stage, takes
   the keyframes' mean identity; the appearance groups are the keyframes' mean at every quality.
3. Frames: the found frames are fitted in order, in batches of ``ClipOptions.batch_size``, with the identity
   frozen (``frame_stages``: the schedule without the ``identity`` group, a weaker prior, no slider-pair term, no
   rigid stage after the first batch); every frame of a batch starts from the parameters of the last frame
   fitted before it (expression, pose, light, colour), the first batch from the mean face.
4. Curves: each frame's head rotation, translation and camera are taken into the video's own camera
   (``scene.uncrop``: the crops rotate and scale with the face, the video does not); frames without a face are
   bridged and the head rotation, translation, camera and every per-frame model group (expression, a jaw) are
   smoothed (``pipeline.temporal``, ``ClipOptions.smooth`` frames).
5. Outputs (``export.video``, ``export.gltf_animation``): frames.npz, frames.csv, head.glb, overlay.mp4, and
   ``clip.json`` last, the completion marker.

Resume: ``out_dir/progress/`` holds the settings it was made with, the detections, the identity and one file per
fitted frame, each written atomically; a rerun with the same clip (path and SHA-256) and settings continues after
the last fitted frame, anything else starts the clip again. It is removed once ``clip.json`` is written.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from f2p.atomic import atomic_writer
from f2p.conventions import MODEL_TO_OPENCV
from f2p.export.arkit import ARKIT_NAMES, arkit_map, arkit_weights
from f2p.export.figures import blend
from f2p.export.gltf import morph_weights
from f2p.export.gltf_animation import quaternions_xyzw, write_animated_head_glb
from f2p.export.photo import PhotoOutcome
from f2p.export.video import overlay_video, write_frames_csv, write_npz
from f2p.fitting.fitter import Fitter
from f2p.fitting.schedule import Stage, schedule_for
from f2p.fitting.shared_identity import fit_shared_identity
from f2p.morphable.base import MeshOutput
from f2p.naming import source_record
from f2p.perception.align import apply_affine
from f2p.perception.crop import CROP_SIZE
from f2p.perception.detection import LandmarkDetector
from f2p.perception.photo import FaceLandmarks, PhotoError, PhotoSample, align_sample, detect_landmarks
from f2p.perception.video import Clip, VideoError
from f2p.pipeline.photo_run import Settings, observations
from f2p.pipeline.temporal import bridge, bridge_rotations, smooth, smooth_rotations
from f2p.quality import DEFAULT_QUALITY
from f2p.render.cameras import PinholeCamera
from f2p.render.renderer import MeshRenderer
from f2p.render.rotations import (axis_angle_to_matrix, matrix_to_euler, matrix_to_quaternion,
                                  quaternion_to_axis_angle)
from f2p.scene.compose import face_triangles, scene_camera, scene_colors
from f2p.scene.params import LIGHT, LOG_FOCAL, POSE, SMOOTH_COLOR, TRANSLATION, VERTEX_COLOR, SceneSpec
from f2p.scene.uncrop import uncrop_camera

log = logging.getLogger("f2p")

FramePerceiver = Callable[[str, int, Tensor], FaceLandmarks]
"""(frame name, frame index, (3, H, W) frame) -> the face's landmarks in frame pixels, raising ``PhotoError`` when
it has no usable face (``detector_perceiver``; the synthetic benchmark hands out known landmarks instead)."""
SHARED_GROUP = "identity"
"""The model group one clip shares over all its frames."""
SHARED_APPEARANCE = (VERTEX_COLOR,)
"""Groups too large to keep per frame: every frame uses the keyframes' mean (only ``best`` quality fits them)."""
FRAME_APPEARANCE = (LIGHT, SMOOTH_COLOR)
"""Scene groups kept per frame besides the head's pose and camera: bridged, not smoothed."""
DONE_MARKER = "clip.json"
PROGRESS = "progress"
OUTLIER_FACTOR = 3.0
"""A keyframe whose landmark loss exceeds this multiple of the keyframes' median does not vote on the identity."""
FRAME_PRIOR_SCALE = 0.25
"""Multiplies the prior's weight in the per-frame fits (the smoothing regularises the curves over time), where the
slider-pair term is off as well. Synthetic clip (``benchmarks/video.py --frames 30``, fast, 0.5 px noise): moving
sliders' MAE 0.049 with the photo weights, 0.040 without the slider-pair term (it pulls sliders that move apart,
a left and a right blink, together), 0.031 with the prior weakened 4x as well, 0.029 at 10x; the 45 still sliders
0.019, 0.019, 0.024, 0.028 (the bias left is the prior's shrinkage and ICT's correlated shapes)."""
OVERLAY_RENDER_SCALE = 0.5
"""overlay.mp4's render is drawn at this fraction of the video's size and upsampled (bilinear) onto the frame:
on the 30-frame 640x480 benchmark clip 1.5-2.7 s for the overlay instead of 4.2-4.9 s at full size (loaded 2-core
machine), the frames differing by 0.011 on average inside the render (0.08 at the 99th percentile: its edges)."""
COLOR_GROUPS = (SMOOTH_COLOR, VERTEX_COLOR)
"""Colour offsets, zero where the schedule does not fit them (``fast``)."""
HEAD_GROUPS = (POSE, TRANSLATION, LOG_FOCAL)
"""Scene groups that move only the head: a stage training nothing else is skipped for continuing frames."""
DEFAULT_SMOOTH = 1.0
"""Default smoothing strength: the Gaussian's standard deviation in frames."""
DEFAULT_KEYFRAMES = 8
JOINT_ITERATIONS = 5
"""Linear solves at most of the keyframes' joint identity solve (``fitting.shared_identity``): 3 reach 0.223 mm on
the 30-frame benchmark clip, 10 0.222 mm."""
NO_FACE_BORDER = 6
"""Pixels of the red frame drawn around overlay frames where no face was found (and nothing is rendered)."""
NO_FACE_COLOR = (0.9, 0.1, 0.1)
LANDMARK_STORE = {"landmarks": (68, 2), "confidence": (68,), "dense": (468, 2), "dense_confidence": (468,)}
"""Per-frame detection arrays kept in progress/detections.npz (NaN rows for frames without a face or dense mesh)."""


@dataclass(frozen=True)
class ClipOptions:
    """How a clip is fitted.

    Attributes:
        quality: ``f2p.quality`` level of every fit (keyframes and frames).
        smooth: Gaussian smoothing of the curves, standard deviation in frames (0: off).
        keyframes: frames fitted together for the shared identity.
        batch_size: frames fitted together after that.
        crop_size: side of the aligned crop.
        overlay: write overlay.mp4.
        sliding_contour: fit the outline points to the model's silhouette (``Fitter``'s ``sliding_contour``), in
            the keyframes, the joint identity solve and the frames.
    """

    quality: str = DEFAULT_QUALITY
    smooth: float = DEFAULT_SMOOTH
    keyframes: int = DEFAULT_KEYFRAMES
    batch_size: int = 8
    crop_size: int = CROP_SIZE
    overlay: bool = True
    sliding_contour: bool = False

    def settings(self) -> Settings:
        """What of these options changes the results (recorded and compared on resume)."""
        return {"quality": self.quality, "smooth": self.smooth, "keyframes": self.keyframes,
                "batch_size": self.batch_size, "crop_size": self.crop_size, "sliding_contour": self.sliding_contour}


def clip_line(outcome: PhotoOutcome) -> str:
    """One console line per clip: ``ok     clip.mp4: 240 frames (3 without a face), 12.3 frames/s`` or
    ``FAILED path: reason``."""
    if outcome.status != "ok":
        return f"FAILED {outcome.path}: {outcome.error}"
    m = outcome.metrics
    missing = m["frames"] - m["frames_found"]
    return (f"ok     {Path(outcome.path).name}: {m['frames']} frames ({missing} without a face), "
            f"{m['frames_per_second']:.1f} frames/s")


def detector_perceiver(detector: LandmarkDetector) -> FramePerceiver:
    """Frames perceived by ``detector`` (its largest face), as photos are (``perception.photo.detect_landmarks``)."""

    def perceive(name: str, index: int, image: Tensor) -> FaceLandmarks:
        return detect_landmarks(name, image, detector)

    return perceive


def frozen(stages: list[Stage], group: str) -> list[Stage]:
    """``stages`` with ``group`` trained by none of them."""
    return [replace(stage, groups=[g for g in stage.groups if g != group]) for stage in stages]


def frame_stages(stages: list[Stage], continuing: bool) -> list[Stage]:
    """The per-frame schedule: ``stages`` with the identity frozen, the prior weakened by ``FRAME_PRIOR_SCALE``
    and no slider-pair term (``symmetry``); for frames that start from a fitted frame (``continuing``), without
    the stages that move only the head (a rigid stage: the next stage fits the pose with the rest)."""
    stages = [replace(stage, weights={**stage.weights, "symmetry": 0.0,
                                      "prior": FRAME_PRIOR_SCALE * stage.weights.get("prior", 0.0)})
              for stage in frozen(stages, SHARED_GROUP)]
    if continuing:
        stages = [stage for stage in stages if not set(stage.groups) <= set(HEAD_GROUPS)]
    return stages


def joint_stage(stages: list[Stage]) -> Stage | None:
    """The last Levenberg-Marquardt stage of ``stages`` that fits the shared identity (the joint solve's
    weights and groups), or None (``best``: Adam throughout)."""
    return next((s for s in reversed(stages) if s.solver == "lm" and SHARED_GROUP in s.groups), None)


def keyframe_indices(found: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` indices of found frames, spread evenly over them (first and last included)."""
    frames = np.flatnonzero(found)
    if len(frames) <= count:
        return frames
    return frames[np.unique(np.round(np.linspace(0, len(frames) - 1, count)).astype(int))]


def robust_mean(values: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the (N, K) rows whose (N,) loss is within ``OUTLIER_FACTOR`` x the median; the (N,) bool rows used."""
    used = losses <= OUTLIER_FACTOR * losses.median()
    return values[used].mean(0), used


class ClipProgress:
    """The resumable state of one clip in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, record: dict) -> None:
        self.folder = folder
        marker = folder / "settings.json"
        try:
            same = json.loads(marker.read_text()) == record
        except (OSError, ValueError):
            same = False
        if not same:
            if folder.exists():
                log.info("starting %s again: its progress was made from another clip or other settings", folder)
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            with atomic_writer(marker) as handle:
                handle.write(json.dumps(record).encode("utf-8"))

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of ``name``.npz, or None when it is missing or unreadable."""
        try:
            with np.load(self.folder / f"{name}.npz", allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError):
            return None

    def save(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        write_npz(self.folder / f"{name}.npz", arrays)

    @staticmethod
    def frame_name(index: int) -> str:
        return f"frame_{index:06d}"


@dataclass(frozen=True)
class Detections:
    """The clip's frames as perceived (N frames).

    Attributes:
        times: (N,) seconds; found: (N,) bool; reasons: N one-line reasons ("" where found).
        arrays: {``LANDMARK_STORE`` key: (N, ...)} photo-pixel landmarks and confidences, NaN where absent.
        sources: N detector names; size: (H, W) of the frames.
    """

    times: np.ndarray
    found: np.ndarray
    reasons: list[str]
    arrays: dict[str, np.ndarray]
    sources: list[str]
    size: tuple[int, int]

    def sample(self, name: str, index: int, image: Tensor, crop_size: int, mask: bool) -> PhotoSample:
        """Frame ``index`` (its decoded (3, H, W) ``image``) aligned from its stored landmarks (``align_sample``)."""
        a = {key: torch.from_numpy(value[index]).float() for key, value in self.arrays.items()}
        dense = None if torch.isnan(a["dense"]).any() else (a["dense"], a["dense_confidence"])
        return align_sample(name, image, a["landmarks"], a["confidence"], self.sources[index], crop_size, dense,
                            mask)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"times": self.times, "found": self.found, "reasons": np.array(self.reasons, dtype=str),
                "sources": np.array(self.sources, dtype=str), "size": np.array(self.size), **self.arrays}

    @staticmethod
    def from_arrays(data: dict[str, np.ndarray]) -> Detections:
        return Detections(data["times"], data["found"].astype(bool), [str(r) for r in data["reasons"]],
                          {key: data[key] for key in LANDMARK_STORE}, [str(s) for s in data["sources"]],
                          tuple(int(v) for v in data["size"]))


class ClipRun:
    """Fits clips and writes their outputs (see the module docstring).

    Args:
        spec: scene specification (model, crop size) on the device to fit on.
        renderer: renders the shading stages and the overlay.
        perceive: frame -> aligned sample (``FramePerceiver``).
        options: how clips are fitted.
        settings: the run's other result-changing options (model, landmarks, ...), recorded with the clip's.
    """

    def __init__(self, spec: SceneSpec, renderer: MeshRenderer, perceive: FramePerceiver,
                 options: ClipOptions = ClipOptions(), settings: Settings | None = None) -> None:
        self.spec = spec
        self.renderer = renderer
        self.perceive = perceive
        self.options = options
        self.settings = {**(settings or {}), **options.settings()}
        stages = schedule_for(options.quality)
        self.renders = any(stage.needs_render for stage in stages)
        fit_renderer = renderer if self.renders else None  # a landmark-only schedule renders nothing
        sliding = options.sliding_contour
        self.keyframe_fitter = Fitter(spec, fit_renderer, stages, sliding_contour=sliding)
        self.first_fitter = Fitter(spec, fit_renderer, frame_stages(stages, continuing=False), sliding_contour=sliding)
        self.frame_fitter = Fitter(spec, fit_renderer, frame_stages(stages, continuing=True), sliding_contour=sliding)
        self.joint_stage = joint_stage(stages)
        self.unfitted_colors = [g for g in COLOR_GROUPS if not any(g in stage.groups for stage in stages)]
        self.overlay_faces = face_triangles(spec.model)
        self.arkit = arkit_map(spec.model)

    def process(self, path: Path, out_dir: Path, fps: float | None = None) -> PhotoOutcome:
        """Fit one clip into ``out_dir``; its outcome ("failed" with one line for a clip that cannot be decoded,
        has no frames or no face in any frame)."""
        try:
            clip = Clip(path, fps)
            record = {"source": self._source(path), "settings": {**self.settings, "fps": clip.fps}}
            done = self._completed(path, out_dir, record)
            if done is not None:
                return done
            began = time.perf_counter()
            progress = ClipProgress(out_dir / PROGRESS, record)
            detections = self._detections(clip, progress)
            shared, keyframes = self._identity(clip, detections, progress)
            self._fit_frames(clip, detections, shared, progress)
            metrics = self._write_outputs(clip, detections, shared, progress, out_dir)
            metrics["keyframes"] = keyframes.tolist()
        except (VideoError, PhotoError) as error:
            return PhotoOutcome(str(path), "failed", error.reason, {})
        except OSError as error:
            return PhotoOutcome(str(path), "failed", f"cannot write its outputs: {error.strerror or error}", {})
        metrics = {**metrics, "seconds": time.perf_counter() - began, **record}
        metrics["frames_per_second"] = metrics["frames"] / metrics["seconds"]
        with atomic_writer(out_dir / DONE_MARKER) as handle:
            handle.write(json.dumps(metrics, indent=2).encode("utf-8"))
        shutil.rmtree(out_dir / PROGRESS, ignore_errors=True)
        return PhotoOutcome(str(path), "ok", "", metrics, out_dir)

    @staticmethod
    def _source(path: Path) -> dict:
        if path.is_file():
            return source_record(path)
        files = sorted(p.name for p in path.iterdir())
        return {"path": str(path.resolve()), "frames": files, "mtime": max(p.stat().st_mtime for p in path.iterdir())}

    @staticmethod
    def _completed(path: Path, out_dir: Path, record: dict) -> PhotoOutcome | None:
        try:
            metrics = json.loads((out_dir / DONE_MARKER).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(metrics, dict) or any(metrics.get(k) != v for k, v in record.items()):
            return None
        return PhotoOutcome(str(path), "ok", "", metrics, out_dir)

    def _detections(self, clip: Clip, progress: ClipProgress) -> Detections:
        stored = progress.load("detections")
        if stored is not None:
            detections = Detections.from_arrays(stored)
        else:
            times, found, reasons, sources, size = [], [], [], [], (0, 0)
            arrays = {key: [] for key in LANDMARK_STORE}
            for frame in tqdm(clip.frames(), total=clip.frame_count, desc=f"{clip.name}: detecting", unit="frame",
                              disable=None, leave=False):
                size = tuple(frame.image.shape[-2:])
                times.append(frame.time)
                values = {key: np.full(shape, np.nan, np.float32) for key, shape in LANDMARK_STORE.items()}
                try:
                    face = self.perceive(f"{clip.path}#{frame.index}", frame.index, frame.image)
                    values["landmarks"], values["confidence"] = face.landmarks.numpy(), face.confidence.numpy()
                    if face.dense is not None:
                        values["dense"], values["dense_confidence"] = (face.dense[0].numpy(), face.dense[1].numpy())
                    found.append(True), reasons.append(""), sources.append(face.source)
                except PhotoError as error:
                    found.append(False), reasons.append(error.reason), sources.append("")
                for key, value in values.items():
                    arrays[key].append(value)
            detections = Detections(np.array(times), np.array(found, dtype=bool), reasons,
                                    {key: np.stack(value) for key, value in arrays.items()}, sources, size)
            progress.save("detections", detections.to_arrays())
        if not detections.found.any():
            raise VideoError(clip.path, f"no face found in any of its {len(detections.found)} frames "
                                        f"({detections.reasons[0]})")
        missing = int((~detections.found).sum())
        if missing:
            log.info("%s: no face in %d of %d frames; their values are bridged (found = 0 in frames.npz)",
                     clip.name, missing, len(detections.found))
        return detections

    def _samples(self, clip: Clip, detections: Detections, indices: set[int]):
        """(index, aligned sample) of the frames ``indices``, in order, decoding the clip again."""
        for frame in clip.frames():
            if frame.index in indices:
                yield frame.index, detections.sample(f"{clip.path}#{frame.index}", frame.index, frame.image,
                                                     self.options.crop_size, self.renders)

    def _identity(self, clip: Clip, detections: Detections, progress: ClipProgress
                  ) -> tuple[dict[str, Tensor], np.ndarray]:
        """{group: (1, K)} the keyframes' robust mean of every group (the clip's identity, its mean appearance),
        and the indices of the keyframes that voted."""
        stored = progress.load("identity")
        device = self.spec.model.device
        if stored is None:
            keys = keyframe_indices(detections.found, self.options.keyframes)
            samples = [sample for _, sample in self._samples(clip, detections, set(keys.tolist()))]
            obs = observations(samples, None, device)
            result = self.keyframe_fitter.fit(obs)
            usable = ~result.failed
            if not usable.any():
                raise VideoError(clip.path, "the fit of every keyframe diverged")
            mean_params, used = {}, None
            for name, value in result.params.items():
                mean_params[name], used = robust_mean(value[usable], result.losses["landmark"][usable])
            rows = usable.nonzero()[:, 0][used]
            if self.joint_stage is not None and len(rows) > 1:
                views = {g: v[rows] for g, v in result.params.items()}
                joint = fit_shared_identity(self.spec, obs.select(rows), views, self.joint_stage, SHARED_GROUP,
                                            JOINT_ITERATIONS, self.keyframe_fitter.objective.contour)
                mean_params[SHARED_GROUP] = joint.params[SHARED_GROUP][0]
            stored = {name: value.cpu().numpy() for name, value in mean_params.items()}
            stored["keyframes"] = keys[rows.cpu().numpy()]
            progress.save("identity", stored)
        shared = {name: torch.from_numpy(value)[None].float().to(device) for name, value in stored.items()
                  if name != "keyframes"}
        return shared, stored["keyframes"]

    def _fit_frames(self, clip: Clip, detections: Detections, shared: dict[str, Tensor],
                    progress: ClipProgress) -> None:
        """Fit every found frame without a progress file, batch by batch, each from the last one fitted."""
        found = np.flatnonzero(detections.found)
        done = [i for i in found if progress.load(progress.frame_name(i)) is not None]
        todo = [int(i) for i in found if i not in set(done)]
        previous = None
        bar = tqdm(total=len(found), initial=len(done), desc=f"{clip.name}: fitting", unit="frame", disable=None,
                   leave=False)
        batch: list[tuple[int, PhotoSample]] = []
        for index, sample in self._samples(clip, detections, set(todo)):
            if previous is None:
                before = [i for i in done if i < index]
                previous = self._frame_params(progress, before[-1]) if before else None
            batch.append((index, sample))
            if len(batch) == self.options.batch_size or index == todo[-1]:
                previous = self._fit_batch(batch, shared, previous, progress)
                bar.update(len(batch))
                batch = []
        bar.close()

    def _frame_params(self, progress: ClipProgress, index: int) -> dict[str, Tensor]:
        data = progress.load(progress.frame_name(index))
        device = self.spec.model.device
        return {name[len("param_"):]: torch.from_numpy(value)[None].to(device) for name, value in data.items()
                if name.startswith("param_")}

    def _fit_batch(self, batch: list[tuple[int, PhotoSample]], shared: dict[str, Tensor],
                   previous: dict[str, Tensor] | None, progress: ClipProgress) -> dict[str, Tensor]:
        """Fit a batch of frames from ``previous`` ({group: (1, K)}, or None for the mean face), write their
        progress files; the last frame's parameters."""
        samples = [sample for _, sample in batch]
        B = len(samples)
        obs = observations(samples, None, self.spec.model.device)
        start = self.spec.initial(B, obs.landmarks) if previous is None else {
            name: value.expand(B, -1).clone() for name, value in previous.items()}
        for group in (SHARED_GROUP, *SHARED_APPEARANCE):
            if group in shared:
                start[group] = shared[group].expand(B, -1).clone()
        result = (self.first_fitter if previous is None else self.frame_fitter).fit(obs, init=start)
        fitted = result.scene.landmarks2d.cpu()
        for i, (index, sample) in enumerate(batch):
            photo_landmarks = apply_affine(sample.to_photo[None], fitted[i:i + 1])[0]
            rmse = ((photo_landmarks - sample.landmarks) ** 2).sum(-1).mean().sqrt()
            arrays = {f"param_{name}": value[i].cpu().numpy() for name, value in result.params.items()
                      if name not in SHARED_APPEARANCE}
            arrays.update(to_photo=sample.to_photo.numpy(), landmark_rmse_px=np.array(float(rmse)),
                          failed=np.array(bool(result.failed[i])))
            progress.save(progress.frame_name(index), arrays)
        return {name: value[-1:] for name, value in result.params.items()}

    @torch.no_grad()
    def _write_outputs(self, clip: Clip, detections: Detections, shared: dict[str, Tensor], progress: ClipProgress,
                       out_dir: Path) -> dict:
        """Bridge, smooth and write frames.npz, frames.csv, head.glb and overlay.mp4; the clip's metrics."""
        model, device = self.spec.model, self.spec.model.device
        found = detections.found.copy()
        frames = {int(i): progress.load(progress.frame_name(int(i))) for i in np.flatnonzero(found)}
        for i, data in frames.items():
            found[i] = not bool(data["failed"])
        if not found.any():
            raise VideoError(clip.path, "the fit of every frame diverged")
        N = len(found)
        names = sorted(k[len("param_"):] for k in next(iter(frames.values())) if k.startswith("param_"))
        raw = {name: np.full((N, frames[next(iter(frames))][f"param_{name}"].size), np.nan) for name in names}
        for i, data in frames.items():
            for name in names:
                raw[name][i] = data[f"param_{name}"]
        rows = np.flatnonzero(found)
        params = {name: torch.from_numpy(raw[name][rows]).float().to(device) for name in names}
        to_photo = torch.from_numpy(np.stack([frames[int(i)]["to_photo"] for i in rows])).float().to(device)
        camera = uncrop_camera(scene_camera(self.spec, params), to_photo, detections.size)
        flip = MODEL_TO_OPENCV.to(device)
        head = flip.T @ camera.R  # (F, 3, 3) R_head as the video's camera sees it
        quaternions = np.zeros((N, 4))
        quaternions[rows] = matrix_to_quaternion(head).double().cpu().numpy()  # (w, x, y, z)
        camera_values = np.zeros((N, 6))
        camera_values[rows] = torch.stack([camera.fx, camera.cx, camera.cy, *camera.t.T], 1).double().cpu().numpy()
        sigma = self.options.smooth
        rotation = smooth_rotations(bridge_rotations(quaternions, found), sigma)
        cameras = smooth(bridge(camera_values, found), sigma)
        model_groups = [g for g in names if g in model.groups and g != SHARED_GROUP]
        curves = {g: smooth(bridge(raw[g], found), sigma) for g in model_groups}
        for g in model_groups:
            group = model.groups[g]
            if group.bounded:
                curves[g] = np.clip(curves[g], np.asarray(group.lower), np.asarray(group.upper))
        appearance = {g: bridge(raw[g], found) for g in FRAME_APPEARANCE if g in raw}
        head_matrices = axis_angle_to_matrix(quaternion_to_axis_angle(torch.from_numpy(rotation)))
        ypr = matrix_to_euler(head_matrices).numpy()  # (N, 3) degrees
        per_frame = [{g: torch.from_numpy(curves[g][i]).float() for g in model_groups} for i in range(N)]
        weights = np.stack([morph_weights(model, p) for p in per_frame])  # (N, K)
        arkit = np.stack([[w[name] for name in ARKIT_NAMES] for w in
                          (arkit_weights(model, p, self.arkit) for p in per_frame)])  # (N, 52)
        identity = {SHARED_GROUP: shared[SHARED_GROUP][0]}
        write_npz(out_dir / "frames.npz", {
            "times": detections.times, "found": found, "fps": np.array(clip.fps),
            SHARED_GROUP: shared[SHARED_GROUP][0].cpu().numpy(),
            **{g: curves[g] for g in model_groups}, **{f"{g}_raw": raw[g] for g in model_groups},
            "head_quaternion": rotation, "head_yaw_pitch_roll_deg": ypr, "head_axis_angle":
                quaternion_to_axis_angle(torch.from_numpy(rotation)).numpy(),
            "translation": cameras[:, 3:], "camera_fx": cameras[:, 0], "camera_cx": cameras[:, 1],
            "camera_cy": cameras[:, 2], "arkit": arkit, "morph_weights": weights,
            **{g: appearance[g] for g in appearance}})
        write_frames_csv(out_dir / "frames.csv", detections.times, clip.fps, arkit, np.radians(ypr))
        colors = self._colors(shared)
        times = detections.times if np.all(np.diff(detections.times) > 0) else np.arange(N) / clip.fps
        write_animated_head_glb(out_dir / "head.glb", model, identity, times, weights, quaternions_xyzw(
            torch.from_numpy(rotation)), colors[0].cpu())
        if self.options.overlay:
            self._write_overlay(clip, out_dir, detections.size, found, head_matrices, cameras, curves, appearance,
                                shared)
        rmse = [float(frames[int(i)]["landmark_rmse_px"]) for i in rows]
        return {"frames": N, "frames_found": int(found.sum()), "frames_missing": np.flatnonzero(~found).tolist(),
                "landmark_rmse_px": float(np.mean(rmse)), "fps": clip.fps, "method": "fitting"}

    def _colors(self, params: dict[str, Tensor], mesh: MeshOutput | None = None) -> Tensor:
        """(B, V, 3) display colours of ``params`` on ``mesh`` (the parameters' neutral head when None); colour
        groups the schedule leaves at zero are left out (the same colours, without building their bases)."""
        if mesh is None:
            mesh = self.spec.model(**{g: v for g, v in params.items() if g in self.spec.model.groups})
        fitted = {g: v for g, v in params.items() if g not in self.unfitted_colors}
        return scene_colors(self.spec, fitted, mesh)

    def _write_overlay(self, clip: Clip, out_dir: Path, size: tuple[int, int], found: np.ndarray, head: Tensor,
                       cameras: np.ndarray,
                       curves: dict[str, np.ndarray], appearance: dict[str, np.ndarray],
                       shared: dict[str, Tensor]) -> None:
        """overlay.mp4: each frame with the fitted face (``scene.compose.face_triangles``, the fitted region: 0.6x
        the cost of the whole head; rendered at ``OVERLAY_RENDER_SCALE``) blended over it; frames without a face
        get a red border."""
        model, device = self.spec.model, self.spec.model.device
        flip = MODEL_TO_OPENCV.to(device)
        H, W = size
        small = (max(1, round(H * OVERLAY_RENDER_SCALE)), max(1, round(W * OVERLAY_RENDER_SCALE)))
        with overlay_video(out_dir / "overlay.mp4", clip.fps, size) as video:
            for frame in clip.frames():
                i = frame.index
                image = frame.image.to(device)
                if not found[i]:
                    image = image.clone()
                    border = torch.tensor(NO_FACE_COLOR, device=device)[:, None, None]
                    b = NO_FACE_BORDER
                    for region in (image[:, :b], image[:, -b:], image[:, :, :b], image[:, :, -b:]):
                        region.copy_(border.expand_as(region))
                    video.write(image)
                    continue
                params = {g: shared[g] for g in (SHARED_GROUP, *SHARED_APPEARANCE) if g in shared}
                params |= {g: torch.from_numpy(v[i:i + 1]).float().to(device) for g, v in curves.items()}
                params |= {g: torch.from_numpy(v[i:i + 1]).float().to(device) for g, v in appearance.items()}
                mesh = model(**{g: v for g, v in params.items() if g in model.groups})
                fx, cx, cy, *t = (torch.tensor([v], dtype=torch.float32, device=device) for v in cameras[i])
                sy, sx = small[0] / H, small[1] / W  # the pixel-centre rule x' = (x + 0.5) s - 0.5
                camera = PinholeCamera(fx=fx * sx, fy=fx * sy, cx=(cx + 0.5) * sx - 0.5, cy=(cy + 0.5) * sy - 0.5,
                                       R=flip @ head[i:i + 1].float().to(device), t=torch.cat(t)[None],
                                       image_size=small)
                render = self.renderer(mesh.verts, self.overlay_faces, camera, self.spec.lighting(params),
                                       colors=self._colors(params, mesh))
                layers = torch.cat([render.image, render.mask], 1)  # (1, 4, h, w)
                if small != (H, W):
                    layers = F.interpolate(layers, size=(H, W), mode="bilinear", align_corners=False)
                video.write(blend(image.cpu(), layers[0, :3].cpu(), layers[0, 3:].clamp(0, 1).cpu()))


__all__ = ["ClipOptions", "ClipRun", "FramePerceiver", "clip_line", "detector_perceiver", "frame_stages", "joint_stage",
           "keyframe_indices", "robust_mean"]
