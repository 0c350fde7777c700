"""Callbacks that a test adds to a train.py run from the command line
(`+callbacks.<name>._target_=tests.helpers.faults...`) to break it at a chosen point or record where it started."""

import os
import signal
from pathlib import Path

import pytorch_lightning as pl


class KillAtStep(pl.Callback):
    """SIGKILLs its own process before training batch `step` (a global step), as a pre-empted job dies."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordFirstEpoch(pl.Callback):
    """Writes the epoch the process starts training at (after any checkpoint is restored) into `path`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.path.exists():
            self.path.write_text(str(trainer.current_epoch))
