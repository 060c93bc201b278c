"""The landmark regressor on held-out synthetic faces with the measured detector noise, against the mean face and
against fitting, plus its speed; and the export of a training checkpoint to shipped weights.

    python benchmarks/landmark_regressor.py                          # shipped ICT weights, 256 faces, 32 fitted
    python benchmarks/landmark_regressor.py --weights CKPT_OR_PT --faces 512 --fit-faces 0
    python benchmarks/landmark_regressor.py --export CKPT            # -> f2p/weights/ict_landmark_regressor.{pt,json}
    python benchmarks/landmark_regressor.py --weights IMAGE_CKPT     # a configs/landmark_image_regressor.yaml run

A network that reads the crops too (``image_encoder``) gets the same faces and landmarks rendered into crops
(``crop_appearance``, the image config's appearance), trains at batch 16 in the throughput run, and has no
``--placement`` measurement (it moves landmarks, not crops).

Faces: ``f2p.data.landmark_synthetic.LandmarkFaceBatches`` with the training distribution (``LandmarkSampler()``:
yaw within +-50 degrees, 30 % of faces within +-90, dense and 68 landmarks with ``DetectorNoise`` times
``--noise-level``, or only its per-point part or only its per-face affine warp and shift with ``--noise-part``;
every face with dense points unless ``--dense-drop``; cropped from the exact points, or with ``--crop-from-noisy``
from the noisy ones as photos are), seed ``--seed`` (default 2, the test split of the training config's seed 0).
Methods:

    prior       the mean face placed over the landmarks (``SceneSpec.initial``: what a fit starts from)
    network     the landmark regressor alone (``reconstruct --quality instant --steps 0``)
    instant     ``--quality instant``: the network, then ``fitting.instant``'s two Levenberg-Marquardt iterations
    fit         ``--quality fast`` fitting (Levenberg-Marquardt on the 68 and dense landmarks) from the mean face
    fit+net     the same fit started from the network's prediction

Columns: similarity-aligned face-region vertex error of the unposed meshes (median over faces of each face's median,
mm; the protocol of ``evaluate --synthetic``), head rotation error (median, degrees), identity RMSE shape-weighted
(prior standard deviations), expression RMSE (slider units) over all sliders and per slider group (the name's
prefix: brow, eye, jaw, mouth, ...), seconds per face; then the same vertex and rotation errors per yaw bin.
``--placement`` adds where the face sits in the crop: the same faces with exact landmarks, moved in the crop (7 px
up, 3 px sideways, +-4 % in scale about the crop's centre, as faces cropped any other way than the crop convention
are), and the mean distance in pixels of the network's projected 68 points to the moved input points.
Speed: the network after detection (``LandmarkPredictor`` on ``Observations``) at batch 1 and per face at batch 64,
medians of ``--repeats``; training throughput in faces per second (drawing a batch of 256, forward, losses,
backward, AdamW step, one thread; the benchmarked network's architecture, ``LandmarkLossWeights``' default terms).
Models from ``$F2P_MODEL_PATH`` (default ``../shared/models``).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
YAW_BINS = ((0, 30), (30, 60), (60, 91))
"""|yaw| bins of the second table, degrees."""


def slider_groups(names: tuple[str, ...]) -> dict[str, list[int]]:
    """{prefix: indices} of expression sliders by the lower-case prefix of their name (``mouthSmile_L`` -> mouth)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(re.match(r"[a-z]+", name).group(0), []).append(i)
    return groups


def errors(spec, params: dict, truth: dict) -> dict:
    """Per-face errors {name: (B,)} of ``params`` against ``truth`` (module docstring's columns)."""
    import torch

    from f2p.evaluation.parameters import prior_scales, recovery_errors

    model = spec.model
    scales = prior_scales(model)
    found = recovery_errors(model, params, truth, scales, alignments=("similarity",))
    row = {"vertex_mm": found.vertex_mm["similarity"].median(1).values, "rotation_deg": found.pose_deg["geodesic"]}
    if "identity" in found.group_shape_rmse:
        row["identity"] = found.group_shape_rmse["identity"]
    if "expression" in model.groups:
        difference = params["expression"] - truth["expression"]  # (B, K) slider units
        row["expression"] = difference.pow(2).mean(1).sqrt()
        for name, index in slider_groups(model.groups["expression"].component_names or ()).items():
            row[f"expr_{name}"] = difference[:, torch.tensor(index)].pow(2).mean(1).sqrt()
    return row


