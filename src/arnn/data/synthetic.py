"""Synthetic long-memory probes of Arjovsky et al. (2016): the adding problem and the copy-memory task."""

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from arnn.data.splits import SPLITS, SplitDataModule, TokenSizes
from arnn.errors import ConfigError


class SyntheticDataModule(SplitDataModule, ABC):
    """Train/val/test sets drawn once, in setup, from a generator seeded by (seed, split index).

    A split's samples depend only on `seed`, the split and the task's own settings, not on the other splits' sizes.
    """

    input_size: int

    def __init__(
        self,
        train_size: int = 10000,
        val_size: int = 1000,
        test_size: int = 1000,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        for name, size in zip(SPLITS, (train_size, val_size, test_size), strict=True):
            if size < 1:
                raise ConfigError(f"data.{name}_size must be >= 1, got {size}")
        if seed < 0:
            raise ConfigError(f"data.seed must be >= 0, got {seed}")
        self.sizes = dict(zip(SPLITS, (train_size, val_size, test_size), strict=True))
        self.seed = seed

    @property
    @abstractmethod
    def task_kwargs(self) -> dict[str, int]:
        """What the task module needs to know about this data."""

    @abstractmethod
    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """`size` samples: inputs and targets."""

    def draw(self, split: str) -> tuple[Tensor, Tensor]:
        """The samples of `split` ("train", "val" or "test"), the same on every call."""
        rng = np.random.default_rng((self.seed, SPLITS.index(split)))
        return self.generate(self.sizes[split], rng)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = {split: TensorDataset(*self.draw(split)) for split in SPLITS}


class AddingDataModule(SyntheticDataModule):
    """The adding problem: inputs (N, T, 2), targets (N, 1), scored at the last step only.

    Channel 0 holds values u_t ~ U[0, 1]; channel 1 is 0 except for two 1s, at i ~ U{0, …, ⌊T/2⌋ − 1} and
    j ~ U{⌊T/2⌋, …, T − 1} (one in each half). Target = u_i + u_j. Always answering 1 scores
    MSE = Var(u_i + u_j) = 1/6 (R² = 0): the baseline a model must beat.
    """

    input_size = 2

    def __init__(self, seq_len: int = 100, **kwargs) -> None:
        super().__init__(**kwargs)
        if seq_len < 2:
            raise ConfigError(f"data.seq_len must be >= 2 (one marker in each half), got {seq_len}")
        self.seq_len = seq_len

    @property
    def task_kwargs(self) -> dict[str, int]:
        return {"output_size": 1}

    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        half, rows = self.seq_len // 2, np.arange(size)
        values = rng.random((size, self.seq_len), dtype=np.float32)
        first, second = rng.integers(0, half, size), rng.integers(half, self.seq_len, size)
        markers = np.zeros_like(values)
        markers[rows, first] = markers[rows, second] = 1.0
        target = values[rows, first] + values[rows, second]
        return torch.from_numpy(np.stack([values, markers], axis=-1)), torch.from_numpy(target[:, None])


class CopyDataModule(TokenSizes, SyntheticDataModule):
    """The copy-memory task: tokens (N, delay + 2K) in, tokens out at every step, for copy length K.

    Tokens: 0 = blank, 1 … num_symbols = data symbols, num_symbols + 1 = delimiter.
    Input: K symbols drawn uniformly, delay − 1 blanks, the delimiter, K blanks.
    Target: delay + K blanks, then the K input symbols in order, due in the K steps after the delimiter.
    Every step is scored, as in the standard task, so the memoryless baseline (blanks, then uniform guesses over
    the symbols) has cross-entropy K log(num_symbols) / (delay + 2K); accuracy counts the blank steps too.
    """

    def __init__(self, delay: int = 100, num_symbols: int = 8, copy_length: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if delay < 1:
            raise ConfigError(f"data.delay must be >= 1, got {delay}")
        if num_symbols < 1:
            raise ConfigError(f"data.num_symbols must be >= 1, got {num_symbols}")
        if copy_length < 1:
            raise ConfigError(f"data.copy_length must be >= 1, got {copy_length}")
        self.delay = delay
        self.num_symbols = num_symbols
        self.copy_length = copy_length

    @property
    def delimiter(self) -> int:
        return self.num_symbols + 1

    @property
    def vocab_size(self) -> int:
        """Blank, data symbols and delimiter."""
        return self.num_symbols + 2

    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        length, seq_len = self.copy_length, self.delay + 2 * self.copy_length
        symbols = rng.integers(1, self.num_symbols + 1, (size, length))
        tokens = np.zeros((size, seq_len), dtype=np.int64)
        tokens[:, :length] = symbols
        tokens[:, length + self.delay - 1] = self.delimiter
        target = np.zeros_like(tokens)
        target[:, -length:] = symbols
        return torch.from_numpy(tokens), torch.from_numpy(target)
