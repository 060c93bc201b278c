"""Folders of face photos for training the regressor, through the ``prepare`` cache.

Landmarks, boxes and identity embeddings come from ``python -m f2p prepare PHOTOS --out PREPARED`` records
(``f2p.perception.prepared``). Photos without a record are prepared once by ``prepare_data`` (one process per
node under DDP) with the same code as ``prepare``, which writes their records into the cache, so the next run
starts at once. Items are aligned crops (``f2p.perception.crop`` framing) at the regressor's size with the batch
keys of ``f2p.data.batch``.

Splits: a photo is in the validation split when a hash of its file name falls below ``val_fraction`` (stable
across runs, machines and photo order); the test stage uses the validation split; ``predict`` takes
``predict_photos`` (default: every photo).

Training augmentation keeps the landmarks consistent: a horizontal flip mirrors the crop, the face mask and the
landmarks (x -> S - 1 - x, and iBUG partners swapped with ``IBUG68_MIRROR``) and composes ``to_photo`` with the
flip; colour jitter changes brightness, contrast and saturation. The cached identity embedding of a flipped photo
is kept (face-recognition embeddings of a mirrored face describe the same person).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from f2p.conventions import IBUG68_MIRROR
from f2p.data import batch as keys
from f2p.data.split_loaders import SplitLoaders
from f2p.face_mesh import MIRROR_468, NUM_MESH_POINTS
from f2p.naming import output_names
from f2p.perception.detection import DETECTION_MAX_SIDE, DetectionFailure
from f2p.perception.detectors import create_detector
from f2p.perception.image_io import find_photos, load_image
from f2p.perception.photo import align_sample
from f2p.perception.prepare import optional_identity_embedder, prepare_photo
from f2p.perception.prepared import PreparedRecord, load_prepared, photo_key, write_record

log = logging.getLogger("f2p")


def in_validation(path: str | Path, fraction: float) -> bool:
    """Whether ``path`` belongs to the validation split: a hash of its file name in [0, 1) below ``fraction``."""
    digest = hashlib.sha1(Path(path).name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def flip_item(item: dict) -> dict:
    """The item of the horizontally mirrored crop (image, mask, landmarks with partners swapped, ``to_photo``)."""
    S = item[keys.IMAGE].shape[-1]
    mirror = list(IBUG68_MIRROR)
    landmarks = item[keys.LANDMARKS][mirror].clone()
    landmarks[:, 0] = S - 1 - landmarks[:, 0]
    flip = torch.tensor([[-1.0, 0.0, S - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # mirrored crop -> crop pixels
    flipped = {**item, keys.IMAGE: item[keys.IMAGE].flip(-1), keys.FACE_MASK: item[keys.FACE_MASK].flip(-1),
               keys.LANDMARKS: landmarks, keys.CONFIDENCE: item[keys.CONFIDENCE][mirror],
               keys.TO_PHOTO: item[keys.TO_PHOTO] @ flip}
    if keys.DENSE in item:
        dense = item[keys.DENSE][list(MIRROR_468)].clone()
        dense[:, 0] = S - 1 - dense[:, 0]
        flipped.update({keys.DENSE: dense, keys.DENSE_CONFIDENCE: item[keys.DENSE_CONFIDENCE][list(MIRROR_468)]})
    return flipped


@dataclass(frozen=True)
class PhotoAugment:
    """Random training augmentation of an item (see module docstring).

    Attributes:
        flip: mirror half of the items.
        color_jitter: brightness, contrast and saturation factors drawn from ``1 +- color_jitter``; 0 for none.
    """

    flip: bool = True
    color_jitter: float = 0.1

    def __call__(self, item: dict) -> dict:
        if self.flip and torch.rand(()) < 0.5:
            item = flip_item(item)
        if self.color_jitter > 0:
            jitter = v2.ColorJitter(self.color_jitter, self.color_jitter, self.color_jitter)
            item = {**item, keys.IMAGE: jitter(item[keys.IMAGE]).clamp(0.0, 1.0)}
        return item


class FaceImages(Dataset):
    """Prepared photos as aligned-crop items (largest face of each photo).

    Args:
        items: (photo, its prepare record) pairs.
        names: output folder name of each photo (``predict``).
        image_size: crop side S.
        augment: training augmentation, or None.
    """

    def __init__(self, items: list[tuple[Path, PreparedRecord]], names: list[str], image_size: int,
                 augment: PhotoAugment | None = None) -> None:
        self.items = items
        self.names = names
        self.image_size = image_size
        self.augment = augment
        self.with_embedding = bool(items) and all(record.faces[0].embedding is not None for _, record in items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, record = self.items[index]
        face = record.faces[0]
        detection = face.detection
        dense = None if detection.dense_landmarks is None else (detection.dense_landmarks[:NUM_MESH_POINTS].float(),
                                                                detection.dense_confidence[:NUM_MESH_POINTS].float())
        sample = align_sample(path, load_image(path), detection.landmarks.float(),
                              detection.landmark_confidence.float(), record.detector, self.image_size, dense)
        item = {keys.IMAGE: sample.crop, keys.LANDMARKS: sample.crop_landmarks, keys.CONFIDENCE: sample.confidence,
                keys.FACE_MASK: sample.face_mask, keys.TO_PHOTO: sample.to_photo, keys.INDEX: index,
                keys.NAME: self.names[index], keys.SOURCE: record.detector, keys.PATH: str(path),
                keys.DENSE: torch.zeros(NUM_MESH_POINTS, 2) if dense is None else sample.crop_dense,
                keys.DENSE_CONFIDENCE: torch.zeros(NUM_MESH_POINTS) if dense is None else dense[1]}
        if self.with_embedding:
            item[keys.EMBEDDING] = face.embedding.float()
        return item if self.augment is None else self.augment(item)


class FaceImageDataModule(SplitLoaders, LightningDataModule):
    """Photos (files or folders, searched recursively) and their prepare cache (see module docstring).

    Args:
        photos: photo files and/or folders.
        prepared: the prepare cache folder (created and filled for photos without a record).
        image_size: crop side S; must match the regressor's.
        val_fraction: expected fraction of photos in the validation split.
        predict_photos: photos for ``predict`` (default: ``photos``).
        batch_size: photos per batch (per process under DDP).
        num_workers: data-loader worker processes.
        detector: landmark detector for photos without a record ("auto", "fan", "dlib", "dlib-mmod").
        embed: compute identity embeddings for photos without a record.
        device: torch device of the detector and identity network in ``prepare_data``.
        augment: training augmentation (default ``PhotoAugment()``).
    """

    test_split = "val"  # photos have no separate test split: test runs on the validation photos

    def __init__(self, photos: list[str], prepared: str, image_size: int = 128, val_fraction: float = 0.1,
                 predict_photos: list[str] | None = None, batch_size: int = 8, num_workers: int = 0,
                 detector: str = "auto", embed: bool = True, device: str = "cpu",
                 augment: PhotoAugment | None = None) -> None:
        super().__init__()
        self.photos = photos
        self.prepared = Path(prepared)
        self.image_size = image_size
        self.val_fraction = val_fraction
        self.predict_photos = predict_photos
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.detector = detector
        self.embed = embed
        self.device = device
        self.augment = augment or PhotoAugment()
        self.datasets: dict[str, FaceImages] = {}

    @staticmethod
    def _find(inputs: list[str]) -> list[Path]:
        return [p for p in find_photos(inputs) if p.is_file()]

    def _records(self) -> dict[str, PreparedRecord]:
        return load_prepared(self.prepared) if self.prepared.is_dir() else {}

    def prepare_data(self) -> None:
        """Prepare (detect, landmark, embed) the photos the cache has no record of, writing their records."""
        photos = list(dict.fromkeys(self._find(self.photos) + self._find(self.predict_photos or [])))
        records = self._records()
        missing = [p for p in photos if photo_key(p) not in records]
        if not missing:
            return
        log.warning("%d of %d photos have no record in the prepare cache %s: detecting their faces now (run "
                 "`python -m f2p prepare PHOTOS --out %s` to do this once, ahead of training)",
                 len(missing), len(photos), self.prepared, self.prepared)
        detector = create_detector(self.detector, self.device)
        embedder = optional_identity_embedder(self.device) if self.embed else None
        for photo in missing:
            result = prepare_photo(photo, detector, embedder, False, DETECTION_MAX_SIDE)
            if isinstance(result, DetectionFailure):
                log.warning("%s: %s (left out)", photo, result.reason)
            else:
                write_record(self.prepared, result)

    def setup(self, stage: str) -> None:
        records = self._records()

        def usable(inputs: list[str]) -> list[tuple[Path, PreparedRecord]]:
            return [(p, records[photo_key(p)]) for p in self._find(inputs) if photo_key(p) in records]

        items = usable(self.photos)
        val = [item for item in items if in_validation(item[0], self.val_fraction)]
        train = [item for item in items if not in_validation(item[0], self.val_fraction)]
        if not val and len(train) > 1:  # tiny sets: keep one photo for validation
            val = [train.pop()]
        predict = usable(self.predict_photos) if self.predict_photos else items
        names = output_names([p for p, _ in predict])
        self.datasets = {
            "train": FaceImages(train, [p.stem for p, _ in train], self.image_size, self.augment),
            "val": FaceImages(val, [p.stem for p, _ in val], self.image_size),
            "predict": FaceImages(predict, [names[p] for p, _ in predict], self.image_size),
        }
        log.info("photos with a prepared face: %d train, %d val, %d predict", len(train), len(val), len(predict))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if not self.datasets[split]:
            raise ValueError(f"no {split} photos with a prepared face (photos: {self.photos}, cache: {self.prepared})")
        return super()._loader(split, shuffle)
