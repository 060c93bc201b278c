"""How well the dense correspondence matches MediaPipe: MediaPipe's 468 points on renders of random faces against
the model's correspondence points projected through the render's camera.

    python benchmarks/correspondence.py                      # ICT, 20 faces, 224 and 448 px, yaw within +-30 deg
    python benchmarks/correspondence.py --faces 50 --sizes 224

Faces are ``f2p.data.synthetic.SyntheticFaces`` with ``SceneSampler(yaw_deg=--yaw)`` (identity and expression from
the model's priors, pitch within +-15 and roll within +-10 degrees, skin-coloured with a smooth colour field, SH
light, random background), rendered by f2p's renderer. Each render goes through ``MediaPipeDetector``; its 468 mesh
points are compared with ``dense_correspondence(model)`` evaluated on the render's mesh and projected by its camera
(``render_scene(..., dense=True).dense2d``), point by point. The table gives the median and 95th percentile of these
distances in pixels, for all points, for those off the face oval and for the oval itself (``DenseCorrespondence
.contour``: on a turned head the detected oval is the silhouette, which a fixed surface point cannot follow), with
"@224" the same in pixels of a 224 px image, and the mean offset (x, y) of the points off the oval (a sign of a
pixel-convention mismatch if it is not near 0), then that offset per part of the face (the mesh points of the
iBUG-68 view's jaw, brows, nose, eyes and lips). Models come from ``$F2P_MODEL_PATH`` (default ``../shared/models``);
nothing is downloaded. The correspondence is recomputed in a temporary cache folder, never read from the user's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RENDER_CHUNK = 5
"""Faces rendered per batch (bounds the renderer's memory at large sizes)."""
REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "lips": range(48, 68)}
"""iBUG-68 parts whose mesh points (``face_mesh.IBUG68_TABLE``) get their own mean offset line."""


@dataclass(frozen=True)
class Distances:
    """MediaPipe against the correspondence on the renders of one image size.

    Attributes:
        size: image side S in pixels.
        rendered: faces rendered.
        projected: (N, 468, 2) the projected correspondence points, pixels, of the N faces MediaPipe found.
        errors: (N, 468, 2) MediaPipe's points minus ``projected``.
        contour: (468,) bool, the face-oval points.
        yaw_deg: (N,) the head's yaw of each found face.
        eye_distance: (N,) distance in pixels of the projected outer eye corners (mesh points 33 and 263), for scale.
    """

    size: int
    rendered: int
    projected: object
    errors: object
    contour: object
    yaw_deg: object
    eye_distance: object

    @property
    def distances(self):
        """(N, 468) point distances in pixels."""
        return self.errors.norm(dim=-1)


def measure(model, size: int, faces: int, seed: int, yaw_deg: float, detector) -> Distances:
    """Render ``faces`` random faces of ``model`` at ``size`` px and compare MediaPipe with the correspondence.

    Args:
        model: a ``MorphableModel``.
        size: image side in pixels.
        faces: number of renders.
        seed: seed of the ``SyntheticFaces`` set (the same seed gives the same faces at every size).
        yaw_deg: yaw range, uniform in +-``yaw_deg``.
        detector: a ``MediaPipeDetector``.
    """
    import torch

    from f2p.data import batch as keys
    from f2p.data.synthetic import SceneSampler, SyntheticFaces
    from f2p.face_mesh import NUM_MESH_POINTS
    from f2p.morphable.correspondence import dense_correspondence
    from f2p.render.rotations import axis_angle_to_euler
    from f2p.scene.compose import render_scene
    from f2p.scene.params import POSE, SceneSpec

    spec = SceneSpec(model, (size, size))
    renders = SyntheticFaces(spec, SceneSampler(yaw_deg=yaw_deg), faces, seed)
    targets, errors, yaws, eyes = [], [], [], []
    for start in range(0, faces, RENDER_CHUNK):
        items = renders.__getitems__(list(range(start, min(start + RENDER_CHUNK, faces))))
        params = {name: torch.stack([item[keys.PARAMS][name] for item in items]) for name in items[0][keys.PARAMS]}
        with torch.no_grad():
            projected = render_scene(spec, params, None, dense=True).dense2d  # (B, 468, 2)
        for item, target, pose in zip(items, projected, params[POSE]):
            found = detector.detect(item[keys.IMAGE])
            if found:
                targets.append(target)
                errors.append(found[0].dense_landmarks[:NUM_MESH_POINTS] - target)
                yaws.append(float(axis_angle_to_euler(pose)[0]))
                eyes.append(float((target[33] - target[263]).norm()))
    empty = torch.zeros(0, NUM_MESH_POINTS, 2)
    stack = lambda points: torch.stack(points) if points else empty  # noqa: E731
    return Distances(size, faces, stack(targets), stack(errors), dense_correspondence(model).contour,
                     torch.tensor(yaws), torch.tensor(eyes))


