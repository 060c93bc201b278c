"""Fit a 3D face model to photos: named parameters, mesh, landmarks, overlays and metrics per photo.

Writes DIR/<photo stem>/{params.json, params.npz, mesh.obj, landmarks.json, overlay.png, fit.png, metrics.json}
and DIR/summary.csv. Rerunning skips photos already done. Exit code 1 if any photo failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from f2p.data.photos import AnnotationError, LandmarkFile, PhotoError, PhotoSample, find_images, load_sample
from f2p.export.summary import completed, output_dirs, summary_row, write_summary
from f2p.export.photo import PhotoOutcome
from f2p.export.run_log import RunLog
from f2p.fitting.photo_fit import PhotoFitter, regressor_initializer
from f2p.fitting.schedule import default_schedule
from f2p.morphable.base import ModelFileError
from f2p.perception.crop import CROP_SIZE

log = logging.getLogger("f2p")

DEFAULT_TOTAL_STEPS = sum(stage.steps for stage in default_schedule())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="photos and/or folders of photos")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--model", default="ict", help="ict | sfm | flame | bfm | procedural | path to a model file")
    parser.add_argument("--landmarks", default="auto",
                        help="auto | fan | dlib | FILE (an annotation file for one photo, or an annotations.json)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--backend", default="auto", help="rasterizer: auto | torch | pytorch3d")
    parser.add_argument("--steps", type=int, default=DEFAULT_TOTAL_STEPS,
                        help=f"total optimisation steps per photo over all stages (default {DEFAULT_TOTAL_STEPS})")
    parser.add_argument("--batch-size", type=int, default=8, help="photos optimised together")
    parser.add_argument("--crop-size", type=int, default=CROP_SIZE, help="side of the aligned crop that is fitted")
    parser.add_argument("--no-identity", action="store_true", help="skip the identity loss and metric")
    parser.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                        help="start each fit from a trained regressor's prediction (python -m f2p fit --config "
                             "configs/regressor.yaml) instead of the mean face")
    parser.add_argument("--wandb", choices=("off", "offline", "online"), default="off",
                        help="log losses and overlays to Weights & Biases (offline needs no account)")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"f2p reconstruct: --device {name} asked for, but no CUDA device is available")
    return device


def _photo_fitter(args: argparse.Namespace, device: torch.device) -> PhotoFitter:
    """Model, renderer, identity network, schedule and initializer as the options say.

    Raises:
        ModelFileError, ValueError: a model or checkpoint that cannot be used.
    """
    from f2p.morphable.registry import load_model
    from f2p.render.renderer import MeshRenderer
    from f2p.scene.params import SceneSpec

    model = load_model(args.model).to(device)
    embedder = None
    if not args.no_identity:
        from f2p.perception.identity.embedder import DlibFaceEmbedder

        embedder = DlibFaceEmbedder.from_default_weights().to(device)
    spec = SceneSpec(model, (args.crop_size, args.crop_size))
    stages = default_schedule(args.steps / DEFAULT_TOTAL_STEPS)
    initializer = None if args.init is None else regressor_initializer(args.init, spec)
    return PhotoFitter(spec, MeshRenderer(backend=args.backend), stages, embedder, initializer)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from f2p.perception.detectors import create_detector

    images = find_images(args.inputs)
    if args.steps < 1 or args.batch_size < 1:
        print("f2p reconstruct: --steps and --batch-size must be at least 1", file=sys.stderr)
        return 2
    device = _device(args.device)
    try:
        fitter = _photo_fitter(args, device)
    except (ModelFileError, FileNotFoundError, ValueError) as error:
        print(f"f2p reconstruct: {error}", file=sys.stderr)
        return 2
    landmark_file = None
    detector = None
    if args.landmarks in ("auto", "fan", "dlib"):
        detector = create_detector(args.landmarks, device=str(device))
    else:
        try:
            landmark_file = LandmarkFile(args.landmarks)
        except (AnnotationError, OSError) as error:
            print(f"f2p reconstruct: --landmarks {args.landmarks}: {error}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    run_log = RunLog(args.out, args.wandb, {k: str(v) for k, v in vars(args).items()})
    last_steps = {stage.name: stage.steps - 1 for stage in fitter.fitter.stages}
    dirs = output_dirs(images, args.out)
    rows: dict[Path, dict[str, str]] = {}
    todo: list[Path] = []
    for image in images:
        outcome = completed(image, dirs[image])
        if outcome is not None:
            rows[image] = summary_row(outcome, dirs[image])
        else:
            todo.append(image)
    if len(todo) < len(images):
        log.info("skipping %d photo(s) already done in %s", len(images) - len(todo), args.out)
    bar = tqdm(total=len(todo) * fitter.total_steps, desc="fitting", unit="step", disable=None)
    for start in range(0, len(todo), args.batch_size):
        batch: list[tuple[Path, PhotoSample]] = []
        for image in todo[start:start + args.batch_size]:
            try:
                batch.append((image, load_sample(image, detector, landmark_file, args.crop_size)))
            except PhotoError as error:
                rows[image] = summary_row(PhotoOutcome(str(image), "failed", error.reason, {}), None)
                tqdm.write(f"FAILED {error}")
                bar.update(fitter.total_steps)
        if not batch:
            continue
        run_log.next_batch()

        def on_step(stage: str, step: int, loss: float) -> None:
            bar.set_postfix(stage=stage, loss=f"{loss:.4f}")
            bar.update(len(batch))
            run_log.step(stage, step, loss, step == last_steps[stage])

        outcomes = fitter.fit([sample for _, sample in batch], [dirs[image] for image, _ in batch], on_step=on_step)
        for (image, _), outcome in zip(batch, outcomes):
            rows[image] = summary_row(outcome, dirs[image] if outcome.status == "ok" else None)
            line = (f"ok     {image.name}: landmark RMSE {outcome.metrics['landmark_rmse_px']:.2f} px"
                    if outcome.status == "ok" else f"FAILED {image}: {outcome.error}")
            tqdm.write(line)
            run_log.photo(dirs[image].name, outcome, dirs[image] / "fit.png")
        write_summary(args.out / "summary.csv", [rows[i] for i in images if i in rows])
    bar.close()
    write_summary(args.out / "summary.csv", [rows[i] for i in images])
    run_log.close()
    failed = sum(row["status"] != "ok" for row in rows.values())
    print(f"{len(images) - failed}/{len(images)} photos ok; summary: {args.out / 'summary.csv'}")
    return 1 if failed else 0
