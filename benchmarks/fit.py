"""Benchmark the default `reconstruct` pipeline, stage by stage, on photos of the shared face set.

    python benchmarks/fit.py                      # 8 photos fitted as one batch (reconstruct's default), 224 px
    python benchmarks/fit.py --quick              # 2 photos, a tenth of the steps: checks the script only
    python benchmarks/fit.py --quality fast       # the Levenberg-Marquardt landmark stages only (also best)
    python benchmarks/fit.py --quality instant    # the shipped landmark network, then its two solver iterations
    python benchmarks/fit.py --quality fast --outputs data   # without the pictures and head.glb (reconstruct --outputs)
    python benchmarks/fit.py --quality fast --outputs data --no-identity   # nothing rendered at all
    python benchmarks/fit.py --photos 32 --batch-size 32 --device cuda   # the GPU target: 32 photos in one batch

Stages timed: image load, landmark detection, crop + mask, identity embedding of the crops, each fitting stage,
the final full-resolution evaluation of the fit, and export (renders in crop and photo pixels, metrics, files,
summary.csv and the results page), through reconstruct's own pieces (``perception.photo``, ``FittingEstimator``,
``pipeline.PhotoRun.export``).
Model, detector and embedder loading and a warm-up on one photo (first-call costs) are reported once per run
("setup"), outside the per-photo total. Photos are the shared face set's images in name order, repeated when more
are asked for than it has; outputs go to a temporary folder. The table shows seconds per photo per stage; the last
line is ``seconds_per_photo: <x>`` (everything but setup, divided by the photos fitted).

Targets of the fitting issue at 224 x 224 on the 2-core CPU, detection included: ``--quality fast`` <= 0.1 s and
``default`` <= 1.0 s per photo (``best`` reported); on a GPU a batch of 32 photos at default quality in <= 2 s.
The table shows export apart, so the fit's share can be read alone. Nothing here asserts a time. Threads: ``--threads auto`` (the default) chooses them
as ``reconstruct`` does (``f2p.commands.threads``: usable cores minus the machine's load, 1 when other work fills
the cores); ``--threads N`` fixes them. Data: ``$F2P_DATA_PATH/faces`` (default
``../shared/data/faces`` beside the repository); models: ``$F2P_MODEL_PATH``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK_STEPS_SCALE = 0.1


def faces_dir() -> Path:
    return Path(os.environ.get("F2P_DATA_PATH", REPO.parent / "shared" / "data")) / "faces"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from f2p.commands.threads import thread_count
    from f2p.output_sets import DEFAULT_OUTPUTS, OUTPUTS
    from f2p.quality import DEFAULT_QUALITY, INSTANT, QUALITIES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8, help="photos to fit (default 8)")
    parser.add_argument("--batch-size", type=int, default=8, help="photos fitted together (default 8, as reconstruct)")
    parser.add_argument("--steps", type=int, default=None,
                        help="total fitting steps per photo (default: those of the --quality schedule)")
    parser.add_argument("--crop-size", type=int, default=224, help="side of the fitted crop (default 224)")
    parser.add_argument("--model", default="ict", help="face model (default ict)")
    parser.add_argument("--landmarks", default="auto", help="detector: auto | fan | dlib (default auto)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--threads", type=lambda text: 0 if text == "auto" else thread_count(text), default="auto",
                        help="PyTorch CPU threads: auto (default: as reconstruct chooses them) or N")
    parser.add_argument("--quick", action="store_true", help="2 photos, a tenth of the steps")
    parser.add_argument("--outputs", default=DEFAULT_OUTPUTS, choices=tuple(OUTPUTS),
                        help="files per photo, as reconstruct --outputs (default all; data: no pictures, no head.glb)")
    parser.add_argument("--no-identity", action="store_true",
                        help="no identity metric, as reconstruct --no-identity (with --outputs data, fast and instant "
                             "render nothing)")
    parser.add_argument("--quality", default=DEFAULT_QUALITY, choices=(INSTANT, *QUALITIES),
                        help=f"fitting schedule (f2p.fitting.schedule.schedule_for, or f2p.fitting.instant; default "
                             f"{DEFAULT_QUALITY}, as reconstruct's); --steps scales its stages as reconstruct's does")
    args = parser.parse_args(argv)
    if args.steps is None:
        from f2p.fitting.instant import quality_steps

        args.steps = quality_steps(args.quality)
    if args.quick:
        args.photos, args.batch_size = 2, 2
        args.steps = max(1, round(args.steps * QUICK_STEPS_SCALE))
    return args


class Clock:
    """Accumulates wall time per stage name; synchronises CUDA before reading the time."""

    def __init__(self, device) -> None:
        import torch

        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.seconds: dict[str, float] = defaultdict(float)
        self.started = 0.0

    def start(self) -> None:
        self.sync()
        self.started = time.perf_counter()

    def stop(self, stage: str) -> float:
        self.sync()
        elapsed = time.perf_counter() - self.started
        self.seconds[stage] += elapsed
        return elapsed


class TimedInitializer:
    """An initialiser (the shipped network of ``--quality instant``) that adds up the seconds it takes."""

    def __init__(self, initializer) -> None:
        self.initializer = initializer
        self.seconds = 0.0

    def __call__(self, obs):
        began = time.perf_counter()
        params = self.initializer(obs)
        self.seconds += time.perf_counter() - began
        return params


def fit_batch(paths: list[Path], start: int, fitter, exporter, detector, embedder, crop_size: int, clock: Clock,
              out: Path, initializer: TimedInitializer | None = None, mask: bool = True) -> tuple[int, list[str]]:
    """Run the reconstruct pipeline's pieces on one batch of photos, timing each stage; return (photos fitted,
    names of photos without a usable face: none found, or landmarks no face could have)."""
    from f2p.perception.image_io import load_image
    from f2p.perception.photo import PhotoError, align_sample, detect_landmarks
    from f2p.fitting.estimate import FittingEstimator
    from f2p.pipeline.photo_run import PhotoRun, observations

    samples, names, skipped = [], [], []
    for index, path in enumerate(paths, start):
        clock.start()
        photo = load_image(path)
        clock.stop("image load")
        clock.start()
        try:  # reconstruct's detection (perception.photo.detect_sample), timed apart from the crop
            found = detect_landmarks(path, photo, detector)
        except PhotoError:
            skipped.append(path.name)
            continue
        finally:
            clock.stop(f"detection ({detector.name})")
        clock.start()
        samples.append(align_sample(path, photo, found.landmarks, found.confidence, found.source, crop_size,
                                    found.dense, mask))
        names.append(f"{index:03d}_{path.stem}")
        clock.stop("crop + mask")
    if not samples:
        return 0, skipped
    clock.start()
    obs = observations(samples, embedder, fitter.spec.model.device)
    clock.stop("identity embedding")
    clock.start()
    timed = TimedFitter(fitter)
    network = 0.0 if initializer is None else -initializer.seconds
    estimate = FittingEstimator(timed, initializer)(obs)
    total = clock.stop("fit")
    del clock.seconds["fit"]
    if initializer is not None:
        network += initializer.seconds
        clock.seconds["fit: network"] += network
    for stage, seconds in timed.result.stage_seconds.items():
        clock.seconds[f"fit: {stage}"] += seconds
    clock.seconds["fit: final evaluation"] += total - network - sum(timed.result.stage_seconds.values())
    clock.start()
    run = PhotoRun(out, exporter, embedder)
    run.export(samples, names, estimate, FittingEstimator.method,
               total / len(samples), obs.embedding)
    run.write_summary()
    clock.stop("export")
    return len(samples), skipped


class TimedFitter:
    """A ``Fitter`` for ``FittingEstimator`` that keeps its last ``FitResult`` (for the per-stage times)."""

    def __init__(self, fitter) -> None:
        self.fitter = fitter
        self.stages = fitter.stages
        self.result = None

    def fit(self, obs, init=None, on_step=None):
        self.result = self.fitter.fit(obs, init=init, on_step=on_step)
        return self.result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    from f2p.commands.threads import apply_threads, choose_threads, usable_cores
    from f2p.export.photo import PhotoExporter
    from f2p.fitting.fitter import Fitter
    from f2p.fitting.instant import quality_stages
    from f2p.morphable.registry import load_model
    from f2p.perception.detectors import create_detector
    from f2p.perception.identity.embedder import create_embedder
    from f2p.perception.image_io import find_photos
    from f2p.pipeline import run_renders
    from f2p.quality import INSTANT
    from f2p.render.renderer import MeshRenderer
    from f2p.scene.params import SceneSpec
    from f2p.systems.landmark_weights import load_initializer, shipped_weights

    threads = choose_threads(args.threads)
    apply_threads(threads.threads)
    device = torch.device(args.device)
    available = find_photos([faces_dir() / "images"])
    if not available:
        raise SystemExit(f"benchmarks/fit.py: no photos in {faces_dir() / 'images'} (set F2P_DATA_PATH)")
    photos = [available[i % len(available)] for i in range(args.photos)]

    setup = Clock(device)
    setup.start()
    model = load_model(args.model).to(device)
    detector = create_detector(args.landmarks, device=str(device))
    embedder = None if args.no_identity else create_embedder("dlib").to(device)
    spec = SceneSpec(model, (args.crop_size, args.crop_size))
    renderer = MeshRenderer()
    stages = quality_stages(args.quality, args.steps)
    renders = run_renders(stages, args.outputs, identity=embedder is not None)  # as reconstruct decides
    fitter = Fitter(spec, renderer, stages, embedder, final_render=renders)
    network = None if args.quality != INSTANT else TimedInitializer(
        load_initializer(shipped_weights(model.name), map_location=device, expect=spec))
    exporter = PhotoExporter(spec, renderer, embedder, args.outputs)
    with tempfile.TemporaryDirectory() as out:
        # warm-up (lazy initialisation, first-call costs): one photo, one step per stage, untimed
        warm_up = Fitter(spec, renderer, quality_stages(args.quality, 1), embedder, final_render=renders)
        fit_batch(photos[:1], 0, warm_up, exporter, detector, embedder, args.crop_size, Clock(device), Path(out),
                  network, renders)
        setup_seconds = setup.stop("setup")
        clock = Clock(device)
        fitted, skipped = 0, []
        for start in range(0, len(photos), args.batch_size):
            done, missed = fit_batch(photos[start:start + args.batch_size], start, fitter, exporter, detector,
                                     embedder, args.crop_size, clock, Path(out), network, renders)
            fitted, skipped = fitted + done, skipped + missed

    if not fitted:
        raise SystemExit("benchmarks/fit.py: no face was detected in any photo")
    total = sum(clock.seconds.values())
    machine = (f"{platform.processor() or platform.machine()}, {usable_cores()} usable cores, "
               f"{torch.get_num_threads()} torch threads ({threads.reason}), load at the end {os.getloadavg()[0]:.1f}"
               if device.type == "cpu" else torch.cuda.get_device_name(device))
    print(f"fit benchmark: {fitted} photos in batches of {args.batch_size}, model {args.model}, {args.crop_size} px, "
          f"quality {args.quality}, {sum(stage.steps for stage in fitter.stages)} steps per photo (at most), "
          f"detector {detector.name}, outputs {args.outputs}{', no identity metric' if embedder is None else ''}"
          f"{'' if renders else ', nothing rendered'}")
    print(f"machine: {machine}; device {device}; torch {torch.__version__}; setup once per run (model, detector, "
          f"embedder, warm-up on one photo) {setup_seconds:.1f} s")
    if skipped:
        print(f"no usable face (none found or implausible landmarks), not fitted: {', '.join(skipped)}")
    width = max(len(stage) for stage in clock.seconds)
    print(f"\n{'stage'.ljust(width)}  {'s / photo':>9}  {'share':>6}")
    print("-" * (width + 19))
    for stage, seconds in clock.seconds.items():
        print(f"{stage.ljust(width)}  {seconds / fitted:9.3f}  {seconds / total:6.1%}")
    print("-" * (width + 19))
    print(f"{'total'.ljust(width)}  {total / fitted:9.3f}  {1:6.1%}")
    print(f"seconds_per_photo: {total / fitted:.3f}")


if __name__ == "__main__":
    main()
