"""Folders of photos for the fitting system: each rank gets its own share, nobody gets a photo twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from f2p.data.photos import LandmarkFile, PhotoError, PhotoSample, find_images, load_sample
from f2p.perception.crop import CROP_SIZE
from f2p.perception.detection import LandmarkDetector


@dataclass(frozen=True)
class PhotoFailure:
    """A photo that could not be prepared; ``reason`` is one line."""

    path: str
    reason: str


class PhotoDataset(Dataset):
    """Photos prepared for fitting; an unusable photo comes back as a ``PhotoFailure`` instead of raising.

    Args:
        images: photo paths.
        landmarks: "auto" | "fan" | "dlib" (a detector, created lazily in each worker) or an annotation file.
        crop_size: side of the aligned crop.
    """

    def __init__(self, images: list[Path], landmarks: str = "auto", crop_size: int = CROP_SIZE) -> None:
        self.images = images
        self.landmarks = landmarks
        self.crop_size = crop_size
        self._detector: LandmarkDetector | None = None
        self._landmark_file: LandmarkFile | None = None

    def __len__(self) -> int:
        return len(self.images)

    def _source(self) -> tuple[LandmarkDetector | None, LandmarkFile | None]:
        if self.landmarks in ("auto", "fan", "dlib"):
            if self._detector is None:
                from f2p.perception.detectors import create_detector

                self._detector = create_detector(self.landmarks)
            return self._detector, None
        if self._landmark_file is None:
            self._landmark_file = LandmarkFile(self.landmarks)
        return None, self._landmark_file

    def __getitem__(self, index: int) -> PhotoSample | PhotoFailure:
        path = self.images[index]
        try:
            return load_sample(path, *self._source(), crop_size=self.crop_size)
        except PhotoError as error:
            return PhotoFailure(str(path), error.reason)


def keep_as_list(items: list) -> list:
    """Collate function: photos differ in size, so a batch stays a list."""
    return items


class PhotoDataModule(L.LightningDataModule):
    """Photos to fit, sharded across ranks without repeats (set the trainer's ``use_distributed_sampler: false``).

    Args:
        images: photo files and/or folders.
        landmarks: "auto" | "fan" | "dlib" | path of an annotation file.
        crop_size: side of the aligned crop (must match the fitting system's).
        batch_size: photos fitted together.
        num_workers: data-loading processes.
    """

    def __init__(self, images: list[str], landmarks: str = "auto", crop_size: int = CROP_SIZE, batch_size: int = 8,
                 num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = images
        self.landmarks = landmarks
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dataset: PhotoDataset | None = None

    def setup(self, stage: str) -> None:
        self.dataset = PhotoDataset(find_images(self.images), self.landmarks, self.crop_size)

    def train_dataloader(self) -> DataLoader:
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = UnrepeatedDistributedSampler(self.dataset, num_replicas=world, rank=rank, shuffle=False)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, collate_fn=keep_as_list,
                          num_workers=self.num_workers)
