"""Pixel-sequence datamodules: shapes, seeded splits, the fixed permutation, and MNIST's real file format."""

import pytest
import torch
from torchvision.datasets import mnist as tv_mnist

from arnn.data import DigitsDataModule, MNISTDataModule
from arnn.errors import DataNotFoundError
from tests.helpers.data import REAL_DATA, requires_shared_data


def _first_batch(datamodule, split="train"):
    datamodule.setup()
    x, y = next(iter(getattr(datamodule, f"{split}_dataloader")()))
    return datamodule.on_after_batch_transfer((x, y), 0)


def test_digits_are_64_step_sequences_of_one_pixel_in_unit_range():
    datamodule = DigitsDataModule(batch_size=32)
    x, y = _first_batch(datamodule)
    assert x.shape == (32, 64, 1) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    assert y.dtype == torch.long and set(y.tolist()) <= set(range(10))
    assert {name: len(split) for name, split in datamodule.splits.items()} == {"train": 1257, "val": 180, "test": 360}


def _split_sets(datamodule):
    datamodule.setup()
    return {name: {tuple(x.flatten().tolist()) for x, _ in split} for name, split in datamodule.splits.items()}


def test_splits_are_disjoint_and_fixed_by_the_split_seed():
    first, again, other = (_split_sets(DigitsDataModule(split_seed=seed)) for seed in (0, 0, 1))
    assert first == again
    assert first["val"] != other["val"]
    # All 1797 digits images are distinct, so disjoint image sets mean disjoint splits.
    assert len(first["train"] | first["val"] | first["test"]) == 1797


def test_permutation_is_fixed_by_its_seed_and_shared_by_all_splits():
    permuted = DigitsDataModule(permutation_seed=92916)
    plain = DigitsDataModule()
    assert torch.equal(permuted.permutation, DigitsDataModule(permutation_seed=92916).permutation)
    assert not torch.equal(permuted.permutation, DigitsDataModule(permutation_seed=1).permutation)
    assert sorted(permuted.permutation.tolist()) == list(range(64))
    permuted.setup()
    plain.setup()
    for split in ("train", "val", "test"):
        stored = permuted.splits[split].tensors[0][:16]
        assert torch.equal(stored, plain.splits[split].tensors[0][:16])
        assert torch.equal(permuted.to_sequences(stored), plain.to_sequences(stored)[:, permuted.permutation])


def test_mnist_loads_real_idx_files_through_torchvision(tiny_mnist):
    datamodule = MNISTDataModule(data_dir=str(tiny_mnist), download=False, val_size=50, batch_size=16)
    datamodule.prepare_data()
    x, _ = _first_batch(datamodule)
    assert x.shape == (16, 784, 1)
    assert {name: len(split) for name, split in datamodule.splits.items()} == {"train": 250, "val": 50, "test": 1100}
    stored = tv_mnist.read_image_file(str(tiny_mnist / "MNIST" / "raw" / "t10k-images-idx3-ubyte"))
    test_x, _ = datamodule.splits["test"][0]
    assert torch.equal(test_x.flatten(), stored[0].flatten())


def test_mnist_test_split_source_needs_only_the_test_files(tiny_mnist):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tiny_mnist / "MNIST" / "raw" / name).unlink()
    datamodule = MNISTDataModule(data_dir=str(tiny_mnist), source="test_split", download=False, val_size=40)
    datamodule.prepare_data()
    datamodule.setup()
    assert {name: len(split) for name, split in datamodule.splits.items()} == {"train": 60, "val": 40, "test": 1000}


def test_permuted_mnist_uses_one_permutation_of_784_positions(tiny_mnist):
    datamodule = MNISTDataModule(data_dir=str(tiny_mnist), download=False, val_size=50, permutation_seed=92916)
    assert sorted(datamodule.permutation.tolist()) == list(range(784))
    x, _ = _first_batch(datamodule, "test")
    assert torch.equal(x[0], datamodule.splits["test"][0][0].float()[datamodule.permutation] / 255)


def test_standardized_mnist_is_the_unit_pixels_shifted_by_mnist_mean_and_std(tiny_mnist):
    kwargs = {"data_dir": str(tiny_mnist), "download": False, "val_size": 50, "permutation_seed": 92916}
    plain, standardized = MNISTDataModule(**kwargs), MNISTDataModule(**kwargs, standardize=True)
    x, _ = _first_batch(plain, "test")
    x_std, _ = _first_batch(standardized, "test")
    torch.testing.assert_close(x_std, (x - 0.1307) / 0.3081)
    assert x_std.min().item() == pytest.approx(-0.1307 / 0.3081)


@pytest.mark.parametrize("source", ["full", "test_split"])
def test_missing_mnist_offline_names_the_directory_and_the_fix(tmp_path, source):
    datamodule = MNISTDataModule(data_dir=str(tmp_path / "nowhere"), source=source, download=False)
    with pytest.raises(DataNotFoundError, match=r"nowhere/MNIST/raw.*data\.data_dir"):
        datamodule.prepare_data()


def test_failed_download_becomes_one_line_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise tv_mnist.URLError("no network")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)
    datamodule = MNISTDataModule(data_dir=str(tmp_path), download=True)
    with pytest.raises(DataNotFoundError, match="download failed") as caught:
        datamodule.prepare_data()
    assert "\n" not in str(caught.value)


@pytest.mark.shared_data
@requires_shared_data
def test_real_mnist_from_shared_data_has_60k_and_10k_images():
    datamodule = MNISTDataModule(data_dir=str(REAL_DATA), download=False)
    datamodule.prepare_data()
    datamodule.setup()
    assert {name: len(split) for name, split in datamodule.splits.items()} == {
        "train": 55_000,
        "val": 5_000,
        "test": 10_000,
    }
    x, y = _first_batch(datamodule)
    assert x.shape == (128, 784, 1) and 0.99 < x.max() <= 1


@pytest.mark.shared_data
@requires_shared_data
def test_real_mnist_test_split_gives_8000_1000_1000():
    datamodule = MNISTDataModule(data_dir=str(REAL_DATA), source="test_split", download=False)
    datamodule.prepare_data()
    datamodule.setup()
    assert {name: len(split) for name, split in datamodule.splits.items()} == {
        "train": 8000,
        "val": 1000,
        "test": 1000,
    }
