"""Tiny data in the real on-disk formats (MNIST's IDX, CIFAR-10's pickled batches), and the folder of real datasets
that the `shared_data` tests read when it exists."""

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from tests.helpers.runs import ROOT

# The folder of real datasets (<folder>/MNIST/raw, <folder>/tinyshakespeare/input.txt) that the tests marked
# shared_data read: $ARNN_TEST_DATA, by default shared/data in the folder that holds this checkout.
TEST_DATA_ENV = "ARNN_TEST_DATA"
REAL_DATA = Path(os.environ.get(TEST_DATA_ENV) or ROOT.parent / "shared" / "data")


PER_BATCH = 40
# Test image 0: black but for three pixels (row, column, channel, value); test image 1: one constant colour.
MARKED = ((2, 5, 0, 255), (7, 1, 1, 100), (31, 30, 2, 7))
COLOUR = (255, 0, 128)
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_pickle(path: Path, content: dict[str, object]) -> str:
    """Pickle one dict as the CIFAR-10 python version holds it; returns its MD5 for torchvision's check."""
    path.write_bytes(pickle.dumps(content, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


def missing_data_reason(what: str, relative: str) -> str:
    """The skip reason of a test whose real dataset, REAL_DATA / relative, is absent."""
    return f"{what} not found at {REAL_DATA / relative}; set {TEST_DATA_ENV} to a folder holding {relative}"


requires_shared_data = pytest.mark.skipif(
    not (REAL_DATA / "MNIST" / "raw").is_dir(), reason=missing_data_reason("real MNIST", "MNIST/raw")
)
