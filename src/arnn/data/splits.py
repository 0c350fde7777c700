"""The part every arnn datamodule shares: train/val/test datasets served in batches."""

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from arnn.errors import ConfigError

SPLITS = ("train", "val", "test")


class SplitDataModule(pl.LightningDataModule):
    """Serves `self.splits` ({"train", "val", "test"} → Dataset, filled by the subclass's `setup`) in batches;
    only the training split is shuffled."""

    def __init__(self, batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.splits: dict[str, Dataset] = {}

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=split == "train",
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class TokenSizes:
    """Sizes of a datamodule of int64 token sequences that the task feeds one-hot: both come from `vocab_size`."""

    vocab_size: int

    @property
    def input_size(self) -> int:
        """One-hot width of a token: the vocabulary size."""
        return self.vocab_size

    @property
    def task_kwargs(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size}
