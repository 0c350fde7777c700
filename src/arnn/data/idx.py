"""MNIST's on-disk format, written: the IDX files torchvision reads, for data of the real shape without a download."""

from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train-images-idx3-ubyte": 60000,
    "train-labels-idx1-ubyte": 60000,
    "t10k-images-idx3-ubyte": 10000,
    "t10k-labels-idx1-ubyte": 10000,
}


def write_idx(path: Path, data: np.ndarray) -> None:
    """Write a uint8 array in the IDX format MNIST ships in (0x00, 0x00, type 0x08 = ubyte, ndim; big-endian sizes)."""
    array = np.asarray(data, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


def write_random_mnist(data_dir: Path, seed: int = 0) -> Path:
    """Random 28×28 images and labels in MNIST's four files and sizes under data_dir/MNIST/raw (the layout
    `data.data_dir` points at): the shape and cost of the real data, for timing without it. Returns data_dir."""
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, count in MNIST_FILES.items():
        shape = (count, 28, 28) if "images" in name else (count,)
        write_idx(raw / name, rng.integers(0, 256 if "images" in name else 10, size=shape))
    return data_dir
