"""The train/val/test/predict dataloaders every f2p data module builds the same way."""

from __future__ import annotations

from torch.utils.data import DataLoader, Dataset


class SplitLoaders:
    """Mixin for a LightningDataModule with ``self.datasets`` ({split: dataset}), ``batch_size`` and
    ``num_workers``; ``test_split`` names the split that ``test`` runs on."""

    datasets: dict[str, Dataset]
    batch_size: int
    num_workers: int
    test_split = "test"

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
