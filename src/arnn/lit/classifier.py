"""Sequence classification: a linear readout of the encoder's last output, trained with cross-entropy."""

from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from arnn.cells.base import SequenceEncoder
from arnn.lit.base import Batch, OptimizerFactory, SchedulerFactory, TaskModule


class SequenceClassifier(TaskModule):
    """logits = C y_T + d, where y_T is the encoder's output at the last step; loss = cross-entropy.

    Logs `<stage>/loss` and `<stage>/acc`; `val/acc_best` is the running best validation accuracy.
    """

    tracked = "acc"

    def __init__(
        self,
        net: SequenceEncoder,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        lr_scales: dict[str, float] | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_monitor, lr_scales)
        self.readout = nn.Linear(net.output_size, num_classes)
        self.chance = 1 / num_classes
        self.accuracy = nn.ModuleDict(
            {f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro") for stage in ("train", "val", "test")}
        )

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.net(x)
        return self.readout(y[:, -1])

    def task_loss(self, batch: Batch) -> Tensor:
        x, target = batch
        return F.cross_entropy(self(x), target)

    def shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, target = batch
        logits = self(x)
        loss = F.cross_entropy(logits, target)
        self.accuracy[f"{stage}_acc"](logits, target)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/acc", self.accuracy[f"{stage}_acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_metric(self) -> Metric:
        return self.accuracy["val_acc"]
