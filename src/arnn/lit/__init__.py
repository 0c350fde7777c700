"""LightningModules, one per task; each receives its encoder through Hydra."""

from arnn.lit.base import TaskModule
from arnn.lit.classifier import SequenceClassifier
from arnn.lit.regressor import SequenceRegressor

__all__ = ["SequenceClassifier", "SequenceRegressor", "TaskModule"]
