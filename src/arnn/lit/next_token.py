"""Next-token prediction: one-hot tokens in, a linear readout of the encoder's output at every step, trained with
per-step cross-entropy."""

from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.text import Perplexity

from arnn.cells.base import SequenceEncoder
from arnn.lit.base import Batch, OptimizerFactory, SchedulerFactory, TaskModule


class NextTokenModel(TaskModule):
    """logits_t = C y_t + d at every step t, where y_t is the encoder's output after reading x_0 … x_t.

    Tokens (B, T) int64 enter the encoder one-hot, as (B, T, vocab_size): there is no learned embedding, so cells
    are compared on their recurrence alone (the datamodule's `input_size` is the vocabulary size).
    loss = mean over the scored positions of −log softmax(logits_t)[target_t]; positions whose target equals
    `ignore_index` are not scored, in the loss or in the metrics.
    `<stage>/acc` = fraction of scored positions where argmax logits_t = target_t;
    `<stage>/ppl` = exp(Σ −log p(target_t) / number of scored positions), both accumulated over the epoch.
    """

    tracked = "acc"

    def __init__(
        self,
        net: SequenceEncoder,
        vocab_size: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_monitor: str = "val/loss",
        lr_scales: dict[str, float] | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_monitor, lr_scales)
        self.vocab_size = vocab_size
        self.chance = 1 / vocab_size
        self.ignore_index = ignore_index
        self.readout = nn.Linear(net.output_size, vocab_size)
        stages = ("val", "test")
        self.accuracy = nn.ModuleDict(
            {
                f"{stage}_acc": MulticlassAccuracy(vocab_size, average="micro", ignore_index=ignore_index)
                for stage in stages
            }
        )
        self.perplexity = nn.ModuleDict({f"{stage}_ppl": Perplexity(ignore_index=ignore_index) for stage in stages})

    def forward(self, tokens: Tensor) -> Tensor:
        """Logits (B, T, vocab_size) at every step for tokens (B, T)."""
        x = F.one_hot(tokens, self.vocab_size).to(self.readout.weight.dtype)
        y, _ = self.net(x)
        return self.readout(y)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy over the positions whose target is not `ignore_index`."""
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), target.reshape(-1), ignore_index=self.ignore_index)

    def task_loss(self, batch: Batch) -> Tensor:
        tokens, target = batch
        return self.loss(self(tokens), target)

    def shared_step(self, batch: Batch, stage: str) -> Tensor:
        tokens, target = batch
        logits = self(tokens)
        loss = self.loss(logits, target)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=True)
        if stage != "train":
            accuracy, perplexity = self.accuracy[f"{stage}_acc"], self.perplexity[f"{stage}_ppl"]
            accuracy(logits.reshape(-1, self.vocab_size), target.reshape(-1))
            # float32: Perplexity takes log(softmax), which underflows to log(0) far sooner in half precision.
            perplexity(logits.float(), target)
            self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
            self.log(f"{stage}/ppl", perplexity, on_step=False, on_epoch=True)
        return loss

    def validation_metric(self) -> Metric:
        return self.accuracy["val_acc"]
