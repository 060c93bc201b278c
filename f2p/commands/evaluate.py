"""Measure fits: landmark NME, head pose and identity against annotations, or the recovery of synthetic faces.

  python -m f2p evaluate OUT_DIR --annotations FILE_OR_DIR
      scores the per-photo outputs of `reconstruct`/`predict` in OUT_DIR against annotations.json (the shared face
      set layout), a folder of iBUG .pts / AFLW2000-3D .mat files, or one such file. Report in OUT_DIR/evaluation.
  python -m f2p evaluate --synthetic N
      renders N faces with known parameters (seeded), fits them (or predicts them with --checkpoint) and reports
      per-vertex error (mm, face region), parameter errors and landmark NME. Report in outputs/evaluation_synthetic.

Writes report.json, report.csv, ced.png, per_photo.png and worst_fits.png into --out and prints the tables.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from f2p.commands.options import SLIDING_CONTOUR_HELP
from f2p.commands.threads import THREADS_HELP, set_threads, thread_count
from f2p.evaluation import OUTLINES
from f2p.perception.crop_size import CROP_SIZE
from f2p.quality import DEFAULT_QUALITY, INSTANT, INSTANT_HELP, QUALITIES, QUALITY_HELP

DEFAULT_SYNTHETIC_OUT = Path("outputs") / "evaluation_synthetic"
PHOTO_OUT = "evaluation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", nargs="?", type=Path, metavar="OUT_DIR",
                        help="output folder of `reconstruct`/`predict` to score")
    parser.add_argument("--annotations", type=Path, metavar="FILE_OR_DIR",
                        help="annotations.json, a folder of .pts/.mat files, or one .pts/.mat file")
    parser.add_argument("--synthetic", type=int, metavar="N", help="evaluate on N synthetic faces instead")
    parser.add_argument("--out", type=Path, help=f"report folder (default OUT_DIR/{PHOTO_OUT}, or "
                                                 f"{DEFAULT_SYNTHETIC_OUT} with --synthetic)")
    parser.add_argument("--worst", type=int, default=6, help="fits shown in worst_fits.png (default 6)")
    parser.add_argument("--threads", type=thread_count, default=0, metavar="N", help=THREADS_HELP)
    synthetic = parser.add_argument_group("synthetic evaluation")
    synthetic.add_argument("--model", default="ict", help="ict | sfm | flame | bfm | procedural | path to a model file")
    synthetic.add_argument("--size", type=int, default=CROP_SIZE, help=f"image side in pixels (default {CROP_SIZE})")
    synthetic.add_argument("--quality", choices=(INSTANT, *QUALITIES), default=DEFAULT_QUALITY,
                           help=QUALITY_HELP + INSTANT_HELP)
    synthetic.add_argument("--steps", type=int, default=None,
                           help="total fitting steps over all stages (default: those of the --quality schedule, as "
                                "reconstruct)")
    synthetic.add_argument("--checkpoint", type=Path,
                           help="predict with this network instead of fitting (landmark-regressor weights or an "
                                "image regressor's checkpoint, as reconstruct --init)")
    synthetic.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                           help="start the fits (with --quality instant: answer) from this network's prediction "
                                "(as reconstruct --init)")
    synthetic.add_argument("--seed", type=int, default=0, help="seed of the faces and the landmark noise")
    synthetic.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True,
                           help="also observe the 468 dense landmarks, as reconstruct's default detector gives "
                                "them (MediaPipe's face mesh, same noise); --no-dense: the 68 points alone "
                                "(default: dense)")
    synthetic.add_argument("--outline", choices=OUTLINES, default="fixed",
                           help="the observed jaw and face-oval points: fixed (the model's landmark vertices, as the "
                                "3D-consistent markup has them; default) or silhouette (the true face's occluding "
                                "contour, as a detector marking the visible outline of a turned face gives them)")
    synthetic.add_argument("--sliding-contour", action="store_true", help=SLIDING_CONTOUR_HELP)
    synthetic.add_argument("--landmark-noise", type=float, default=0.0,
                           help="standard deviation in pixels of noise added to the observed landmarks")
    synthetic.add_argument("--batch-size", type=int, default=8, help="faces estimated together")
    synthetic.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    synthetic.add_argument("--backend", default="auto", help="rasterizer: auto | torch | pytorch3d")


def _fail(message: str) -> int:
    print(f"f2p evaluate: {message}", file=sys.stderr)
    return 2


def _print_written(out: Path, figures: list[Path]) -> None:
    from f2p.evaluation.report import REPORT_CSV, REPORT_JSON

    names = [REPORT_JSON, REPORT_CSV, *(f.name for f in figures)]
    print(f"\nwritten to {out}: {', '.join(names)}")


def run_photos(args: argparse.Namespace) -> int:
    from f2p.evaluation.figures import photo_figures
    from f2p.evaluation.outputs import OutputsError, read_outputs
    from f2p.evaluation.photos import RECORD_FIELDS, evaluate_photos
    from f2p.evaluation.report import photo_tables, write_report
    from f2p.evaluation.truth import read_ground_truth
    from f2p.perception.annotations import AnnotationError

    try:
        outputs = read_outputs(args.out_dir)
        truth = read_ground_truth(args.annotations)
    except (OutputsError, AnnotationError) as error:
        return _fail(str(error))
    evaluation = evaluate_photos(outputs, truth)
    if evaluation.summary["counts"]["with_annotation"] == 0:
        return _fail(f"no photo of {args.out_dir / 'summary.csv'} has an annotation in {args.annotations} "
                     "(photos match annotations by file name or stem)")
    set_threads(args.threads)
    out = args.out or args.out_dir / PHOTO_OUT
    write_report(out, evaluation.summary, evaluation.records, RECORD_FIELDS)
    figures = photo_figures(out, evaluation.records, args.worst)
    print(photo_tables(evaluation.summary))
    _print_written(out, figures)
    return 0


def run_synthetic(args: argparse.Namespace) -> int:
    from f2p.commands.options import resolve_device
    from f2p.errors import ModelFileError
    from f2p.evaluation.figures import synthetic_figures
    from f2p.evaluation.report import synthetic_tables, write_report
    from f2p.evaluation.synthetic import FACE_FIELDS, evaluate_synthetic, similarity_target_mm
    from f2p.fitting.estimate import FittingEstimator, PredictionEstimator
    from f2p.fitting.fitter import Fitter
    from f2p.fitting.instant import quality_stages, quality_steps
    from f2p.morphable.registry import load_model
    from f2p.render.renderer import MeshRenderer
    from f2p.scene.params import SceneSpec
    from f2p.systems.landmark_weights import load_initializer, shipped_weights

    instant = args.quality == INSTANT
    if args.steps is None:
        args.steps = quality_steps(args.quality)
    if min(args.synthetic, args.size, args.batch_size) < 1 or args.steps < (0 if instant else 1) or \
            args.landmark_noise < 0:
        return _fail("--synthetic, --size, --steps and --batch-size must be at least 1 (--steps 0 with --quality "
                     "instant: the network alone), --landmark-noise >= 0")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        return _fail(str(error))
    try:
        model = load_model(args.model, download=True).to(device)  # the first run fetches an open model
    except ModelFileError as error:
        return _fail(str(error))
    spec = SceneSpec(model, (args.size, args.size))
    renderer = MeshRenderer(backend=args.backend)
    if args.checkpoint is not None and args.init is not None:
        return _fail("give --checkpoint (predict with a network) or --init (start the fits from one), not both")
    network = args.checkpoint or ((args.init or shipped_weights(model.name)) if instant else None)
    try:
        start = args.init if network is None else network
        initializer = None if start is None else load_initializer(start, map_location=device, expect=spec)
    except ModelFileError as error:
        return _fail(str(error))
    stages = [] if args.checkpoint is not None and not instant else quality_stages(args.quality, args.steps)
    if stages:
        estimate = FittingEstimator(Fitter(spec, renderer, stages, sliding_contour=args.sliding_contour), initializer)
        origin = "the mean face" if start is None else str(start)
        method = (f"fit from {origin}, {args.quality} quality, {args.steps} steps"
                  f"{', sliding contour' if args.sliding_contour else ''}")
    else:
        estimate = PredictionEstimator(initializer)
        method = f"regressor {network}"
    set_threads(args.threads)
    evaluation = evaluate_synthetic(
        spec, renderer, estimate, method, args.synthetic, seed=args.seed, landmark_noise=args.landmark_noise,
        dense=args.dense, outline=args.outline,
        batch_size=args.batch_size, worst=args.worst,
        on_batch=lambda done, total: print(f"  {done}/{total} faces", file=sys.stderr, flush=True))
    out = args.out or DEFAULT_SYNTHETIC_OUT
    fields = [*FACE_FIELDS, *(f"{name}_rmse_{kind}" for kind in ("std", "shape") for name in model.groups)]
    write_report(out, evaluation.summary, evaluation.records, fields)
    figures = synthetic_figures(out, evaluation.records, evaluation.worst, similarity_target_mm(args.landmark_noise))
    print(synthetic_tables(evaluation.summary))
    _print_written(out, figures)
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out}: exists and is not a folder")
    if args.synthetic is not None:
        if args.out_dir is not None or args.annotations is not None:
            return _fail("give either OUT_DIR --annotations FILE_OR_DIR or --synthetic N, not both")
        return run_synthetic(args)
    if args.out_dir is None or args.annotations is None:
        return _fail("give OUT_DIR --annotations FILE_OR_DIR (score reconstruct/predict outputs) or --synthetic N")
    return run_photos(args)
