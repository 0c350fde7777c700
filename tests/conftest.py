"""Fixtures shared by the test files (composed configs, tiny data in real on-disk formats, the cpp backend) and the
test tiers: every test not marked `e2e` (it fits a model) or `gpu` (it needs CUDA) is a `unit` test, so
`pytest -m unit` (`make test-fast`) is the quick loop."""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from torchvision.datasets import CIFAR10

from arnn.data.idx import write_idx
from tests.helpers.data import COLOUR, LABEL_NAMES, MARKED, PER_BATCH, write_pickle
from tests.helpers.runs import FAST, compose_run_cfg

# The tests' models are tiny: a second intra-op thread only adds synchronisation, and on 2 shared cores it made a
# 10-epoch ODE-cell run 4x slower (85 s against 21 s). Processes started by the tests inherit it from the env.
os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("e2e") is None and item.get_closest_marker("gpu") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with FAST and the given overrides, as train.py would, writing into tmp_path."""
    yield lambda *overrides: compose_run_cfg(tmp_path, [*FAST, *overrides])
    GlobalHydra.instance().clear()


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """A data_dir holding MNIST/raw with all four IDX files: 300 training and 1100 test images of 28×28."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 300), ("t10k", 1100)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(count, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, size=count))
    return tmp_path / "data"


@pytest.fixture
def tiny_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data_dir holding cifar-10-batches-py: 5 × 40 training and 40 test images, with their MD5s registered.

    Each batch is a pickled dict with "data" (N × 3072 uint8, channel-major: 1024 R, then 1024 G, then 1024 B
    values, each plane row-major) and "labels"; the real files are Python 2 pickles whose keys torchvision's
    `pickle.load(f, encoding="latin1")` turns into these str keys.
    """
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / CIFAR10.base_folder
    folder.mkdir(parents=True)
    train_list = []
    for index in range(1, 6):
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=PER_BATCH).tolist()
        name = f"data_batch_{index}"
        train_list.append([name, write_pickle(folder / name, {"batch_label": name, "data": data, "labels": labels})])
    data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
    planes = data.reshape(PER_BATCH, 3, 32, 32)
    planes[0] = 0
    for row, column, channel, value in MARKED:
        planes[0, channel, row, column] = value
    planes[1] = np.array(COLOUR, dtype=np.uint8)[:, None, None]
    labels = [3, *rng.integers(0, 10, size=PER_BATCH - 1).tolist()]
    test_md5 = write_pickle(folder / "test_batch", {"batch_label": "test_batch", "data": data, "labels": labels})
    meta_md5 = write_pickle(folder / "batches.meta", {"label_names": LABEL_NAMES, "num_vis": 3072})
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", test_md5]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})
    return tmp_path / "data"


@pytest.fixture
def cpp_backend() -> None:
    """Skip, giving the reason, where the `cpp` backend cannot be built (no C++ compiler); CI's machines have one."""
    from arnn.backends import _cpp_probe

    if (reason := _cpp_probe()) is not None:
        pytest.skip(f"the cpp backend could not be built here: {reason}")