def median_ms(fn, repeats: int) -> float:
    import statistics

    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def crop_appearance(network):
    """The appearance of the rendered crops a network that reads them is given (``configs/landmark_image_regressor
    .yaml``'s), or None for a landmarks-only network."""
    from f2p.data.synthetic import SceneSampler

    return None if network.crop_encoder is None else SceneSampler(specular_max=0.3)


def training_throughput(network, steps: int, batch_size: int = 256) -> float:
    """Faces per second of training a network of ``network``'s architecture (module docstring); a network that
    reads crops trains on rendered ones (``crop_appearance``)."""
    import torch

    from f2p.data.landmark_synthetic import PARAMS, LandmarkFaceBatches, LandmarkSampler
    from f2p.systems.landmark_regressor import LandmarkRegressorSystem

    spec = network.spec
    system = LandmarkRegressorSystem(face_model=spec.model.name, image_size=spec.image_size[0],
                                     hidden=network.hidden, depth=network.depth, blocks=network.blocks,
                                     refine=network.refine, refine_hidden=network.refine_hidden,
                                     image_encoder=network.image_encoder)
    data = LandmarkFaceBatches(system.spec, LandmarkSampler(), steps + 1, batch_size, seed=0,
                               images=crop_appearance(network))
    optimizer = torch.optim.AdamW(system.parameters(), lr=1e-3)
    weights = vars(system.weights)

    def step(index: int) -> None:
        batch = data[index]
        terms = system.loss_terms(system(batch), batch[PARAMS])
        loss = sum(weights[name] * value.mean() for name, value in terms.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(0)
    began = time.perf_counter()
    for index in range(1, steps + 1):
        step(index)
    return steps * batch_size / (time.perf_counter() - began)


PLACEMENTS = (("centred", (0.0, 0.0), 1.0), ("7 px up", (0.0, -7.0), 1.0), ("3 px sideways", (3.0, 0.0), 1.0),
              ("+4 % scale", (0.0, 0.0), 1.04), ("-4 % scale", (0.0, 0.0), 0.96))
"""``--placement``'s moves of the face in the crop: (name, (dx, dy) pixels, scale about the crop's centre)."""
NOISE_PARTS = ("all", "point", "warp")
"""``--noise-part`` choices: the measured noise, its per-point part alone, its per-face warp and shift alone."""


def detector_noise(part: str):
    """``DetectorNoise()`` or the part of it ``--noise-part`` names."""
    from dataclasses import replace

    from f2p.data.landmark_synthetic import DetectorNoise

    noise = DetectorNoise()
    if part == "point":
        return replace(noise, linear_std=0.0, shift_std=0.0)
    return replace(noise, point_std=0.0) if part == "warp" else noise


def placement_errors(spec, predictor, batch: dict) -> dict[str, float]:
    """{move: mean pixel distance of the network's projected 68 points to the moved input} over ``batch``'s faces
    (exact landmarks) moved by each of ``PLACEMENTS``."""
    import torch

    from f2p.data.landmark_synthetic import CONFIDENCE, DENSE, DENSE_CONFIDENCE, LANDMARKS
    from f2p.scene.compose import render_scene
    from f2p.scene.observations import Observations

    B, S = len(batch[LANDMARKS]), spec.image_size[0]
    centre = (S - 1) / 2
    present = batch[CONFIDENCE] > 0
    found = {}
    for name, shift, scale in PLACEMENTS:
        def move(points):
            return (points - centre) * scale + centre + points.new_tensor(shift)

        landmarks = move(batch[LANDMARKS])
        obs = Observations(image=torch.zeros(B, 3, S, S), landmarks=landmarks, confidence=batch[CONFIDENCE],
                           dense=move(batch[DENSE]), dense_confidence=batch[DENSE_CONFIDENCE])
        with torch.no_grad():
            projected = render_scene(spec, predictor(obs), None).landmarks2d
        found[name] = float((projected - landmarks).norm(dim=-1)[present].mean())
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=None, help="weights (.pt + .json) or checkpoint (default: "
                                                                   "the shipped weights of --model)")
    parser.add_argument("--model", default="ict", help="face model (default ict)")
    parser.add_argument("--faces", type=int, default=256, help="held-out faces (default 256)")
    parser.add_argument("--fit-faces", type=int, default=32, help="of those, faces also fitted (default 32; 0: none)")
    parser.add_argument("--seed", type=int, default=2, help="seed of the faces (default 2)")
    parser.add_argument("--dense-drop", type=float, default=0.0,
                        help="share of faces without dense points (default 0: every face has them)")
    parser.add_argument("--noise-level", type=float, default=1.0,
                        help="detector noise as a multiple of the measured (default 1; 0: exact landmarks)")
    parser.add_argument("--noise-part", choices=NOISE_PARTS, default="all",
                        help="all of the measured noise (default), its per-point part alone (point) or its per-face "
                             "affine warp and shift alone (warp)")
    parser.add_argument("--placement", action="store_true",
                        help="also measure where the face sits in the crop (module docstring)")
    parser.add_argument("--crop-from-noisy", action="store_true",
                        help="crop each face from its noisy 68 points, as a photo is from its detections "
                             "(LandmarkSampler.crop_from_noisy; default: from the exact points)")
    parser.add_argument("--repeats", type=int, default=50, help="timing repeats (default 50)")
    parser.add_argument("--train-steps", type=int, default=5, help="steps of the throughput run (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--export", type=Path, default=None, metavar="CHECKPOINT",
                        help="write CHECKPOINT's network to f2p/weights/<model>_landmark_regressor.{pt,json} and stop")
    parser.add_argument("--half", action="store_true",
                        help="with --export: store the weights as float16 (half the file, for networks over 10 MB)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("F2P_MODEL_PATH", str(REPO.parent / "shared" / "models"))
    import torch

    from f2p.data.landmark_synthetic import (CONFIDENCE, DENSE, DENSE_CONFIDENCE, IMAGE, LANDMARKS, PARAMS,
                                             LandmarkFaceBatches, LandmarkSampler)
    from f2p.fitting.estimate import FittingEstimator
    from f2p.fitting.fitter import Fitter
    from f2p.fitting.instant import instant_stages
    from f2p.fitting.schedule import schedule_for
    from f2p.morphable.registry import load_model
    from f2p.render.rotations import axis_angle_to_euler
    from f2p.scene.observations import Observations
    from f2p.scene.params import SceneSpec
    from f2p.systems.landmark_weights import export_weights, load_landmark_regressor, shipped_weights

    torch.set_num_threads(args.threads)
    if args.export is not None:
        for path in export_weights(args.export, shipped_weights(args.model), half=args.half):
            print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
        return
    weights = args.weights or shipped_weights(args.model)
    spec = SceneSpec(load_model(args.model), (224, 224))
    predictor = load_landmark_regressor(weights, expect=spec)
    level = (args.noise_level, args.noise_level)
    if args.crop_from_noisy and args.noise_level <= 0:
        raise SystemExit("--crop-from-noisy needs detector noise (--noise-level > 0)")
    sampler = LandmarkSampler(dense_drop=args.dense_drop, noise=detector_noise(args.noise_part), noise_levels=level,
                              crop_from_noisy=args.crop_from_noisy) \
        if args.noise_level > 0 else LandmarkSampler(dense_drop=args.dense_drop, noise=None)
    appearance = crop_appearance(predictor.network)  # the same faces and landmarks, rendered for such a network
    batch = LandmarkFaceBatches(spec, sampler, 1, args.faces, args.seed, appearance)[0]
    B = args.faces
    obs = Observations(image=batch.get(IMAGE, torch.zeros(B, 3, 224, 224)), landmarks=batch[LANDMARKS],
                       confidence=batch[CONFIDENCE], dense=batch[DENSE], dense_confidence=batch[DENSE_CONFIDENCE])
    truth = batch[PARAMS]
    yaw = axis_angle_to_euler(truth["pose"])[:, 0].abs()
    instant = Fitter(spec, None, instant_stages())
    results, seconds, counts = {}, {}, {}
    results["prior"] = errors(spec, spec.initial(B, obs.landmarks), truth)
    seconds["prior"], counts["prior"] = 0.0, B
    began = time.perf_counter()
    network = predictor(obs)
    seconds["network"], counts["network"] = (time.perf_counter() - began) / B, B
    results["network"] = errors(spec, network, truth)
    if args.fit_faces > 0:
        F = min(args.fit_faces, B)
        index = torch.arange(F)
        few, few_truth = obs.select(index), {name: value[:F] for name, value in truth.items()}
        fast = Fitter(spec, None, schedule_for("fast"))
        for name, fitter, initializer in (("instant", instant, predictor), ("fit", fast, None),
                                          ("fit+net", fast, predictor)):
            began = time.perf_counter()
            fitted = FittingEstimator(fitter, initializer)(few).params
            seconds[name], counts[name] = (time.perf_counter() - began) / F, F
            results[name] = errors(spec, fitted, few_truth)
    part = {"all": "", "point": " (its per-point part)", "warp": " (its warp and shift)"}[args.noise_part]
    print(f"{weights}: {B} held-out {args.model} faces (seed {args.seed}), detector noise {args.noise_level:g} x "
          f"measured{part}, "
          f"{int((obs.dense_confidence[:, 0] > 0).sum())} with dense points, cropped from their "
          f"{'noisy' if args.crop_from_noisy else 'exact'} points; fits on the first {args.fit_faces}\n")
    columns = [c for c in results["network"] if c != "vertex_mm" and c != "rotation_deg"]
    header = f"{'method':8s} {'faces':>5s} {'vertex mm':>9s} {'rot deg':>7s} " + " ".join(
        f"{c.replace('expr_', ''):>8s}" for c in columns) + f" {'s/face':>7s}"
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        print(f"{name:8s} {counts[name]:5d} {float(row['vertex_mm'].median()):9.2f} "
              f"{float(row['rotation_deg'].median()):7.2f} "
              + " ".join(f"{float(row[c].mean()):8.3f}" for c in columns) + f" {seconds[name]:7.4f}")
    print("(vertex: median over faces, similarity-aligned; rotation: median; identity: shape-weighted RMSE, prior "
          "std; expression columns: RMSE in slider units, mean over faces)\n")
    print(f"{'method':8s} " + " ".join(f"{f'|yaw| {lo}-{hi}: mm, deg':>24s}" for lo, hi in YAW_BINS))
    for name, row in results.items():
        cells = []
        for lo, hi in YAW_BINS:
            chosen = ((yaw >= lo) & (yaw < hi))[:counts[name]]
            cells.append(f"{float(row['vertex_mm'][chosen].median()):8.2f} {float(row['rotation_deg'][chosen].median()):6.2f}"
                         f" ({int(chosen.sum()):3d})" if chosen.any() else f"{'-':>24s}")
        print(f"{name:8s} " + " ".join(f"{c:>24s}" for c in cells))
    if args.placement and appearance is not None:
        print("\n--placement moves landmarks, not crops: not measured for a network that reads the crops")
    elif args.placement:
        exact = LandmarkFaceBatches(spec, LandmarkSampler(dense_drop=args.dense_drop, noise=None), 1, B, args.seed)[0]
        moved = placement_errors(spec, predictor, exact)
        print("\nwhere the face sits in the crop (exact landmarks; the network's 68 points vs the moved input, mean "
              "px): " + "; ".join(f"{name} {value:.2f}" for name, value in moved.items()))
    one = obs.select(torch.tensor([0]))
    many = obs.select(torch.arange(min(64, B)))
    print(f"\nnetwork after detection: {median_ms(lambda: predictor(one), args.repeats):.2f} ms at batch 1, "
          f"{median_ms(lambda: predictor(many), max(5, args.repeats // 5)) / len(many.landmarks):.3f} ms per face at "
          f"batch {len(many.landmarks)} ({args.threads} thread(s))")
    instant_ms = median_ms(lambda: FittingEstimator(instant, predictor)(one), max(5, args.repeats // 5))
    print(f"--quality instant after detection (network and its iterations): {instant_ms:.2f} ms at batch 1")
    train_batch = 256 if appearance is None else 16  # rendered crops and a ResNet: a CPU manages far fewer
    print(f"training throughput: {training_throughput(predictor.network, args.train_steps, train_batch):.0f} faces/s "
          f"(batch {train_batch}, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
