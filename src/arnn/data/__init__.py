"""LightningDataModules: pixel-sequence image datasets and synthetic tasks."""

from arnn.data.digits import DigitsDataModule
from arnn.data.mnist import MNISTDataModule

__all__ = ["DigitsDataModule", "MNISTDataModule"]
