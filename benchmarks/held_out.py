"""What the shading stages add where the landmarks say nothing: NME of annotated landmarks held out of the fit.

    python benchmarks/held_out.py                          # fast and best, every region in turn
    python benchmarks/held_out.py --qualities fast default best --regions nose mouth

For each region of the iBUG-68 points (``conventions.LANDMARK_REGIONS``: jaw, brows, eyes, nose, mouth), the shared
photos with 68 annotated points are fitted with that region's detected points left out: its 68-point confidences
set to 0, and the dense points whose nearest detected 68-point lies in the region too. The region's fitted points
(the model's landmark vertices, in photo pixels) are then scored against the annotation (NME normalised by the
annotated box, sqrt(w h)), as are the observed regions' (how well the fit follows what it sees). A schedule whose
photometric stages move the shape (``best``) can place a region the landmarks no longer constrain; one that fits
only landmarks (``fast``; ``default``'s shading stage moves colour and light only, so it places held-out points as
``fast`` does) relies on the model's prior and the other regions. The last row fits with every point observed.
Photos: ``$F2P_DATA_PATH/faces`` (default ``../shared/data/faces``), detector ``auto``, ICT, 224 px, one batch per
region and quality, one thread.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def faces_dir() -> Path:
    return Path(os.environ.get("F2P_DATA_PATH", REPO.parent / "shared" / "data")) / "faces"


def held_out_observations(obs, region_points: list[int]):
    """A copy of ``obs`` (B photos) without the 68 points ``region_points`` and the dense points nearest to them."""
    import torch
    from dataclasses import replace

    held = torch.zeros(obs.landmarks.shape[1], dtype=torch.bool)
    held[region_points] = True
    confidence = obs.confidence.clone()
    confidence[:, held] = 0.0
    dense_confidence = obs.dense_confidence
    if obs.dense is not None:
        nearest = torch.cdist(obs.dense, obs.landmarks).argmin(-1)  # (B, 468) the nearest detected 68-point
        dense_confidence = torch.where(held[nearest], 0.0, obs.dense_confidence)
    return replace(obs, confidence=confidence, dense_confidence=dense_confidence)


def region_nme(fitted, truth, points: list[int]) -> float:
    """Mean over photos of the NME of ``points`` of (B, 68, 2) ``fitted`` against ``truth``, by the annotated box."""
    from f2p.perception.landmark_metrics import box_size, nme

    errors = [float(nme(f[points], t[points], box_size(t))) for f, t in zip(fitted, truth)]
    return 100 * sum(errors) / len(errors)


def main() -> None:
    from f2p.conventions import LANDMARK_REGIONS
    from f2p.fitting.fitter import Fitter
    from f2p.fitting.instant import quality_stages, quality_steps
    from f2p.perception.align import apply_affine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qualities", nargs="+", default=["fast", "best"],
                        help="fitting qualities (default fast best)")
    parser.add_argument("--regions", nargs="+", default=list(LANDMARK_REGIONS), choices=list(LANDMARK_REGIONS),
                        help="regions held out in turn (default all)")
    args = parser.parse_args()

    import torch

    from f2p.morphable.registry import load_model
    from f2p.perception.annotations import read_face_set
    from f2p.perception.detectors import create_detector
    from f2p.perception.identity.embedder import create_embedder
    from f2p.perception.image_io import load_image
    from f2p.perception.photo import align_sample, detect_landmarks
    from f2p.pipeline.photo_run import observations
    from f2p.render.renderer import MeshRenderer
    from f2p.scene.params import SceneSpec

    torch.set_num_threads(1)
    model = load_model("ict")
    spec = SceneSpec(model, (224, 224))
    detector, embedder, renderer = create_detector("auto"), create_embedder("dlib"), MeshRenderer()
    samples, truth = [], []
    for key, item in sorted(read_face_set(faces_dir()).items()):
        if item.annotation.points is None or item.annotation.points.shape[0] != 68:
            continue
        photo = load_image(item.image)
        found = detect_landmarks(item.image, photo, detector)
        samples.append(align_sample(item.image, photo, found.landmarks, found.confidence, found.source, 224,
                                    found.dense, True))
        truth.append(item.annotation.points)
    obs = observations(samples, embedder, model.device)
    to_photo = torch.stack([s.to_photo for s in samples])  # (B, 2, 3)

    fitters = {quality: Fitter(spec, renderer, quality_stages(quality, quality_steps(quality)), embedder)
               for quality in args.qualities}

    def fitted_points(quality: str, row_obs) -> tuple[torch.Tensor, float]:
        began = time.perf_counter()
        result = fitters[quality].fit(row_obs)
        return apply_affine(to_photo, result.scene.landmarks2d.cpu()), (time.perf_counter() - began) / len(samples)

    print(f"{len(samples)} shared photos with 68 annotated points, detector {detector.name}, ICT at 224 px")
    observed = {quality: fitted_points(quality, obs) for quality in args.qualities}
    header = f"{'region':8s}" + "".join(f"{q + ' held out':>18s}{q + ' observed':>18s}{q + ' s':>10s}"
                                        for q in args.qualities)
    print(header)
    print("-" * len(header))
    for region in args.regions:
        points = list(LANDMARK_REGIONS[region])
        row_obs = held_out_observations(obs, points)
        cells = []
        for quality in args.qualities:
            fitted, seconds = fitted_points(quality, row_obs)
            held, seen = region_nme(fitted, truth, points), region_nme(observed[quality][0], truth, points)
            cells.append(f"{held:17.2f}%{seen:17.2f}%{seconds:10.2f}")
        print(f"{region:8s}" + "".join(cells), flush=True)
    print(f"{'all 68':8s}" + "".join(f"{'':18s}{region_nme(observed[q][0], truth, list(range(68))):17.2f}%"
                                      f"{observed[q][1]:10.2f}" for q in args.qualities))
    print("(NME % of the annotated box over the region's points: fitted with the region held out, and with every "
          "point observed; s: seconds per photo)")


if __name__ == "__main__":
    main()
