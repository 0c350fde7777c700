"""Sequence regression: a linear readout of the encoder's output at every step, trained with the mean squared
error."""

from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import Metric, R2Score

from arnn.cells.base import SequenceEncoder
from arnn.lit.base import Batch, OptimizerFactory, SchedulerFactory, TaskModule


class SequenceRegressor(TaskModule):
    """ŷ_t = C y_t + d at every step t, where y_t is the encoder's output; loss = mean of (ŷ − target)².

    The target's shape says which steps are scored:
    (B, T, d) scores every step (system identification);
    (B, d) scores the last step only, ŷ_{T-1} (one answer per sequence, as in the adding problem).
    R² = 1 − Σ(ŷ − target)² / Σ(target − mean)² is taken over all scored steps of the epoch (flattened to
    (N, d)) per output dimension, then averaged over the d dimensions.
    """

    tracked = "r2"
    chance = 0.0

    def __init__(
        self,
        net: SequenceEncoder,
        output_size: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        lr_scales: dict[str, float] | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_monitor, lr_scales)
        self.readout = nn.Linear(net.output_size, output_size)
        self.r2 = nn.ModuleDict({f"{stage}_r2": R2Score(multioutput="uniform_average") for stage in ("val", "test")})

    def forward(self, x: Tensor) -> Tensor:
        """Predictions (B, T, output_size) at every step for inputs (B, T, m)."""
        y, _ = self.net(x)
        return self.readout(y)

    def predict_targets(self, x: Tensor, target: Tensor) -> Tensor:
        """The predictions scored against `target`: all steps for (B, T, d), the last step for (B, d)."""
        prediction = self(x)
        if target.dim() == 2:
            prediction = prediction[:, -1]
        if prediction.shape != target.shape:
            raise ValueError(
                f"targets of shape {tuple(target.shape)} do not match predictions {tuple(prediction.shape)}; "
                "targets must be (B, T, output_size) or (B, output_size)"
            )
        return prediction

    def task_loss(self, batch: Batch) -> Tensor:
        x, target = batch
        return F.mse_loss(self.predict_targets(x, target), target)

    def shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, target = batch
        prediction = self.predict_targets(x, target)
        loss = F.mse_loss(prediction, target)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=True)
        if stage != "train":
            r2 = self.r2[f"{stage}_r2"]
            size = target.shape[-1]
            r2(prediction.reshape(-1, size), target.reshape(-1, size))
            self.log(f"{stage}/r2", r2, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_metric(self) -> Metric:
        return self.r2["val_r2"]
