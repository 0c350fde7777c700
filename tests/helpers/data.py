"""Tiny data in the real on-disk formats (MNIST's IDX, CIFAR-10's pickled batches), and the real data in
../shared/data when this checkout has it."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.runs import ROOT

SHARED_DATA = ROOT.parent / "shared" / "data"


def write_idx(path: Path, data: np.ndarray) -> None:
    """Write a uint8 array in the IDX format MNIST ships in (0x00, 0x00, type 0x08 = ubyte, ndim; big-endian sizes)."""
    array = np.asarray(data, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.tobytes())


PER_BATCH = 40
# Test image 0: black but for three pixels (row, column, channel, value); test image 1: one constant colour.
MARKED = ((2, 5, 0, 255), (7, 1, 1, 100), (31, 30, 2, 7))
COLOUR = (255, 0, 128)
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_pickle(path: Path, content: dict[str, object]) -> str:
    """Pickle one dict as the CIFAR-10 python version holds it; returns its MD5 for torchvision's check."""
    path.write_bytes(pickle.dumps(content, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


requires_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason=f"real MNIST not present at {SHARED_DATA}/MNIST/raw"
)
