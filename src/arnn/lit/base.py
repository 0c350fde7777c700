"""What every task module shares: the encoder's constraint hooks, the optimizer set-up, and the running best of
the validation metric that selects checkpoints."""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torchmetrics import MaxMetric, Metric

from arnn.cells.base import SequenceEncoder
from arnn.errors import ConfigError

OptimizerFactory = Callable[[Iterable[nn.Parameter] | Iterable[dict[str, Any]]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler | ReduceLROnPlateau]
Batch = tuple[Tensor, Tensor]


class TaskModule(pl.LightningModule, ABC):
    """A readout task around the encoder `net`; net, optimizer and scheduler arrive from Hydra (the latter two as
    partials).

    Training loss = task loss + net.penalty() (when not None, logged as `train/penalty`);
    net.after_optimizer_step() runs after every optimizer step; net.manifold_parameters() are left out of the
    optimizer; the groups of net.parameter_groups() named in `lr_scales` train at the optimizer's lr × their scale.
    The running maximum of `validation_metric()` over epochs is logged as `val/<tracked>_best`.
    Subclasses set `tracked` and `chance` and define `shared_step` and `validation_metric`.
    """

    tracked: str
    """Name of the validation metric whose best value is logged, e.g. "acc" for `val/acc_best`."""

    chance: float
    """The tracked metric of a model that learned nothing (uniform guessing, or predicting the mean)."""

    def __init__(
        self,
        net: SequenceEncoder,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        lr_scales: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        # Lightning collects the arguments of every __init__ up the call chain, so the subclass's own arguments
        # (num_classes, output_size) are saved too.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "lr_scales"], logger=False)
        self.net = net
        self.lr_scales = dict(lr_scales or {})
        groups = net.parameter_groups()
        for name, scale in self.lr_scales.items():
            if name not in groups:
                known = ", ".join(groups) or "none"
                raise ConfigError(
                    f"task.lr_scales names the group {name!r}, which this model lacks (its groups: {known})"
                )
            if not 0 < scale < float("inf"):
                raise ConfigError(f"task.lr_scales.{name} must be a positive number, got {scale}")
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_best = MaxMetric()
        self.val_best.persistent(True)  # in the checkpoint, so a resumed run keeps its best so far

    @abstractmethod
    def shared_step(self, batch: Batch, stage: str) -> Tensor:
        """The task loss of a batch at `stage` ("train", "val" or "test"); logs `<stage>/loss` and the metrics."""

    @abstractmethod
    def task_loss(self, batch: Batch) -> Tensor:
        """The task loss of a batch, as in training but without the penalty, logging or metric updates (for
        analyses that differentiate it)."""

    @abstractmethod
    def validation_metric(self) -> Metric:
        """The epoch-accumulated validation metric whose best value is tracked (higher is better)."""

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.shared_step(batch, "train")
        penalty = self.net.penalty()
        if penalty is None:
            return loss
        self.log("train/penalty", penalty, on_step=True, on_epoch=True, sync_dist=True)
        return loss + penalty

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.net.after_optimizer_step()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        # The sanity check sees a few batches of an untrained model: not a candidate for the best.
        if self.trainer.sanity_checking:
            return
        self.val_best(self.validation_metric().compute())
        self.log(f"val/{self.tracked}_best", self.val_best.compute(), prog_bar=True, sync_dist=True)

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's groups: each scaled group of `lr_scales` with its `lr_scale`, then the other parameters
        (scale 1); manifold parameters are left out."""
        named = self.net.parameter_groups()
        managed = {id(p) for p in self.net.manifold_parameters()}
        groups = [{"params": named[name], "lr_scale": scale} for name, scale in self.lr_scales.items()]
        scaled = managed | {id(p) for group in groups for p in group["params"]}
        rest = [p for p in self.parameters() if id(p) not in scaled]
        return [{"params": rest, "lr_scale": 1.0}, *groups]

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def configure_optimizers(self) -> Optimizer | dict:
        optimizer = self.optimizer_factory(self._parameter_groups())
        for group in optimizer.param_groups:  # the optimizer's lr, times the group's scale
            group["lr"] *= group["lr_scale"]
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.scheduler_monitor, "interval": "epoch"},
        }
