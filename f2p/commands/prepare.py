"""Detect faces, 68 landmarks and identity embeddings of photos once, into a cache that fitting and training reuse.

Examples:
  python -m f2p prepare photos/ --out prepared/                  # every photo in photos/, largest face of each
  python -m f2p prepare a.jpg b.png --out prepared/ --all-faces  # every face of two photos
  python -m f2p prepare photos/ --out prepared/ --detector dlib --no-embed

Writes prepared/records/<photo>-<hash>.json per photo with a face (see f2p.perception.prepared; read them with
load_prepared), and prepared/summary.json + summary.csv listing every photo of the run with its status and, for
failures, the reason. Photos already prepared (same file size and time, detector and options) are skipped; one bad
photo never stops the others. Exit code 0 when every photo has a record, 1 when any failed, 2 when --out is a
file or the detector cannot be built (one line saying why).

Detector "auto" is MediaPipe's face mesh with dlib's 68 points (see f2p.perception.detectors); MediaPipe's files are
fetched into the cache on the first run (f2p.commands.first_run) unless F2P_OFFLINE is set, and without them "auto"
runs FAN when its weights are in torch hub's checkpoint folder, dlib otherwise. Identity embeddings use dlib's
face-recognition network from f2p.perception.identity when that module is available (128 floats per face).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

from f2p.atomic import atomic_writer
from f2p.commands.threads import THREADS_HELP, set_threads, thread_count
from f2p.perception.detector_options import DETECTION_MAX_SIDE, DETECTOR_NAMES

logger = logging.getLogger("f2p")

SUMMARY_FIELDS = ("image", "status", "faces", "record", "reason")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGES_OR_DIRS",
                        help="photos, or folders whose photos (by suffix) are taken")
    parser.add_argument("--out", type=Path, required=True, help="cache folder (records/ and summary files)")
    parser.add_argument("--detector", choices=DETECTOR_NAMES, default="auto",
                        help="landmark detector (default auto: MediaPipe's face mesh with dlib's 68 points; "
                             "dlib-mmod: dlib's CNN face detector, slower, finds more faces)")
    parser.add_argument("--device", default="cpu", help="torch device for FAN and the identity network")
    parser.add_argument("--all-faces", action="store_true", help="keep every face, not only the largest")
    parser.add_argument("--no-embed", action="store_true", help="skip identity embeddings")
    parser.add_argument("--recursive", action="store_true", help="also take photos from sub-folders")
    parser.add_argument("--max-side", type=int, default=DETECTION_MAX_SIDE,
                        help="longest side photos are downscaled to for dlib's and FAN's detection (MediaPipe's "
                             "detectors read photos at their own size; results are in full-size pixels)")
    parser.add_argument("--force", action="store_true", help="redo photos that already have a record")
    parser.add_argument("--download-weights", action="store_true",
                        help="let FAN download its weights when missing (MediaPipe's files are fetched when "
                             "missing unless F2P_OFFLINE is set)")
    parser.add_argument("--threads", type=thread_count, default=0, metavar="N", help=THREADS_HELP)


def write_summary(out: Path, rows: list[dict], detector: str, embedder: str | None) -> None:
    """summary.json (counts and rows) and summary.csv (rows), both written atomically."""
    counts = {status: sum(row["status"] == status for row in rows) for status in ("done", "cached", "failed")}
    summary = {"photos": len(rows), **counts, "detector": detector, "embedder": embedder, "rows": rows}
    with atomic_writer(out / "summary.json") as handle:
        handle.write(json.dumps(summary, indent=1).encode("utf-8"))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_writer(out / "summary.csv") as handle:
        handle.write(text.getvalue().encode("utf-8"))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from f2p.commands.first_run import fetch_detector_models
    from f2p.errors import ModelFileError
    from f2p.perception.detection import DetectionFailure
    from f2p.perception.detectors import create_detector
    from f2p.perception.fan_detector import DetectorUnavailableError
    from f2p.perception.image_io import find_photos
    from f2p.perception.prepare import EMBEDDER, cached_record, optional_identity_embedder, prepare_photo
    from f2p.perception.prepared import PreparedRecord, photo_key, record_path, write_record

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    photos = find_photos(args.inputs, args.recursive)
    if not photos:
        logger.error("no photos found in %s", ", ".join(map(str, args.inputs)))
        return 1
    if args.out.exists() and not args.out.is_dir():
        logger.error("--out %s: exists and is not a folder", args.out)
        return 2
    set_threads(args.threads)
    try:
        fetch_detector_models(args.detector)
        detector = create_detector(args.detector, args.device, allow_download=args.download_weights)
    except (ModelFileError, DetectorUnavailableError) as error:
        logger.error("%s", error)
        return 2
    embedder = None if args.no_embed else optional_identity_embedder(args.device)
    embedder_name = None if embedder is None else EMBEDDER
    rows = []
    for photo in tqdm(photos, desc="prepare", unit="photo"):
        target = record_path(args.out, photo)
        row = {"image": photo_key(photo), "status": "done", "faces": 0, "record": str(target), "reason": ""}
        cached = None if args.force else cached_record(target, photo, detector.name, args.all_faces, embedder_name)
        if cached is not None:
            row.update(status="cached", faces=len(cached.faces))
            rows.append(row)
            continue
        try:
            result = prepare_photo(photo, detector, embedder, args.all_faces, args.max_side)
            reason = result.reason if isinstance(result, DetectionFailure) else ""
        except Exception as error:  # noqa: BLE001 - reported in the summary: one photo never stops the run
            result, reason = None, f"unexpected {type(error).__name__}: {error}"
        if isinstance(result, PreparedRecord):
            write_record(args.out, result)
            row["faces"] = len(result.faces)
        else:
            row.update(status="failed", record="", reason=reason)
            logger.warning("%s: %s", photo, reason)
        rows.append(row)
    write_summary(args.out, rows, detector.name, embedder_name)
    failed = sum(row["status"] == "failed" for row in rows)
    logger.info("prepared %d of %d photos into %s (%d failed; see summary.csv)", len(rows) - failed, len(rows),
                args.out, failed)
    return 1 if failed else 0