def summary(result: Distances) -> dict[str, float]:
    """Median / 95th percentile distances (all, off the oval, oval), in pixels, and the mean offset off the oval."""
    import torch

    d = result.distances
    parts = {"all": d.reshape(-1), "inner": d[:, ~result.contour].reshape(-1), "oval": d[:, result.contour].reshape(-1)}
    row = {}
    for name, values in parts.items():
        row[f"{name}_median"] = float(values.median()) if values.numel() else float("nan")
        row[f"{name}_p95"] = float(torch.quantile(values, 0.95)) if values.numel() else float("nan")
    offset = result.errors[:, ~result.contour].reshape(-1, 2).mean(dim=0).tolist() if len(d) else [float("nan")] * 2
    row["offset_x"], row["offset_y"] = offset
    return row


def print_table(results: list[Distances]) -> None:
    header = (f"{'size':>5s} {'found':>7s} {'all med/p95':>13s} {'inner med/p95':>14s} {'oval med/p95':>14s} "
              f"{'inner @224':>11s} {'inner offset x, y':>18s}")
    print(header)
    print("-" * len(header))
    for result in results:
        row = summary(result)
        scale = 224 / result.size
        print(f"{result.size:5d} {len(result.distances):3d}/{result.rendered:<3d} "
              f"{row['all_median']:6.2f}/{row['all_p95']:<6.2f} {row['inner_median']:6.2f}/{row['inner_p95']:<7.2f} "
              f"{row['oval_median']:6.2f}/{row['oval_p95']:<7.2f} "
              f"{scale * row['inner_median']:5.2f}/{scale * row['inner_p95']:<5.2f} "
              f"{row['offset_x']:+8.2f}, {row['offset_y']:+6.2f}")
    print("(pixels; inner: off the face oval; @224: in pixels of a 224 px image)")
    for result in results:
        if len(result.distances):
            inner = result.distances[:, ~result.contour].median(dim=1).values  # (N,) per-face medians
            turned = result.yaw_deg.abs() >= 15
            print(f"{result.size} px: median outer-eye-corner distance {float(result.eye_distance.median()):.1f} px; "
                  f"per-face inner median {float(inner.min()):.2f} to {float(inner.max()):.2f} px; "
                  f"|yaw| < 15 deg {_median(inner[~turned])}, >= 15 deg {_median(inner[turned])}")


def print_regions(results: list[Distances]) -> None:
    """Mean offset (x, y) of MediaPipe's points from the correspondence's on the mesh points of each iBUG part."""
    from f2p.face_mesh import IBUG68_TABLE

    for result in results:
        if not len(result.errors):
            continue
        offsets = []
        for name, part in REGIONS.items():
            points = sorted({i for k in part for i in IBUG68_TABLE[k]})
            x, y = result.errors[:, points].reshape(-1, 2).mean(dim=0).tolist()
            offsets.append(f"{name} {x:+.1f}, {y:+.1f}")
        print(f"{result.size} px: mean offset MediaPipe - correspondence (x, y px) on " + "; ".join(offsets))


def _median(values) -> str:
    return f"{float(values.median()):.2f} px ({len(values)} faces)" if len(values) else "- (0 faces)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ict", help="face model (registry name or path; default ict)")
    parser.add_argument("--faces", type=int, default=20, help="renders per size (default 20)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 448], help="image sides (default 224 448)")
    parser.add_argument("--yaw", type=float, default=30.0, help="yaw range in degrees, uniform in +-yaw (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the faces (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("F2P_MODEL_PATH", str(REPO.parent / "shared" / "models"))
    import torch

    from f2p.morphable.registry import load_model
    from f2p.perception.mediapipe.detector import MediaPipeDetector

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="f2p-correspondence-") as cache:
        os.environ["F2P_CACHE_DIR"] = cache  # a correspondence computed from the current code, not a cached one
        model, detector = load_model(args.model), MediaPipeDetector()
        print(f"{args.model}: {args.faces} faces per size, yaw within +-{args.yaw:g} deg, seed {args.seed}\n")
        results = [measure(model, size, args.faces, args.seed, args.yaw, detector) for size in args.sizes]
    print_table(results)
    print_regions(results)


if __name__ == "__main__":
    main()
