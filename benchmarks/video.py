"""Video benchmark: a synthetic clip with known curves through the clip pipeline, per quality.

A random ICT face (``f2p.evaluation.synthetic_clip``: 8 sliders moving on smooth curves, head turning, light
drifting) is rendered at 640x480, encoded as H.264 and run through ``pipeline.video_run.ClipRun`` as
``reconstruct clip.mp4`` runs it. Landmarks: ``truth`` (default) hands each frame the projected model landmarks
(68 and 468 dense) plus Gaussian noise of ``--noise`` pixels, as a detector that errs by that much; ``auto`` (or
any detector name) runs that detector on the decoded frames.

Prints, per quality: mean absolute error of each moving slider (slider units; the target is <= 0.05), the mean
over the other 45 sliders, the identity's face-region error (mm, similarity-aligned, median over the region)
against single-photo fitting of frames of the same clip (each frame fitted alone with the same quality, identity
included; median over those frames, and the error of their mean identity: the keyframes' mean that the clip's joint
identity solve replaced), and frames per second of the whole clip (detection, keyframes, frames,
outputs) without and with overlay.mp4.

    python benchmarks/video.py [--frames 60] [--qualities fast default] [--landmarks truth|auto] [--noise 0.5]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from f2p.commands.threads import set_threads
from f2p.evaluation.synthetic_clip import MOVING_SLIDERS, encode_clip, identity_error_mm, slider_errors, synthetic_clip
from f2p.fitting.fitter import Fitter
from f2p.fitting.schedule import schedule_for
from f2p.morphable.registry import load_model
from f2p.perception.detectors import create_detector
from f2p.perception.photo import FaceLandmarks, align_sample
from f2p.pipeline.photo_run import observations
from f2p.pipeline.video_run import ClipOptions, ClipRun, detector_perceiver
from f2p.render.renderer import MeshRenderer
from f2p.scene.params import SceneSpec


def noisy_truth(clip, noise_px: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    landmarks = clip.landmarks + noise_px * torch.randn(clip.landmarks.shape, generator=g)
    dense = clip.dense + noise_px * torch.randn(clip.dense.shape, generator=g)

    def perceive(name: str, index: int, image: torch.Tensor) -> FaceLandmarks:
        return FaceLandmarks(landmarks[index], torch.ones(68), "truth+noise", (dense[index], torch.ones(468)))

    return perceive, landmarks, dense


def single_photo_identity_mm(model, renderer, clip, landmarks, dense, quality: str, count: int
                             ) -> tuple[float, float]:
    """Identity errors of fitting ``count`` frames each alone (a batch of independent fits; with every frame found
    they are the clip's keyframes): the median over the frames, and the error of their mean identity (what the
    clip's identity was before the joint solve)."""
    frames = np.unique(np.linspace(0, len(clip.frames) - 1, count).round().astype(int))
    stages = schedule_for(quality)
    needs = any(stage.needs_render for stage in stages)
    spec = SceneSpec(model, (224, 224))
    samples = [align_sample(str(i), clip.frames[i], landmarks[i], torch.ones(68), "truth", 224,
                            (dense[i], torch.ones(468)), needs) for i in frames]
    result = Fitter(spec, renderer if needs else None, stages).fit(observations(samples, None, model.device))
    identities = result.params["identity"]
    return (float(identity_error_mm(model, identities, clip).median()),
            float(identity_error_mm(model, identities.mean(0, keepdim=True), clip)[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--qualities", nargs="+", default=["fast", "default"])
    parser.add_argument("--landmarks", default="truth", help="truth (projected + noise) or a detector name")
    parser.add_argument("--noise", type=float, default=0.5, help="pixels of landmark noise with --landmarks truth")
    parser.add_argument("--smooth", type=float, default=1.0)
    parser.add_argument("--single", type=int, default=8, help="frames fitted alone for the single-photo comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    model, renderer = load_model("ict"), MeshRenderer()
    clip = synthetic_clip(model, renderer, args.frames, (height, width), seed=args.seed)
    names = model.groups["expression"].component_names
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        encode_clip(video, clip)
        if args.landmarks == "truth":
            perceive, landmarks, dense = noisy_truth(clip, args.noise, args.seed)
            source = f"projected model landmarks + {args.noise:g} px noise"
        else:
            perceive, landmarks, dense = detector_perceiver(create_detector(args.landmarks)), None, None
            source = f"detector {args.landmarks}"
        rows = []
        for quality in args.qualities:
            result = {}
            for overlay in (False, True):
                run = ClipRun(SceneSpec(model, (224, 224)), renderer, perceive,
                              ClipOptions(quality=quality, smooth=args.smooth, overlay=overlay))
                began = time.perf_counter()
                outcome = run.process(video, Path(tmp) / f"{quality}-{overlay}")
                seconds = time.perf_counter() - began
                if outcome.status != "ok":
                    raise SystemExit(f"{quality}: {outcome.error}")
                result[overlay] = (outcome, seconds)
            outcome, seconds = result[False]
            data = np.load(outcome.out_dir / "frames.npz")
            errors = slider_errors(data["expression"], clip, names)
            still = [k for k in range(len(names)) if k not in clip.moving]
            still_mae = float(np.abs(data["expression"][:, still]).mean())
            clip_mm = float(identity_error_mm(model, torch.from_numpy(data["identity"])[None].float(), clip)[0])
            single_mm, mean_mm = (single_photo_identity_mm(model, renderer, clip, landmarks, dense, quality,
                                                           args.single)
                                  if landmarks is not None else (float("nan"), float("nan")))
            rows.append((quality, errors, still_mae, clip_mm, single_mm, mean_mm, args.frames / seconds,
                         args.frames / result[True][1], int(data["found"].sum())))
    print(f"\nclip: {args.frames} frames {width}x{height} at 30 fps, ICT seed {args.seed}, landmarks: {source}, "
          f"smoothing sigma {args.smooth:g} frames; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| quality | " + " | ".join(MOVING_SLIDERS) + " | moving mean | still sliders | identity mm (clip) "
          "| identity mm (single photo) | identity mm (mean of single photos) | fps | fps with overlay "
          "| frames found |")
    print("|" + " --- |" * (len(MOVING_SLIDERS) + 10))
    for quality, errors, still_mae, clip_mm, single_mm, mean_mm, fps, fps_overlay, found in rows:
        values = " | ".join(f"{errors[n]:.3f}" for n in MOVING_SLIDERS)
        print(f"| {quality} | {values} | {np.mean(list(errors.values())):.3f} | {still_mae:.3f} | {clip_mm:.2f} "
              f"| {single_mm:.2f} | {mean_mm:.2f} | {fps:.1f} | {fps_overlay:.1f} | {found}/{args.frames} |")


if __name__ == "__main__":
    main()
