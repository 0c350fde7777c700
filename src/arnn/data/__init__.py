"""LightningDataModules: pixel-sequence image datasets, text, and the synthetic tasks."""

from arnn.data.cifar import NoisePaddedCIFAR10DataModule, SequentialCIFAR10DataModule
from arnn.data.digits import DigitsDataModule
from arnn.data.mnist import MNISTDataModule
from arnn.data.synthetic import AddingDataModule, CopyDataModule
from arnn.data.sysid import SystemIdentificationDataModule
from arnn.data.text import CharacterTextDataModule

__all__ = [
    "AddingDataModule",
    "CharacterTextDataModule",
    "CopyDataModule",
    "DigitsDataModule",
    "MNISTDataModule",
    "NoisePaddedCIFAR10DataModule",
    "SequentialCIFAR10DataModule",
    "SystemIdentificationDataModule",
]
