"""Detect faces, 68 landmarks and identity embeddings of photos once, into a cache that fitting and training reuse.

Examples:
  python -m f2p prepare photos/ --out prepared/                  # every photo in photos/, largest face of each
  python -m f2p prepare a.jpg b.png --out prepared/ --all-faces  # every face of two photos
  python -m f2p prepare photos/ --out prepared/ --detector dlib --no-embed

Writes prepared/records/<photo>-<hash>.json per photo with a face (see f2p.perception.prepared; read them with
load_prepared), and prepared/summary.json + summary.csv listing every photo of the run with its status and, for
failures, the reason. Photos already prepared (same file size and time, detector and options) are skipped; one bad
photo never stops the others. Exit code 0 when every photo has a record, 1 when any failed.

Detector "auto" uses FAN when its weights are in torch hub's checkpoint folder, dlib otherwise (see
f2p.perception.fan_detector for the files to place there offline). Identity embeddings use dlib's face-recognition
network from f2p.perception.identity when that module is available (128 floats per face).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from f2p.morphable.atomic import atomic_writer
from f2p.perception.detection import DETECTION_MAX_SIDE, DetectionFailure, LandmarkDetector, detect_photo
from f2p.perception.detectors import DETECTOR_NAMES, create_detector
from f2p.perception.image_io import load_image
from f2p.perception.prepared import PreparedFace, PreparedRecord, photo_key, read_record, record_path, write_record

logger = logging.getLogger("f2p")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})
"""Files taken from folders; files named on the command line are always tried."""
EMBEDDER = "dlib"
SUMMARY_FIELDS = ("image", "status", "faces", "record", "reason")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGES_OR_DIRS",
                        help="photos, or folders whose photos (by suffix) are taken")
    parser.add_argument("--out", type=Path, required=True, help="cache folder (records/ and summary files)")
    parser.add_argument("--detector", choices=DETECTOR_NAMES, default="auto",
                        help="landmark detector (default auto: FAN if its weights are on disk, else dlib HOG; "
                             "dlib-mmod: dlib's CNN face detector, slower, finds more faces)")
    parser.add_argument("--device", default="cpu", help="torch device for FAN and the identity network")
    parser.add_argument("--all-faces", action="store_true", help="keep every face, not only the largest")
    parser.add_argument("--no-embed", action="store_true", help="skip identity embeddings")
    parser.add_argument("--recursive", action="store_true", help="also take photos from sub-folders")
    parser.add_argument("--max-side", type=int, default=DETECTION_MAX_SIDE,
                        help="longest side photos are downscaled to for detection (results are in full-size pixels)")
    parser.add_argument("--force", action="store_true", help="redo photos that already have a record")
    parser.add_argument("--download-weights", action="store_true",
                        help="let FAN download its weights when missing (online use)")


def collect_photos(inputs: Iterable[Path], recursive: bool = False) -> list[Path]:
    """Photos named or found in folders (by suffix), each once, in a stable order; missing paths are kept so that
    they are reported as failures."""
    photos: dict[str, Path] = {}
    for path in inputs:
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            candidates = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            candidates = [path]
        for candidate in candidates:
            photos.setdefault(photo_key(candidate), candidate)
    return list(photos.values())


def create_identity_embedder(device: str) -> nn.Module | None:
    """dlib's identity network from f2p.perception.identity, or None with the reason logged when unavailable."""
    try:
        from f2p.perception.identity import create_embedder
    except ImportError as error:
        logger.info("identity embedding: skipped, f2p.perception.identity is not available (%s)", error)
        return None
    try:
        embedder = create_embedder(EMBEDDER).to(device)
    except (OSError, ValueError) as error:
        logger.info("identity embedding: skipped, the %s embedder could not be loaded (%s)", EMBEDDER, error)
        return None
    logger.info("identity embedding: %s (%d floats per face)", EMBEDDER, embedder.embedding_dim)
    return embedder


def cached_record(record_file: Path, photo: Path, detector: str, all_faces: bool,
                  embedder: str | None) -> PreparedRecord | None:
    """The record in ``record_file`` if it is readable and was made from the current ``photo`` with the same
    settings, else None."""
    if not record_file.is_file() or not photo.is_file():
        return None
    try:
        record = read_record(record_file)
    except ValueError as error:
        logger.warning("redoing %s: %s", photo, error)
        return None
    stat = photo.stat()
    same = (record.source_bytes, record.source_mtime_ns, record.detector, record.all_faces, record.embedder) == (
        stat.st_size, stat.st_mtime_ns, detector, all_faces, embedder)
    return record if same else None


def prepare_photo(photo: Path, detector: LandmarkDetector, embedder: nn.Module | None, all_faces: bool,
                  max_side: int) -> PreparedRecord | DetectionFailure:
    """Detect the faces of one photo and, with an embedder (an f2p.perception.identity ``FaceEmbedder``), embed
    them."""
    stat = photo.stat() if photo.is_file() else None
    found = detect_photo(photo, detector, all_faces, max_side)
    if isinstance(found, DetectionFailure):
        return found
    embeddings: list[torch.Tensor | None] = [None] * len(found.faces)
    if embedder is not None:
        landmarks = torch.stack([face.landmarks for face in found.faces])  # (F, 68, 2)
        image = load_image(photo)[None].expand(len(found.faces), -1, -1, -1)  # (F, 3, H, W)
        device = next(embedder.parameters()).device
        with torch.no_grad():
            embeddings = list(embedder.embed(image.to(device), landmarks.to(device)).cpu())
    return PreparedRecord(photo_key(photo), found.image_size, stat.st_size, stat.st_mtime_ns, detector.name,
                          all_faces, None if embedder is None else EMBEDDER,
                          tuple(PreparedFace(face, emb) for face, emb in zip(found.faces, embeddings)))


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
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    photos = collect_photos(args.inputs, args.recursive)
    if not photos:
        logger.error("no photos found in %s", ", ".join(map(str, args.inputs)))
        return 1
    detector = create_detector(args.detector, args.device, allow_download=args.download_weights)
    embedder = None if args.no_embed else create_identity_embedder(args.device)
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
