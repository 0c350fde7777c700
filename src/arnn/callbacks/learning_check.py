"""A run that learned nothing still ends with exit 0 (its numbers are real), but says so: a warning line in the log
and in metrics.json."""

import logging
import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

log = logging.getLogger(__name__)


class LearningCheck(pl.Callback):
    """Warns when the best `monitor` value never beat the untrained model's (measured by the sanity check before the
    first epoch; `trainer.num_sanity_val_steps=-1` makes it the whole validation set), and when the tested metric of
    a higher-is-better `monitor` is below the task's `chance`. The warnings are kept in `warnings`."""

    def __init__(self, monitor: str, mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.initial: float | None = None
        self.best: float | None = None
        self.warnings: list[str] = []

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.mode == "max" else value < than

    def _read(self, trainer: pl.Trainer, name: str) -> float | None:
        value = trainer.callback_metrics.get(name)
        return float(value) if value is not None and math.isfinite(float(value)) else None

    def on_sanity_check_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.initial is None:  # a resumed run keeps the untrained model's value from its checkpoint
            self.initial = self._read(trainer, self.monitor)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = self._read(trainer, self.monitor)
        if trainer.sanity_checking or value is None:
            return
        if self.best is None or self._better(value, self.best):
            self.best = value

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.initial is not None and self.best is not None and not self._better(self.best, self.initial):
            self._warn(
                f"{self.monitor} never improved on the untrained model's {self.initial:.4g} (best {self.best:.4g}): "
                "the run learned nothing; check optimizer.lr and the model settings"
            )

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        name = self.monitor.replace("val/", "test/", 1)
        chance = getattr(pl_module, "chance", None)
        value = self._read(trainer, name)
        if self.mode == "max" and chance is not None and value is not None and value < chance:
            self._warn(
                f"{name} {value:.4g} is below chance ({chance:.4g}): the model is worse than one that learned "
                "nothing; check optimizer.lr and the model settings"
            )

    def _warn(self, message: str) -> None:
        rank_zero_only(log.warning)(message)
        self.warnings.append(message)

    def state_dict(self) -> dict[str, Any]:
        return {"initial": self.initial, "best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial, self.best = state_dict["initial"], state_dict["best"]
