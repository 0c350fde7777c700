"""CIFAR-10 datamodules on a tiny CIFAR-10 in torchvision's real on-disk format: sequence layout, normalisation,
seeded splits, the noise padding and its reproducibility, missing data, and training end to end."""

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from omegaconf import open_dict
from torchvision.datasets import cifar as tv_cifar

from arnn.data.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    NoisePaddedCIFAR10DataModule,
    SequentialCIFAR10DataModule,
)
from arnn.errors import ConfigError, DataNotFoundError
from arnn.runs.train import train
from tests.helpers.data import COLOUR, MARKED


def _datamodule(kind, data_dir: Path, **kwargs):
    datamodule = kind(data_dir=str(data_dir), download=False, **{"val_size": 30, "batch_size": 16, **kwargs})
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def _batches(datamodule, split: str):
    """Every batch of a split as the task module sees it (after the device hook)."""
    return [datamodule.on_after_batch_transfer(batch, 0) for batch in getattr(datamodule, f"{split}_dataloader")()]


def _normalised(value: int, channel: int) -> float:
    return (value / 255 - CIFAR10_MEAN[channel]) / CIFAR10_STD[channel]


def test_sequential_cifar_is_1024_steps_of_one_normalised_rgb_pixel(tiny_cifar):
    datamodule = _datamodule(SequentialCIFAR10DataModule, tiny_cifar)
    (x, y), *_ = _batches(datamodule, "train")
    assert x.shape == (16, 1024, 3) and x.dtype == torch.float32 and y.dtype == torch.long
    assert datamodule.splits["train"].tensors[0].dtype == torch.uint8
    assert datamodule.task_kwargs == {"num_classes": 10}

    (x, y), *_ = _batches(datamodule, "test")
    assert y[0] == 3
    marked = {(row * 32 + column, channel): value for row, column, channel, value in MARKED}
    for step in range(1024):
        for channel in range(3):
            expected = _normalised(marked.get((step, channel), 0), channel)
            assert x[0, step, channel].item() == pytest.approx(expected, abs=1e-5)
    constant = torch.tensor([_normalised(value, channel) for channel, value in enumerate(COLOUR)])
    torch.testing.assert_close(x[1], constant.expand(1024, 3))


def test_permuted_sequential_cifar_permutes_whole_pixels(tiny_cifar):
    plain = _datamodule(SequentialCIFAR10DataModule, tiny_cifar)
    permuted = _datamodule(SequentialCIFAR10DataModule, tiny_cifar, permutation_seed=7)
    assert sorted(permuted.permutation.tolist()) == list(range(1024))
    stored = plain.splits["test"].tensors[0][:4]
    torch.testing.assert_close(permuted.to_sequences(stored), plain.to_sequences(stored)[:, permuted.permutation])


def test_noise_padded_cifar_is_32_image_rows_then_968_noise_steps(tiny_cifar):
    datamodule = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar)
    assert (datamodule.seq_len, datamodule.input_size) == (1000, 96)
    (x, _), *_ = _batches(datamodule, "train")
    assert x.shape == (16, 1000, 96) and x.dtype == torch.float32

    (x, y), *_ = _batches(datamodule, "test")
    assert y[0] == 3
    image = torch.tensor([[_normalised(0, feature % 3) for feature in range(96)]]).repeat(32, 1)
    for row, column, channel, value in MARKED:
        image[row, 3 * column + channel] = _normalised(value, channel)
    torch.testing.assert_close(x[0, :32], image)
    constant = torch.tensor([_normalised(COLOUR[feature % 3], feature % 3) for feature in range(96)])
    torch.testing.assert_close(x[1, :32], constant.expand(32, 96))
    # Both layouts hold the same normalised pixels.
    pixels = _datamodule(SequentialCIFAR10DataModule, tiny_cifar)
    torch.testing.assert_close(x[:, :32].reshape(-1, 1024, 3), _batches(pixels, "test")[0][0])


@pytest.mark.parametrize("split", ["train", "test"])
def test_noise_after_step_32_is_standard_normal(tiny_cifar, split):
    datamodule = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar, batch_size=40)
    (x, _), *_ = _batches(datamodule, split)
    noise = x[:, 32:]
    # 40 × 968 × 96 ≈ 3.7M draws: the standard errors of mean and std are below 6e-4, so 0.01 is > 15 sigma.
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 1) < 0.01
    assert not torch.equal(noise[0], noise[1])


