"""Tiny data in the real on-disk formats (MNIST's IDX, CIFAR-10's pickled batches), and the real data in
../shared/data when this checkout has it."""

import hashlib
import pickle
from pathlib import Path

import pytest

from tests.helpers.runs import ROOT

SHARED_DATA = ROOT.parent / "shared" / "data"


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
