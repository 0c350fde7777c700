"""Character-level text (e.g. tiny-shakespeare) served as windows of tokens with next-character targets."""

import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.utils import download_url

from arnn.data.splits import SplitDataModule, TokenSizes
from arnn.errors import ConfigError, DataNotFoundError


class TextWindows(Dataset):
    """Window i of a token sequence s: inputs s[i·stride : i·stride + L], targets s[i·stride + 1 : i·stride + L + 1].

    Windows are slices (views) of `tokens`, made when asked for: no copy of all windows is kept.
    """

    def __init__(self, tokens: Tensor, context_length: int, stride: int) -> None:
        self.tokens = tokens
        self.context_length = context_length
        self.stride = stride

    def __len__(self) -> int:
        # A window needs L + 1 tokens: L inputs and, one step on, L targets.
        return (len(self.tokens) - self.context_length - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        start = index * self.stride
        window = self.tokens[start : start + self.context_length + 1]
        return window[:-1], window[1:]


def fetch_text(path: Path, url: str, md5: str | None) -> None:
    """Download `url` to `path` through a temporary file beside it, moved into place only once its MD5 matches `md5`
    (torchvision's download_url checks it), so a failed download leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as scratch:
        try:
            download_url(url, scratch, path.name, md5)
        except (OSError, RuntimeError) as error:  # URLError is an OSError; a wrong MD5 is torchvision's RuntimeError
            reason = f"its MD5 is not {md5}" if isinstance(error, RuntimeError) else str(error).splitlines()[0]
            raise DataNotFoundError(
                f"text file not found: {path}, and downloading it from {url} failed ({reason}); put the file there "
                "yourself, or set data.path to a plain-text file"
            ) from error
        os.replace(Path(scratch) / path.name, path)


class CharacterTextDataModule(TokenSizes, SplitDataModule):
    """A text file as character tokens, split into contiguous train/val/test parts, served in windows.

    Vocabulary: the sorted set of the characters of the whole file; token = index in it, so `input_size` (the
    one-hot width) and the task's `vocab_size` are its length.
    Splits: the first 1 − val_fraction − test_fraction of the text trains, the next val_fraction validates, the
    rest tests. Contiguous blocks, not shuffled characters or windows, so no validation or test window overlaps
    the training text (overlapping windows would leak their targets).
    Windows: `context_length` input characters, targets = inputs shifted by one character; each window starts from
    the encoder's zero state. Training windows start every `stride` characters (default `context_length`:
    non-overlapping, each training character is a target at most once per epoch) and are drawn in a shuffled order each
    epoch; validation and test windows never overlap, so each of their characters is scored once.
    """

    def __init__(
        self,
        path: str,
        context_length: int = 100,
        stride: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        batch_size: int = 64,
        num_workers: int = 0,
        download: bool = False,
        url: str | None = None,
        md5: str | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if context_length < 1:
            raise ConfigError(f"data.context_length must be >= 1, got {context_length}; e.g. data.context_length=100")
        if stride is not None and stride < 1:
            raise ConfigError(f"data.stride must be >= 1 or null (= context_length), got {stride}")
        if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
            raise ConfigError(
                f"data.val_fraction and data.test_fraction must be > 0 with a sum < 1, got {val_fraction} and "
                f"{test_fraction}; e.g. 0.05 and 0.05"
            )
        self.path = Path(path)
        if not self.path.is_file() and download and url:
            fetch_text(self.path, url, md5)
        if not self.path.is_file():
            fetch = f"set data.download=true to fetch it from {url}, or " if url else ""
            raise DataNotFoundError(f"text file not found: {self.path}; {fetch}set data.path to a plain-text file")
        self.context_length = context_length
        self.stride = context_length if stride is None else stride
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        # Read now: train() needs input_size (the vocabulary size) before the trainer calls setup().
        try:
            self.text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{self.path} is not UTF-8 text (byte {error.start}: {error.reason}); "
                "set data.path to a plain-text file"
            ) from error
        if len(set(self.text)) < 2:
            content = "is empty" if not self.text else f"holds only the character {self.text[0]!r}"
            raise ConfigError(
                f"{self.path} {content}; next-token prediction needs at least 2 distinct characters: set data.path "
                "to a longer plain-text file"
            )
        self.vocabulary = sorted(set(self.text))
        self.index = {character: token for token, character in enumerate(self.vocabulary)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> Tensor:
        """Characters → tokens (int64); every character must be in the vocabulary."""
        return torch.tensor([self.index[character] for character in text], dtype=torch.long)

    def decode(self, tokens: Tensor) -> str:
        """Tokens → characters; decode(encode(s)) == s."""
        return "".join(self.vocabulary[token] for token in tokens.tolist())

    def split_tokens(self) -> dict[str, Tensor]:
        """The contiguous train/val/test parts of the encoded text, in this order."""
        tokens = self.encode(self.text)
        n_val, n_test = int(len(tokens) * self.val_fraction), int(len(tokens) * self.test_fraction)
        n_train = len(tokens) - n_val - n_test
        parts = dict(zip(("train", "val", "test"), tokens.split([n_train, n_val, n_test]), strict=True))
        for name, part in parts.items():
            if len(part) < self.context_length + 1:
                raise ConfigError(
                    f"the {name} part of {self.path} has {len(part)} characters, fewer than context_length + 1 = "
                    f"{self.context_length + 1}; lower data.context_length or use a longer text"
                )
        return parts

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        parts = self.split_tokens()
        self.splits = {
            name: TextWindows(part, self.context_length, self.stride if name == "train" else self.context_length)
            for name, part in parts.items()
        }
