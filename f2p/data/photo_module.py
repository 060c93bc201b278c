"""Folders of photos for the fitting system: each rank gets its own share, nobody gets a photo twice.

Batches are ``PhotoBatch``es: the photo files, their output folder names and the loader that perceives them.
Photos are loaded where they are fitted (``pipeline.PhotoRun.process``), so that a photo whose results are
already complete is skipped before any detector runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from f2p.naming import output_names
from f2p.perception.crop import CROP_SIZE
from f2p.perception.image_io import find_photos
from f2p.perception.photo import PhotoLoader


@dataclass(frozen=True)
class PhotoBatch:
    """Photos fitted together.

    Attributes:
        paths: the photo files; names: their output folder names (``naming.output_names`` over all photos).
        load: photo file -> ``PhotoSample`` (detector or landmark file, crop, mask).
    """

    paths: list[Path]
    names: list[str]
    load: PhotoLoader


class PhotoDataset(Dataset):
    """The photos of a run as (path, output folder name) pairs.

    Args:
        images: photo paths.
    """

    def __init__(self, images: list[Path]) -> None:
        self.images = images
        self.names = output_names(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Path, str]:
        path = self.images[index]
        return path, self.names[path]


class PhotoDataModule(L.LightningDataModule):
    """Photos to fit, sharded across ranks without repeats (set the trainer's ``use_distributed_sampler: false``).

    Args:
        images: photo files and/or folders (one path, or a list).
        landmarks: "auto" | "fan" | "dlib" | path of an annotation file.
        crop_size: side of the aligned crop (must match the fitting system's).
        batch_size: photos fitted together.
    """

    def __init__(self, images: list[str] | str, landmarks: str = "auto", crop_size: int = CROP_SIZE,
                 batch_size: int = 8) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = [images] if isinstance(images, str) else images
        self.landmarks = landmarks
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.dataset: PhotoDataset | None = None
        self.load: PhotoLoader | None = None

    def setup(self, stage: str) -> None:
        photos = find_photos(self.images)
        self.dataset = PhotoDataset(photos)
        self.load = PhotoLoader(self.landmarks, self.crop_size, photos=photos)

    def _collate(self, items: list[tuple[Path, str]]) -> PhotoBatch:
        return PhotoBatch([path for path, _ in items], [name for _, name in items], self.load)

    def train_dataloader(self) -> DataLoader:
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = UnrepeatedDistributedSampler(self.dataset, num_replicas=world, rank=rank, shuffle=False)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=self._collate)
