"""LightningModules, one per task; each receives its encoder through Hydra."""

from arnn.lit.classifier import SequenceClassifier

__all__ = ["SequenceClassifier"]
