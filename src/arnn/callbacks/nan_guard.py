"""Stop training at the first non-finite loss or gradient, before the optimizer step can write it into the weights,
and say what was non-finite: the weights, the batch, the loss before any update, or a later step."""

import math
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.optim import Optimizer

OVERFLOWING_DATA = 1e6
"""A batch value beyond this magnitude is reported as the likely cause: the datasets here are scaled to O(1)."""


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or ±Inf; `cause` is what the tensors show (None when they show nothing), and
    `train` turns it into one line."""

    def __init__(self, step: int, epoch: int, loss: float, where: str, cause: str | None = None) -> None:
        self.step, self.epoch, self.loss, self.where, self.cause = step, epoch, loss, where, cause
        super().__init__(f"{where} at step {step} (epoch {epoch}), loss {loss:g}")


class NonFiniteGuard(pl.Callback):
    """Raises `TrainingDiverged` when the training loss or any gradient is not finite.

    Checked after backward (gradients are all-reduced by then, so under DDP every rank sees the same NaN and stops
    together) and before the optimizer step, so the weights and the checkpoints on disk stay the last good ones."""

    def __init__(self) -> None:
        self.loss: Tensor | None = None
        self.batch: Any = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int):
        self.batch = batch

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        self.loss = loss.detach()

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        finite_grads = bool(torch.stack([g.isfinite().all() for g in grads]).all()) if grads else True
        if math.isfinite(self._loss()) and finite_grads:
            return
        raise self.diverged(trainer, pl_module, "gradient not finite" if math.isfinite(self._loss()) else "")

    def diverged(self, trainer: pl.Trainer, pl_module: pl.LightningModule, where: str = "") -> TrainingDiverged:
        """The error for the current step; `where` defaults to what the loss shows."""
        loss = self._loss()
        where = where or ("loss not finite" if not math.isfinite(loss) else "gradient not finite")
        cause = diagnosis(pl_module, self.batch)
        return TrainingDiverged(trainer.global_step, trainer.current_epoch, loss, where, cause)

    def _loss(self) -> float:
        return float(self.loss) if self.loss is not None else math.nan


def diagnosis(module: torch.nn.Module, batch: Any) -> str | None:
    """What the tensors themselves show went wrong (non-finite weights, a non-finite or overflowing batch), or None."""
    if broken := [name for name, parameter in module.named_parameters() if not parameter.isfinite().all()]:
        return (
            f"the weights were not finite before this step ({', '.join(broken[:3])}): they were loaded or set that "
            "way, so start from an earlier checkpoint"
        )
    for role, tensor in _batch_tensors(batch):
        if not tensor.isfinite().all():
            return f"the batch's {role} hold NaN or Inf: the data is broken; check the dataset files and data settings"
        if (largest := float(tensor.abs().max())) > OVERFLOWING_DATA:
            return (
                f"the batch's {role} reach |value| = {largest:.3g}, far beyond the O(1) the models expect; check the "
                "data settings (e.g. a noise level or scaling)"
            )
    return None


def _batch_tensors(batch: Any) -> Iterator[tuple[str, Tensor]]:
    """The floating-point tensors of a batch, named inputs (the first) and targets (the rest)."""
    items = batch if isinstance(batch, list | tuple) else [batch]
    for index, item in enumerate(items):
        if isinstance(item, Tensor) and item.is_floating_point() and item.numel():
            yield ("inputs" if index == 0 else "targets"), item


def likely_causes(cfg: DictConfig | dict[str, Any], first_step: bool = False) -> str:
    """The settings of `cfg` that most often make a run diverge, as advice; a generic hint when none stands out. At
    the first step no update has happened yet, so neither the learning rate nor clipping can be the cause."""
    model, optimizer, trainer = cfg.get("model", {}), cfg.get("optimizer", {}), cfg.get("trainer", {})
    causes = []
    if (eps := model.get("eps")) is not None and eps > 1:
        causes.append(f"model.eps={eps:g} is large for the forward-Euler step (stable runs use 0.01-0.1)")
    if (dt := model.get("dt")) is not None and dt > 1:
        causes.append(f"model.dt={dt:g} is a large step")
    if first_step:
        if not causes:
            causes.append(
                "the loss is not finite before any update, so the learning rate is not the cause: the initial network "
                "overflows on this data; check the model's settings (e.g. model.gamma, model.eps, its initialisation)"
            )
        return "; ".join(causes)
    if (lr := optimizer.get("lr")) is not None and lr >= 1:
        causes.append(f"optimizer.lr={lr:g} is large")
    if trainer.get("gradient_clip_val") is None:
        causes.append("gradients are not clipped (set trainer.gradient_clip_val)")
    if not causes:
        causes.append(f"try a smaller optimizer.lr (now {optimizer.get('lr')}) or model.eps")
    return "; ".join(causes)
