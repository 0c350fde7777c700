"""Sequential and permuted MNIST through torchvision: 784 steps of one pixel each."""

from pathlib import Path

from torch import Tensor
from torchvision.datasets import MNIST
from torchvision.datasets.mnist import read_image_file, read_label_file

from arnn.data.pixel_sequences import PixelSequenceDataModule, Split, split_off
from arnn.errors import ConfigError, DataNotFoundError

SOURCES = ("full", "test_split")
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Mean and std of all pixels of the 60k training images, scaled to [0, 1] (the constants of torchvision's MNIST
# examples).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MNISTDataModule(PixelSequenceDataModule):
    """MNIST from `data_dir` (torchvision's layout, `<data_dir>/MNIST/raw`).

    source=full: the 60k training images (validation split taken from them) and the 10k test images.
    source=test_split: only the 10k test images, split 8000/1000/1000 into train/val/test by `split_seed`,
    so the whole pipeline runs on real MNIST when only the test files are at hand.
    Pixels are in [0, 1], or standardised to (x − 0.1307)/0.3081 with `standardize`.
    """

    seq_len = 784
    input_size = 1
    pixel_max = 255.0
    test_split_test_size = 1000

    def __init__(
        self, data_dir: str, source: str = "full", download: bool = True, standardize: bool = False, **kwargs
    ) -> None:
        if source not in SOURCES:
            raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.source = source
        self.standardize = bool(standardize)
        self.default_val_size = 5000 if source == "full" else 1000
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        self.download = download

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def _missing(self, what: str) -> DataNotFoundError:
        if self.download:
            fix = " and the download failed (no network?); put torchvision's MNIST/raw IDX files there"
        else:
            fix = " (data.download=false); set data.download=true to fetch them (needs network)"
        return DataNotFoundError(
            f"MNIST {what} not found in {self.raw_dir}{fix}, or set data.data_dir to a folder that holds MNIST/raw"
        )

    def _corrupted(self) -> DataNotFoundError:
        return DataNotFoundError(
            f"MNIST files in {self.raw_dir} are not valid IDX files (truncated or corrupted); delete them and set "
            f"data.download=true to fetch them again (needs network), or put torchvision's MNIST/raw files there"
        )

    def prepare_data(self) -> None:
        needed = TEST_FILES if self.source == "test_split" else (*TRAIN_FILES, *TEST_FILES)
        if all((self.raw_dir / name).is_file() for name in needed):
            return
        try:
            MNIST(self.data_dir, train=False, download=self.download)
        except RuntimeError as error:  # torchvision's "Dataset not found" and "Error downloading ..."
            raise self._missing("files") from error

    def to_sequences(self, x: Tensor) -> Tensor:
        """Stored images → [0, 1] (permuted if configured), standardised if configured."""
        x = super().to_sequences(x)
        return (x - MNIST_MEAN) / MNIST_STD if self.standardize else x

    def load(self) -> tuple[Split, Split]:
        try:
            return self._read()
        except (AssertionError, ValueError, RuntimeError) as error:
            # torchvision asserts on a bad IDX header; a truncated file fails to take its declared shape.
            raise self._corrupted() from error

    def _read(self) -> tuple[Split, Split]:
        if self.source == "full":
            train, test = (MNIST(self.data_dir, train=flag, download=False) for flag in (True, False))
            return (_pixel_sequences(train.data), train.targets), (_pixel_sequences(test.data), test.targets)
        images, labels = (self.raw_dir / name for name in TEST_FILES)
        if not (images.is_file() and labels.is_file()):
            raise self._missing("test files")
        x, y = _pixel_sequences(read_image_file(str(images))), read_label_file(str(labels))
        return split_off((x, y), self.test_split_test_size, self.split_seed + 1)


def _pixel_sequences(images: Tensor) -> Tensor:
    """(N, 28, 28) images → (N, 784, 1) sequences in row-major pixel order."""
    return images.flatten(1).unsqueeze(-1)
