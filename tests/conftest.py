"""Shared fixtures: composed configs pointed at a temporary directory, tiny data in real on-disk formats."""

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torchvision.datasets import CIFAR10

from arnn.cells.base import SequenceEncoder
from arnn.lit import SequenceClassifier
from arnn.runs.build import compose

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FAST = ["trainer=debug", "logger=csv", "callbacks.rich_progress_bar=null"]
# The tests' models are tiny: a second intra-op thread only adds synchronisation, and on 2 shared cores it made a
# 10-epoch ODE-cell run 4x slower (85 s against 21 s). Processes started by the tests inherit it from the env.
os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
torch.set_num_threads(1)


def compose_run_cfg(output_dir: Path, overrides: list[str]) -> DictConfig:
    """conf/train.yaml composed with `overrides` as the job receives it, writing into output_dir."""
    cfg = compose(overrides, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml with FAST and the given overrides, as train.py would, writing into tmp_path."""
    yield lambda *overrides: compose_run_cfg(tmp_path, [*FAST, *overrides])
    GlobalHydra.instance().clear()


def run_cli(*arguments: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python train.py ...` as a user would; W&B is kept offline and away from the user's settings."""
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def write_idx(path: Path, data: np.ndarray) -> None:
    """Write a uint8 array in the IDX format MNIST ships in (0x00, 0x00, type 0x08 = ubyte, ndim; big-endian sizes)."""
    array = np.asarray(data, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


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


def train_steps(cell: SequenceEncoder, steps: int = 50, lr: float = 0.05) -> None:
    """Adam steps on a readout loss outside Lightning, with the cell's penalty and after-step hook."""
    torch.manual_seed(1)
    dtype = next(cell.parameters()).dtype
    model = SequenceClassifier(cell, num_classes=3, optimizer=partial(torch.optim.Adam, lr=lr)).to(dtype)
    optimizer = model.configure_optimizers()
    x, target = torch.randn(8, 12, cell.input_size, dtype=dtype), torch.randint(0, 3, (8,))
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), target)
        penalty = cell.penalty()
        (loss if penalty is None else loss + penalty).backward()
        optimizer.step()
        cell.after_optimizer_step()


PER_BATCH = 40
# Test image 0: black but for three pixels (row, column, channel, value); test image 1: one constant colour.
MARKED = ((2, 5, 0, 255), (7, 1, 1, 100), (31, 30, 2, 7))
COLOUR = (255, 0, 128)
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_pickle(path: Path, content: dict[str, object]) -> str:
    """Pickle one dict as the CIFAR-10 python version holds it; returns its MD5 for torchvision's check."""
    path.write_bytes(pickle.dumps(content, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


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
        train_list.append([name, _write_pickle(folder / name, {"batch_label": name, "data": data, "labels": labels})])
    data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
    planes = data.reshape(PER_BATCH, 3, 32, 32)
    planes[0] = 0
    for row, column, channel, value in MARKED:
        planes[0, channel, row, column] = value
    planes[1] = np.array(COLOUR, dtype=np.uint8)[:, None, None]
    labels = [3, *rng.integers(0, 10, size=PER_BATCH - 1).tolist()]
    test_md5 = _write_pickle(folder / "test_batch", {"batch_label": "test_batch", "data": data, "labels": labels})
    meta_md5 = _write_pickle(folder / "batches.meta", {"label_names": LABEL_NAMES, "num_vis": 3072})
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", test_md5]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})
    return tmp_path / "data"


requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason=f"real MNIST not present at {SHARED_DATA}/MNIST/raw"
)


@pytest.fixture
def cpp_backend() -> None:
    """Skip, giving the reason, where the `cpp` backend cannot be built (no C++ compiler); CI's machines have one."""
    from arnn.backends import _cpp_probe

    if (reason := _cpp_probe()) is not None:
        pytest.skip(f"the cpp backend could not be built here: {reason}")
