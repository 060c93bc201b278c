"""Fit a 3D face model to photos: named parameters, mesh, landmarks, overlays and metrics per photo.

Writes DIR/<photo stem>-<path hash>/{params.json, params.npz, mesh.obj, landmarks.json, overlay.png, fit.png,
head.glb, arkit.json, metrics.json} (``--outputs data``: without the pictures and head.glb) and DIR/summary.csv.
Rerunning skips photos already done (same photo, same settings).
Exit codes: 0 every photo ok, 1 some photo failed (or summary.csv could not be written), 2 bad options or no
photos, 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from f2p.commands.clips import add_clip_arguments, run_clips, split_clips
from f2p.commands.options import DEVICE_HELP, SLIDING_CONTOUR_HELP
from f2p.commands.threads import THREADS_HELP, set_threads, thread_count
from f2p.output_sets import DEFAULT_OUTPUTS, OUTPUTS, OUTPUTS_HELP
from f2p.perception.crop_size import CROP_SIZE, MIN_CROP_SIZE
from f2p.quality import DEFAULT_QUALITY, INSTANT, INSTANT_HELP, QUALITIES, QUALITY_HELP

if TYPE_CHECKING:
    from f2p.export.run_log import RunLog
    from f2p.fitting.estimate import Estimate, Estimator
    from f2p.fitting.fitter import OnStep
    from f2p.scene.observations import Observations

log = logging.getLogger("f2p")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="photos and/or folders of photos")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--model", default="ict", help="ict | sfm | flame | bfm | procedural | path to a model file")
    parser.add_argument("--landmarks", default="auto",
                        help="auto | mediapipe | dlib | fan | dlib-mmod | FILE (an annotation file for one photo, or "
                             "an annotations.json); auto: MediaPipe's face mesh with dlib's 68 points on its box")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--backend", default="auto", help="rasterizer: auto | torch | pytorch3d")
    parser.add_argument("--quality", choices=(INSTANT, *QUALITIES), default=DEFAULT_QUALITY,
                        help=QUALITY_HELP + INSTANT_HELP)
    parser.add_argument("--steps", type=int, default=None,
                        help="total optimisation steps per photo over all stages (default: those of the --quality "
                             "schedule; each stage is scaled in proportion, solver stages' iteration limits too; "
                             "instant: 2 solver iterations after the network, 0 for the network alone)")
    parser.add_argument("--batch-size", type=int, default=8, help="photos optimised together")
    parser.add_argument("--crop-size", type=int, default=CROP_SIZE, help="side of the aligned crop that is fitted")
    parser.add_argument("--no-identity", action="store_true", help="skip the identity loss and metric")
    parser.add_argument("--sliding-contour", action="store_true", help=SLIDING_CONTOUR_HELP)
    parser.add_argument("--outputs", choices=tuple(OUTPUTS), default=DEFAULT_OUTPUTS, help=OUTPUTS_HELP)
    parser.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                        help="start each fit (or, with --quality instant, answer) from a trained network's "
                             "prediction instead of the mean face (instant: the shipped landmark network): "
                             "landmark-regressor weights (.pt with its .json, or a checkpoint of configs/"
                             "landmark_regressor.yaml) or an image regressor's checkpoint (configs/regressor.yaml)")
    parser.add_argument("--wandb", choices=("off", "offline", "online"), default="off",
                        help="log losses and overlays to Weights & Biases (offline needs no account)")
    parser.add_argument("--threads", type=thread_count, default=0, metavar="N", help=THREADS_HELP)
    add_clip_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:  # temporary files are removed by atomic_writer; finished photos are kept
        print("\nf2p reconstruct: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"f2p reconstruct: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from tqdm import tqdm

    from f2p.atomic import remove_stale_parts
    from f2p.commands.first_run import fetch_detector_models
    from f2p.commands.options import resolve_device
    from f2p.errors import ModelFileError
    from f2p.export.photo import PhotoExporter
    from f2p.export.run_log import RunLog
    from f2p.fitting.estimate import FittingEstimator, PredictionEstimator
    from f2p.fitting.fitter import Fitter
    from f2p.fitting.instant import quality_stages, quality_steps
    from f2p.morphable.registry import load_model
    from f2p.naming import output_names
    from f2p.perception.annotations import AnnotationError
    from f2p.perception.identity.embedder import create_embedder
    from f2p.perception.image_io import find_photos
    from f2p.perception.photo import PhotoLoader
    from f2p.pipeline import PhotoRun, outcome_line, run_renders
    from f2p.render.renderer import MeshRenderer
    from f2p.scene.params import SceneSpec
    from f2p.systems.landmark_weights import load_initializer, shipped_weights

    instant = args.quality == INSTANT
    if args.steps is None:
        args.steps = quality_steps(args.quality)
    if args.steps < (0 if instant else 1) or args.batch_size < 1:
        return _fail("--steps and --batch-size must be at least 1 (--steps 0 with --quality instant: the network "
                     "alone)")
    if args.crop_size < MIN_CROP_SIZE:
        return _fail(f"--crop-size {args.crop_size}: must be at least {MIN_CROP_SIZE} pixels")
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out}: exists and is not a folder")
    clips, photo_inputs = split_clips(args.inputs, args.video)
    images = find_photos(photo_inputs)
    if not clips and not any(image.is_file() for image in images):
        return _fail(f"no photos found in {', '.join(map(str, args.inputs))}")
    try:
        device = resolve_device(args.device)
        model = load_model(args.model, download=True).to(device)  # the first run fetches an open model
        fetch_detector_models(args.landmarks)
        embedder = None if args.no_identity else create_embedder("dlib").to(device)
        spec = SceneSpec(model, (args.crop_size, args.crop_size))
        renderer = MeshRenderer(backend=args.backend)
        if instant and args.init is None:
            args.init = shipped_weights(model.name)
        initializer = None if args.init is None else load_initializer(args.init, map_location=device, expect=spec)
    except (ModelFileError, FileNotFoundError, ValueError) as error:
        return _fail(str(error))
    stages = quality_stages(args.quality, args.steps)
    renders = run_renders(stages, args.outputs, identity=embedder is not None)
    try:
        load = PhotoLoader(args.landmarks, args.crop_size, device=str(device), photos=images, mask=renders)
    except (AnnotationError, OSError) as error:
        return _fail(f"--landmarks {args.landmarks}: {error}")
    set_threads(args.threads)
    estimator = (FittingEstimator(Fitter(spec, renderer, stages, embedder, sliding_contour=args.sliding_contour,
                                         final_render=renders), initializer)
                 if stages else PredictionEstimator(initializer, method="landmark-regressor"))
    names = output_names(images)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_parts(args.out)
    except OSError as error:
        return _fail(f"--out {args.out}: {error.strerror or error}")
    if removed:
        log.info("removed %d unfinished temporary file(s) of an interrupted run in %s", removed, args.out)
    photo_run = PhotoRun(args.out, PhotoExporter(spec, renderer, embedder, args.outputs), embedder, settings(args),
                         order=images)
    photo_run.rows.update(run_clips(clips, args, spec, renderer, settings(args)))
    todo = [images[i] for i in photo_run.resume(images, [names[image] for image in images])]
    if len(todo) < len(images):
        log.info("skipping %d photo(s) already done in %s", len(images) - len(todo), args.out)
    last_steps = {stage.name: stage.steps - 1 for stage in stages}
    batches = [todo[start:start + args.batch_size] for start in range(0, len(todo), args.batch_size)]
    run_log = RunLog(args.out, args.wandb, {k: str(v) for k, v in vars(args).items()}, len(batches))
    logged = LoggedEstimator(estimator, run_log)
    bar = tqdm(total=len(batches) * estimator.steps, desc="fitting", unit="step", disable=None)

    def on_step(stage: str, step: int, loss: float) -> None:
        bar.set_postfix(stage=stage, loss=f"{loss:.4f}")
        bar.update()
        run_log.step(stage, step, loss, step == last_steps[stage])

    for batch in batches:
        run_log.next_batch(len(batch))
        began = bar.n
        for outcome in photo_run.process(batch, [names[image] for image in batch], load, logged, on_step):
            tqdm.write(outcome_line(outcome))
            if outcome.status == "ok":
                run_log.photo(outcome.out_dir.name, outcome, outcome.out_dir / "fit.png")
        bar.update(began + estimator.steps - bar.n)  # a batch whose photos all failed to load ran no steps
    bar.close()
    rows = photo_run.finish()
    run_log.close()
    failed = sum(row["status"] != "ok" for row in rows)
    if photo_run.summary_error:
        print(f"{len(rows) - failed}/{len(rows)} photos ok; {photo_run.summary_error}")
        return 1
    print(f"{len(rows) - failed}/{len(rows)} photos ok; summary: {args.out / 'summary.csv'}")
    return 1 if failed else 0


class LoggedEstimator:
    """``estimator`` that tells ``run_log`` when each batch's fit starts (after its photos are loaded: the first
    stage's clock) and ends (a stage that stopped early is logged then)."""

    def __init__(self, estimator: Estimator, run_log: RunLog) -> None:
        self.estimator, self.run_log = estimator, run_log
        self.method, self.steps = estimator.method, estimator.steps

    def __call__(self, obs: Observations, on_step: OnStep | None = None) -> Estimate:
        self.run_log.fit_started()
        estimate = self.estimator(obs, on_step)
        self.run_log.fit_finished()
        return estimate


def settings(args: argparse.Namespace) -> dict[str, str | int | bool | None]:
    """The options that change a photo's results (recorded in metrics.json; a rerun with others redoes it)."""
    return {"model": str(args.model), "landmarks": str(args.landmarks), "quality": args.quality, "steps": args.steps,
            "crop_size": args.crop_size, "identity": not args.no_identity,
            "init": None if args.init is None else str(args.init.resolve()), "outputs": args.outputs,
            "sliding_contour": args.sliding_contour}
