"""Benchmark the rasterizer backends: forward+backward time and peak memory.

    python benchmarks/render.py            # ICT and SFM, 224 and 512 px, batch 1 and 8 (+ batch 64 torch)
    python benchmarks/render.py --quick    # 224 px, batch 1 only

Each configuration runs in a fresh subprocess so that its peak memory is its own (CPU: peak RSS
above the RSS before the first render; CUDA: ``torch.cuda.max_memory_allocated``). Two
forward+backward timings:

- ``raster``: the backend alone, screen-space vertices -> ``Fragments``, backward of a loss on
  barycentrics and depth (what differs between backends);
- ``render``: the whole ``MeshRenderer`` (projection, rasterization, normals, per-vertex colours,
  SH shading), backward of a photometric loss to the model-space vertices.

Times are the median of ``--repeats`` runs after a small warm-up render (PyTorch3D's un-binned CPU
kernel, which takes seconds per image, runs ``SLOW_BACKEND_REPEATS`` times per measurement). On a
shared or busy machine use ``--threads 1``: with more threads than free cores, PyTorch's OpenMP
workers spin and many small ops slow down by an order of magnitude. The last line is
``ratio_pytorch3d_over_torch_cpu_224_b1``: PyTorch3D's render forward+backward time over ours on the
ICT mesh at 224 px, batch 1, both measured in this run. Meshes come from ``$F2P_MODEL_PATH``
(default ``../shared/models`` beside the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MESH_DISTANCE = {"ict": 1.9, "sfm": 1.2}
"""Camera distance (metres) at which each mesh fills the frame with the default 12.6-degree camera."""
POSE_DEG = (20.0, -5.0, 3.0)
"""Head pose (yaw, pitch, roll) of every benchmark render."""
SLOW_BACKEND_REPEATS = 1
"""Timed runs of PyTorch3D on CPU (per measurement)."""


def models_dir() -> Path:
    return Path(os.environ.get("F2P_MODEL_PATH", REPO.parent / "shared" / "models"))


def load_mesh(name: str):
    """(V, 3) float32 vertices in metres and (F, 3) long faces of the ICT or SFM neutral mesh."""
    import numpy as np
    import torch

    from f2p.conventions import M_PER_CM, M_PER_MM

    if name == "ict":
        path = models_dir() / "ict_facekit" / "ict_facekit_light_v1_skin14062.npz"
        with np.load(path) as data:
            verts = torch.tensor(data["neutral"]) * M_PER_CM
            quads = torch.tensor(data["faces"], dtype=torch.long)
        return verts, torch.cat([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    path = models_dir() / "sfm_3448" / "sfm_shape_3448_converted.npz"
    with np.load(path) as data:
        return torch.tensor(data["shape_mean"]) * M_PER_MM, torch.tensor(data["triangles"], dtype=torch.long)


def rss_mb() -> float:
    """Current resident memory of this process (MB)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(mesh: str, backend: str, size: int, batch: int, repeats: int, device: str) -> dict:
    """Time one configuration in this process; return a row of the table."""
    import torch

    from f2p.render import MeshRenderer, PinholeCamera, default_camera, default_sh, get_rasterizer
    from f2p.render.rotations import euler_to_axis_angle, head_pose_extrinsics

    verts, faces = load_mesh(mesh)
    verts, faces = verts.to(device), faces.to(device)
    base = default_camera(batch, (size, size), distance=MESH_DISTANCE[mesh], device=device)
    R, t = head_pose_extrinsics(euler_to_axis_angle(torch.tensor([POSE_DEG], device=device).expand(batch, 3)), base.t)
    camera = PinholeCamera(base.fx, base.fy, base.cx, base.cy, R, t, (size, size))
    batch_verts = verts.expand(batch, -1, -1).contiguous()
    colors = (0.5 + 0.4 * torch.sin(60.0 * batch_verts)).contiguous()
    sh = default_sh(batch, device=device)
    screen = camera.to_screen(batch_verts).detach()
    rasterizer = get_rasterizer(backend, device)
    renderer = MeshRenderer(backend=backend)
    target = torch.rand(batch, 3, size, size, device=device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def raster() -> None:
        s = screen.clone().requires_grad_()
        fragments = rasterizer(s, faces, (size, size), True)
        (fragments.bary.sum() + fragments.zbuf.sum()).backward()
        sync()

    def render() -> None:
        v = batch_verts.clone().requires_grad_()
        out = renderer(v, faces, camera, sh, colors=colors)
        ((out.image - target) ** 2).mean().backward()
        sync()

    def timed(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    baseline = rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    small = default_camera(batch, (32, 32), distance=MESH_DISTANCE[mesh], device=device)
    renderer(batch_verts, faces, small, sh, colors=colors)  # warm-up: lazy initialisation, allocator
    row = {"mesh": mesh, "faces": int(faces.shape[0]), "size": size, "batch": batch, "backend": backend,
           "raster_fwd_bwd_ms": timed(raster), "render_fwd_bwd_ms": timed(render)}
    if device.startswith("cuda"):
        row["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
    return row


def configurations(quick: bool, device: str) -> list[tuple[str, str, int, int]]:
    sizes, batches = ((224,), (1,)) if quick else ((224, 512), (1, 8))
    configs = [(mesh, backend, size, batch) for mesh in ("ict", "sfm") for size in sizes for batch in batches
               for backend in ("torch", "pytorch3d")]
    if not quick:
        configs.append(("ict", "torch", 224, 64))  # the largest batch the issue asks for
    return configs


def run_worker(config: tuple[str, str, int, int], repeats: int, device: str, threads: int) -> dict:
    mesh, backend, size, batch = config
    slow = backend == "pytorch3d" and not device.startswith("cuda")
    command = [sys.executable, __file__, "--worker", json.dumps([mesh, backend, size, batch]), "--device", device,
               "--repeats", str(SLOW_BACKEND_REPEATS if slow else repeats), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {config} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    header = (f"{'mesh':5} {'faces':>6} {'size':>5} {'batch':>5} {'backend':10} {'raster f+b':>12} "
              f"{'render f+b':>12} {'peak MB':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['mesh']:5} {r['faces']:6d} {r['size']:5d} {r['batch']:5d} {r['backend']:10} "
              f"{r['raster_fwd_bwd_ms']:10.1f}ms {r['render_fwd_bwd_ms']:10.1f}ms {r['peak_mb']:8.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="224 px, batch 1 only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(*json.loads(args.worker), repeats=args.repeats, device=args.device)))
        return

    import torch

    print(f"device {args.device}; {os.cpu_count()} CPU cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} at start")
    rows = []
    for config in configurations(args.quick, args.device):
        rows.append(run_worker(config, args.repeats, args.device, args.threads))
        print(f"  measured {config}", file=sys.stderr, flush=True)
    print_table(rows)
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share these cores)")

    def time_of(backend: str, column: str) -> float:
        return next(r[column] for r in rows
                    if (r["mesh"], r["size"], r["batch"], r["backend"]) == ("ict", 224, 1, backend))

    def ratio(column: str) -> float:
        return time_of("pytorch3d", column) / time_of("torch", column)

    print(f"rasterizer alone, ICT 224 px batch 1: PyTorch3D / torch = {ratio('raster_fwd_bwd_ms'):.1f}")
    print(f"ratio_pytorch3d_over_torch_{args.device}_224_b1: {ratio('render_fwd_bwd_ms'):.1f}")


if __name__ == "__main__":
    main()
