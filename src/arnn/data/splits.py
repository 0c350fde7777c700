"""The part every arnn datamodule shares: train/val/test datasets served in batches."""

from collections.abc import Iterator, Sized

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from arnn.errors import ConfigError

SPLITS = ("train", "val", "test")


class EpochShuffle(RandomSampler):
    """A fresh permutation each epoch that depends only on (seed, epoch), so a run resumed from a checkpoint sees the
    same batches as one that never stopped. Lightning calls `set_epoch` before each epoch; under DDP it replaces any
    RandomSampler by its seeded DistributedSampler, which does the same per rank."""

    def __init__(self, data_source: Sized, seed: int) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class SplitDataModule(pl.LightningDataModule):
    """Serves `self.splits` ({"train", "val", "test"} → Dataset, filled by the subclass's `setup`) in batches;
    only the training split is shuffled, by `EpochShuffle` seeded from the run's seed (`seed_everything`)."""

    def __init__(self, batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.splits: dict[str, Dataset] = {}

    def _loader(self, split: str) -> DataLoader:
        dataset = self.splits[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffle(dataset, seed=torch.initial_seed()) if split == "train" else None,
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
