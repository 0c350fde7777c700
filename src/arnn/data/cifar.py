"""CIFAR-10 through torchvision as sequences: one pixel per step (sCIFAR-10, T = 1024) or one image row per step
followed by Gaussian noise (noise-padded CIFAR-10, T = 1000)."""

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import TensorDataset
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity

from arnn.data.pixel_sequences import PixelSequenceDataModule, Split
from arnn.errors import ConfigError, DataNotFoundError

# Per-channel mean and std of all pixels of the 50k training images, scaled to [0, 1]: the standard constants
# (e.g. kuangliu/pytorch-cifar's mean). The std (0.2023, 0.1994, 0.2010) quoted in many repos is the mean of
# per-image stds, not the pixel std.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CHANNELS = 3


class CIFAR10DataModule(PixelSequenceDataModule):
    """CIFAR-10 from `data_dir` (torchvision's layout, `<data_dir>/cifar-10-batches-py`): the 50k training images
    (the validation split is taken from them) and the 10k test images; subclasses set `image_steps`.

    Images are stored as uint8 (N, image_steps, 3072 / image_steps), row-major with the channels of each pixel
    side by side (feature = 3 · column + channel within a step); on the device they are scaled to [0, 1] and
    normalised with the training mean/std of their channel.

    Files are always read by torchvision's `CIFAR10`, MD5 checks included, so the code path is the same for the
    real data and for the tests, which write tiny batches in the same pickle format and register their MD5s in
    `CIFAR10.train_list`/`test_list`/`meta` (monkeypatched) instead of switching the check off here.
    """

    pixel_max = 255.0
    default_val_size = 5000
    image_steps: int

    def __init__(self, data_dir: str, download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        self.download = download

    @property
    def batch_dir(self) -> Path:
        return self.data_dir / CIFAR10.base_folder

    def prepare_data(self) -> None:
        try:
            # Checks the MD5s of all five training batches, the test batch and batches.meta, whatever `train` is.
            CIFAR10(self.data_dir, train=False, download=self.download)
        except (RuntimeError, OSError) as error:  # "Dataset not found or corrupted", or the download's URLError
            raise self._not_found() from error

    def _not_found(self) -> DataNotFoundError:
        """The first corrupted file (or the missing folder) and the fix for this `download` setting."""
        expected = [*CIFAR10.train_list, *CIFAR10.test_list, [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
        corrupted = [
            self.batch_dir / name
            for name, md5 in expected
            if (self.batch_dir / name).is_file() and not check_integrity(str(self.batch_dir / name), md5)
        ]
        if corrupted:
            what = f"CIFAR-10 file {corrupted[0]} is corrupted (MD5 mismatch)"
        else:
            what = f"CIFAR-10 python batches not found in {self.batch_dir}"
        if self.download:
            fix = " and the download failed (no network?); put torchvision's cifar-10-batches-py files there"
        else:
            fix = " (data.download=false); set data.download=true to fetch them (needs network)"
        return DataNotFoundError(f"{what}{fix}, or set data.data_dir to a folder that holds cifar-10-batches-py")

    def load(self) -> tuple[Split, Split]:
        train, test = (CIFAR10(self.data_dir, train=flag, download=False) for flag in (True, False))
        return self._stored(train), self._stored(test)

    def _stored(self, dataset: CIFAR10) -> Split:
        """torchvision's (N, 32, 32, 3) uint8 images → (N, image_steps, 3072 / image_steps), and labels (N,)."""
        images = torch.from_numpy(dataset.data).reshape(len(dataset.data), self.image_steps, -1)
        return images, torch.tensor(dataset.targets, dtype=torch.long)

    def to_sequences(self, x: Tensor) -> Tensor:
        """Stored images → [0, 1] (permuted if configured), then (value - mean) / std of each value's channel."""
        x = super().to_sequences(x)
        mean, std = x.new_tensor(CIFAR10_MEAN), x.new_tensor(CIFAR10_STD)
        return ((x.unflatten(-1, (-1, CHANNELS)) - mean) / std).flatten(-2)


class SequentialCIFAR10DataModule(CIFAR10DataModule):
    """sCIFAR-10: one pixel per step, 1024 steps × 3 channels (R, G, B), row-major, optionally permuted."""

    seq_len = 1024
    image_steps = 1024
    input_size = CHANNELS


class NoisePaddedCIFAR10DataModule(CIFAR10DataModule):
    """Noise-padded CIFAR-10 (Chang et al., ICLR 2019): one image row per step (32 pixels × 3 channels = 96 inputs,
    feature 3 · column + channel), 32 row steps then 968 steps of N(0, 1) noise, T = 1000.

    Noise is drawn when a batch reaches its device and never stored per sample (memory O(batch)):
    - training: fresh from the global RNG (seeded by the run's `seed`) for every sample in every epoch;
    - val/test: each sample carries a seed, drawn once from a generator seeded with `noise_seed` (val) or
      `noise_seed + 1` (test), and its noise comes from a CPU generator with that seed, so a sample gets the same
      noise at every evaluation, whatever the batch size or device;
    - fixed_noise=true: one (968, 96) tensor drawn once from `noise_seed` for every sample of every split, as
      several public implementations do (PITFALLS.md); report which variant a number used.
    """

    seq_len = 1000
    image_steps = 32
    input_size = 32 * CHANNELS
    noise_steps = seq_len - image_steps

    def __init__(
        self, data_dir: str, download: bool = True, fixed_noise: bool = False, noise_seed: int = 0, **kwargs
    ) -> None:
        if kwargs.get("permutation_seed") is not None:
            raise ConfigError("data.permutation_seed is not supported by noise-padded CIFAR-10; leave it null")
        super().__init__(data_dir, download, **kwargs)
        self.noise_seed = noise_seed
        shape = (self.noise_steps, self.input_size)
        generator = torch.Generator().manual_seed(noise_seed)
        self.fixed_noise = torch.randn(shape, generator=generator) if fixed_noise else None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        super().setup(stage)
        for offset, name in enumerate(("val", "test")):
            x, y = self.splits[name].tensors
            generator = torch.Generator().manual_seed(self.noise_seed + offset)
            self.splits[name] = TensorDataset(x, y, torch.randint(2**62, (len(y),), generator=generator))

    def noise(self, batch_size: int, device: torch.device, seeds: Tensor | None = None) -> Tensor:
        """(batch_size, 968, 96) N(0, 1) noise: the fixed tensor, one CPU generator per seed, or fresh."""
        shape = (self.noise_steps, self.input_size)
        if self.fixed_noise is not None:
            return self.fixed_noise.to(device).expand(batch_size, *shape)
        if seeds is None:
            return torch.randn(batch_size, *shape, device=device)
        noise, generator = torch.empty(batch_size, *shape), torch.Generator()
        for sample, seed in zip(noise, seeds.tolist(), strict=True):
            torch.randn(shape, generator=generator.manual_seed(seed), out=sample)
        return noise.to(device)

    def on_after_batch_transfer(self, batch: Split | tuple[Tensor, Tensor, Tensor], dataloader_idx: int) -> Split:
        x, y, *seeds = batch  # val/test batches carry each sample's noise seed (setup); training batches do not
        rows = self.to_sequences(x)
        return torch.cat([rows, self.noise(len(y), rows.device, *seeds)], dim=1), y
