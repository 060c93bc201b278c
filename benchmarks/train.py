"""Benchmark the learned regressor: training images/s and inference milliseconds per photo.

    python benchmarks/train.py                      # CPU: ICT at 64 px (configs/regressor.yaml), procedural at 64 px
    python benchmarks/train.py --device cuda --size 224 --batch 32
    python benchmarks/train.py --threads 1          # on a shared or busy CPU (see benchmarks/render.py)

Per configuration:

- ``data img/s``: synthetic images rendered per second by ``SyntheticFaces`` (the default data, rendered on the CPU);
- ``train img/s``: one training step of ``RegressorSystem`` (encoder, head, render, refiner, losses of
  configs/regressor.yaml, backward, AdamW step) on a fixed batch, images per second (data excluded);
- ``infer ms/photo``: ``predict_params`` (encoder + parameter head, no gradient) at batch 1 and per photo at the
  training batch size.

Times are medians of ``--repeats`` runs after one warm-up. Models come from ``$F2P_MODEL_PATH`` (default
``../shared/models`` beside the repository); ``procedural`` needs no files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeats: int, sync) -> float:
    fn()  # warm-up: lazy initialisation, allocator
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(face_model: str, size: int, batch_size: int, repeats: int, device: str) -> dict:
    """One row of the table."""
    import torch

    from f2p.data.batch import batch_observations
    from f2p.data.synthetic import SceneSampler, SyntheticFaces
    from f2p.morphable.registry import load_model
    from f2p.nets import ResNetEncoder, UNetRefiner
    from f2p.scene import SceneSpec
    from f2p.systems.regressor import LossWeights, RegressorSystem

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    faces = SyntheticFaces(SceneSpec(load_model(face_model), (size, size)), SceneSampler(), batch_size, seed=0)
    data_s = median_seconds(lambda: faces.__getitems__(list(range(batch_size))), repeats, lambda: None)
    system = RegressorSystem(ResNetEncoder(), UNetRefiner(), face_model=face_model, image_size=size,
                             weights=LossWeights(params=1.0)).to(device)
    batch = torch.utils.data.default_collate(faces.__getitems__(list(range(batch_size))))
    batch = system.transfer_batch_to_device(batch, torch.device(device), 0)
    optimizer = torch.optim.AdamW(system.parameters(), lr=1e-4)

    def train_step() -> None:
        obs = batch_observations(batch)
        loss = system.total_loss(system.loss_terms(system(obs.image, obs.landmarks), obs, batch["params"]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    system.train()
    train_s = median_seconds(train_step, repeats, sync)
    system.eval()
    one_s = median_seconds(lambda: system.predict_params(batch["image"][:1], batch["landmarks"][:1]), repeats, sync)
    many_s = median_seconds(lambda: system.predict_params(batch["image"], batch["landmarks"]), repeats, sync)
    return {"model": face_model, "size": size, "batch": batch_size, "data_img_s": batch_size / data_s,
            "train_img_s": batch_size / train_s, "infer_ms_b1": 1000 * one_s,
            "infer_ms_per_photo": 1000 * many_s / batch_size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models", nargs="+", default=["ict", "procedural"], help="face models")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels")
    parser.add_argument("--batch", type=int, default=16, help="training batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    os.environ.setdefault("F2P_MODEL_PATH", str(REPO.parent / "shared" / "models"))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    print(f"device {args.device} ({where}); torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    header = f"{'model':11} {'size':>4} {'batch':>5} {'data img/s':>10} {'train img/s':>11} {'infer ms b1':>11} " \
             f"{'infer ms/photo':>14}"
    print(header)
    print("-" * len(header))
    for face_model in args.models:
        r = measure(face_model, args.size, args.batch, args.repeats, args.device)
        print(f"{r['model']:11} {r['size']:4d} {r['batch']:5d} {r['data_img_s']:10.1f} {r['train_img_s']:11.1f} "
              f"{r['infer_ms_b1']:11.1f} {r['infer_ms_per_photo']:14.1f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share these cores)")


if __name__ == "__main__":
    main()
