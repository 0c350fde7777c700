"""Stop training at the first non-finite loss or gradient, before the optimizer step can write it into the weights."""

import math
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.optim import Optimizer


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or ±Inf; `train` turns it into one line with the likely cause."""

    def __init__(self, step: int, epoch: int, loss: float, where: str) -> None:
        self.step, self.epoch, self.loss, self.where = step, epoch, loss, where
        super().__init__(f"{where} at step {step} (epoch {epoch}), loss {loss:g}")


class NonFiniteGuard(pl.Callback):
    """Raises `TrainingDiverged` when the training loss or any gradient is not finite.

    Checked after backward (gradients are all-reduced by then, so under DDP every rank sees the same NaN and stops
    together) and before the optimizer step, so the weights and the checkpoints on disk stay the last good ones."""

    def __init__(self) -> None:
        self.loss: Tensor | None = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        self.loss = loss.detach()

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        finite_grads = bool(torch.stack([g.isfinite().all() for g in grads]).all()) if grads else True
        loss = float(self.loss) if self.loss is not None else math.nan
        if math.isfinite(loss) and finite_grads:
            return
        where = "gradient not finite" if math.isfinite(loss) else "loss not finite"
        raise TrainingDiverged(trainer.global_step, trainer.current_epoch, loss, where)


def likely_causes(cfg: DictConfig | dict[str, Any]) -> str:
    """The settings of `cfg` that most often make a run diverge, as advice; a generic hint when none stands out."""
    model, optimizer, trainer = cfg.get("model", {}), cfg.get("optimizer", {}), cfg.get("trainer", {})
    causes = []
    if (eps := model.get("eps")) is not None and eps > 1:
        causes.append(f"model.eps={eps:g} is large for the forward-Euler step (stable runs use 0.01-0.1)")
    if (dt := model.get("dt")) is not None and dt > 1:
        causes.append(f"model.dt={dt:g} is a large step")
    if (lr := optimizer.get("lr")) is not None and lr >= 1:
        causes.append(f"optimizer.lr={lr:g} is large")
    if trainer.get("gradient_clip_val") is None:
        causes.append("gradients are not clipped (set trainer.gradient_clip_val)")
    if not causes:
        causes.append(f"try a smaller optimizer.lr (now {optimizer.get('lr')}) or model.eps")
    return "; ".join(causes)
