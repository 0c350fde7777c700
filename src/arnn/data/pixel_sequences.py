"""Images served as pixel sequences: one pixel (all channels) per step, optionally in a fixed permuted order."""

from abc import ABC, abstractmethod

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from arnn.data.splits import SplitDataModule
from arnn.errors import ConfigError

Split = tuple[Tensor, Tensor]
"""Images (N, T, C) as stored (e.g. uint8) and integer labels (N,)."""


def seeded_permutation(size: int, seed: int) -> Tensor:
    """A permutation of range(size) that depends only on `seed`."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


def split_off(split: Split, size: int, seed: int) -> tuple[Split, Split]:
    """Split `size` samples, chosen by `seed`, off `split`: returns (rest, held_out)."""
    x, y = split
    if not 0 < size < len(y):
        raise ConfigError(f"a held-out split of {size} samples needs 0 < size < {len(y)} (the samples available)")
    order = seeded_permutation(len(y), seed)
    rest, held = order[size:], order[:size]
    return (x[rest], y[rest]), (x[held], y[held])


class PixelSequenceDataModule(SplitDataModule, ABC):
    """Train/val/test pixel sequences (B, T, C), scaled on the device; the validation split is drawn from train.

    Images stay in their stored dtype until a batch reaches its device, where `to_sequences` scales and
    permutes them; the permutation, drawn once from `permutation_seed`, is the same for every split.
    """

    num_classes: int = 10
    seq_len: int
    input_size: int
    pixel_max: float
    default_val_size: int

    def __init__(
        self,
        batch_size: int = 128,
        val_size: int | None = None,
        split_seed: int = 0,
        permutation_seed: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        self.val_size = self.default_val_size if val_size is None else val_size
        self.split_seed = split_seed
        self.permutation = None if permutation_seed is None else seeded_permutation(self.seq_len, permutation_seed)

    @abstractmethod
    def load(self) -> tuple[Split, Split]:
        """The training pool and the test split as stored; the validation split comes out of the pool."""

    @property
    def task_kwargs(self) -> dict[str, int]:
        """What the task module needs to know about this data."""
        return {"num_classes": self.num_classes}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        pool, test = self.load()
        train, val = split_off(pool, self.val_size, self.split_seed)
        self.splits = {name: TensorDataset(*split) for name, split in (("train", train), ("val", val), ("test", test))}

    def to_sequences(self, x: Tensor) -> Tensor:
        """Stored images (B, T, C) → float pixel sequences in [0, 1], permuted along time if configured."""
        x = x.float() / self.pixel_max
        if self.permutation is not None:
            x = x.index_select(1, self.permutation.to(x.device))
        return x

    def on_after_batch_transfer(self, batch: Split, dataloader_idx: int) -> Split:
        x, y = batch
        return self.to_sequences(x), y
