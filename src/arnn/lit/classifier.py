"""Sequence classification: a linear readout of the encoder's last output, trained with cross-entropy."""

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from arnn.cells.base import SequenceEncoder

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler | ReduceLROnPlateau]


class SequenceClassifier(pl.LightningModule):
    """logits = C y_T + d, where y_T is the encoder's output at the last step; loss = cross-entropy.

    The encoder, optimizer and scheduler arrive from Hydra (the latter two as partials).
    """

    def __init__(
        self,
        net: SequenceEncoder,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.readout = nn.Linear(net.output_size, num_classes)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.accuracy = nn.ModuleDict(
            {f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro") for stage in ("train", "val", "test")}
        )
        self.val_acc_best = MaxMetric()

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.net(x)
        return self.readout(y[:, -1])

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, target = batch
        logits = self(x)
        loss = F.cross_entropy(logits, target)
        self.accuracy[f"{stage}_acc"](logits, target)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log(f"{stage}/acc", self.accuracy[f"{stage}_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        penalty = self.net.penalty()
        if penalty is None:
            return loss
        self.log("train/penalty", penalty, on_step=True, on_epoch=True)
        return loss + penalty

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.net.after_optimizer_step()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.accuracy["val_acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def configure_optimizers(self) -> Optimizer | dict:
        managed = {id(p) for p in self.net.manifold_parameters()}
        optimizer = self.optimizer_factory([p for p in self.parameters() if id(p) not in managed])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.scheduler_monitor, "interval": "epoch"},
        }