def test_training_noise_is_fresh_in_every_pass_and_for_every_sample(tiny_cifar):
    datamodule = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar)
    batch = next(iter(datamodule.train_dataloader()))
    first, second = (datamodule.on_after_batch_transfer(batch, 0)[0] for _ in range(2))
    torch.testing.assert_close(first[:, :32], second[:, :32])
    assert not torch.equal(first[:, 32:], second[:, 32:])
    assert not torch.equal(first[0, 32:], first[1, 32:])


def test_evaluation_noise_belongs_to_the_sample_not_the_pass_or_batch_size(tiny_cifar):
    datamodule = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar)
    for split in ("val", "test"):
        first = torch.cat([x for x, _ in _batches(datamodule, split)])
        again = torch.cat([x for x, _ in _batches(datamodule, split)])
        datamodule.batch_size = 7
        regrouped = torch.cat([x for x, _ in _batches(datamodule, split)])
        datamodule.batch_size = 16
        assert torch.equal(first, again) and torch.equal(first, regrouped)
    val = torch.cat([x for x, _ in _batches(datamodule, "val")])
    test = torch.cat([x for x, _ in _batches(datamodule, "test")])
    assert not torch.equal(val[0, 32:], val[1, 32:]) and not torch.equal(val[0, 32:], test[0, 32:])
    other = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar, noise_seed=1)
    assert not torch.equal(val[:, 32:], torch.cat([x for x, _ in _batches(other, "val")])[:, 32:])


def test_fixed_noise_is_one_tensor_for_every_sample_of_every_split(tiny_cifar):
    datamodule = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar, fixed_noise=True, noise_seed=5)
    expected = torch.randn(968, 96, generator=torch.Generator().manual_seed(5))
    for split in ("train", "train", "val", "test"):
        for x, _ in _batches(datamodule, split):
            torch.testing.assert_close(x[:, 32:], expected.expand(len(x), 968, 96), rtol=0, atol=0)


def test_splits_take_val_from_the_training_images_by_split_seed(tiny_cifar):
    def val_images(split_seed):
        datamodule = _datamodule(SequentialCIFAR10DataModule, tiny_cifar, split_seed=split_seed)
        assert {name: len(split) for name, split in datamodule.splits.items()} == {"train": 170, "val": 30, "test": 40}
        return datamodule.splits["val"].tensors[0]

    assert torch.equal(val_images(0), val_images(0))
    assert not torch.equal(val_images(0), val_images(1))
    noise_padded = _datamodule(NoisePaddedCIFAR10DataModule, tiny_cifar)
    assert torch.equal(noise_padded.splits["val"].tensors[0].reshape(30, 1024, 3), val_images(0))


def test_noise_padded_cifar_rejects_a_permutation(tiny_cifar):
    with pytest.raises(ConfigError, match="permutation_seed"):
        NoisePaddedCIFAR10DataModule(data_dir=str(tiny_cifar), permutation_seed=1)


@pytest.mark.parametrize("kind", [SequentialCIFAR10DataModule, NoisePaddedCIFAR10DataModule])
def test_missing_cifar_offline_names_the_directory_and_the_fix(tmp_path, monkeypatch, kind):
    def no_download(*args, **kwargs):
        raise AssertionError("download=false must not touch the network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_download)
    datamodule = kind(data_dir=str(tmp_path / "nowhere"), download=False)
    expected = r"nowhere/cifar-10-batches-py \(data\.download=false\).*data\.data_dir"
    with pytest.raises(DataNotFoundError, match=expected):
        datamodule.prepare_data()


def test_failed_cifar_download_becomes_one_line_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    datamodule = SequentialCIFAR10DataModule(data_dir=str(tmp_path), download=True)
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py and the download failed") as caught:
        datamodule.prepare_data()
    assert "\n" not in str(caught.value)


@pytest.mark.e2e
@pytest.mark.parametrize("data", ["scifar10", "ncifar10"])
def test_training_runs_end_to_end_on_tiny_cifar(make_cfg, tiny_cifar, data):
    cfg = make_cfg(f"data={data}", "model.hidden_size=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2")
    with open_dict(cfg):
        cfg.data.update(data_dir=str(tiny_cifar), download=False, val_size=20, batch_size=8)
    metrics = train(cfg)
    assert 0 <= metrics["test/acc"] <= 1 and torch.isfinite(torch.tensor(metrics["train/loss_epoch"]))
