"""The run's resolved config inside every checkpoint, so a model can be rebuilt from the file alone."""

from typing import Any

import pytorch_lightning as pl

from arnn.runs.checkpoint import CONFIG_KEY


class ConfigInCheckpoint(pl.Callback):
    """Writes the resolved run config into every checkpoint under `arnn_config`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config
