"""Measure fits: landmark NME, head pose and identity against annotations.

  python -m f2p evaluate OUT_DIR --annotations FILE_OR_DIR
      scores the per-photo outputs of `reconstruct`/`predict` in OUT_DIR against annotations.json (the shared face
      set layout), a folder of iBUG .pts / AFLW2000-3D .mat files, or one such file. Report in OUT_DIR/evaluation.

Writes report.json, report.csv, ced.png, per_photo.png and worst_fits.png into --out and prints the tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PHOTO_OUT = "evaluation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", nargs="?", type=Path, metavar="OUT_DIR",
                        help="output folder of `reconstruct`/`predict` to score")
    parser.add_argument("--annotations", type=Path, metavar="FILE_OR_DIR",
                        help="annotations.json, a folder of .pts/.mat files, or one .pts/.mat file")
    parser.add_argument("--out", type=Path, help=f"report folder (default OUT_DIR/{PHOTO_OUT})")
    parser.add_argument("--worst", type=int, default=6, help="fits shown in worst_fits.png (default 6)")


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
    out = args.out or args.out_dir / PHOTO_OUT
    write_report(out, evaluation.summary, evaluation.records, RECORD_FIELDS)
    figures = photo_figures(out, evaluation.records, args.worst)
    print(photo_tables(evaluation.summary))
    _print_written(out, figures)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.out_dir is None or args.annotations is None:
        return _fail("give OUT_DIR --annotations FILE_OR_DIR (score reconstruct/predict outputs)")
    return run_photos(args)
