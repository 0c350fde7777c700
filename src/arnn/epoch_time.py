"""Where one training epoch's CPU time goes, against its kernel floor (`python -m arnn.bench --epoch`).

The config's real datamodule, task module, callbacks and logger are fitted for `batches` training batches (the first one
only warms up) and as many validation batches, with `PhaseClock` reading the process's CPU time at Lightning's hooks:

    data        from the end of one training batch to the start of the next (loader, collation, transfer)
    forward     training_step: encoder, readout, loss, metric updates and self.log
    backward    loss.backward()
    optimizer   gradient clipping, the optimizer step, the cell's after-step hook
    validation  the validation loop (forward, metrics, the checkpoint and early-stopping callbacks after it)
    other       the rest of the epoch (epoch-end hooks; not scaled)

Each phase is scaled to a whole epoch (`len(train_dataloader)` training batches and `len(val_dataloader)` validation
batches). The floor is what the cell's kernels need for that epoch: the bench's forward+backward of the encoder alone
at the batch's shape per training batch, plus its forward per validation batch. ratio = epoch / floor.
"""

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from arnn.analysis.models import compose_config, fresh_model
from arnn.runs.quiet import quiet_third_party
from arnn.runs.train import instantiate_entries

PHASES = ("data", "forward", "backward", "optimizer", "validation", "other")


def clock(device: str) -> Callable[[], float]:
    """Seconds of work on `device`: the process's CPU time on the CPU (steady on a shared machine), wall time after
    the GPU's queue has run on CUDA."""
    if device == "cpu":
        return time.process_time

    def cuda_now() -> float:
        torch.cuda.synchronize()
        return time.perf_counter()

    return cuda_now


class PhaseClock(pl.Callback):
    """Seconds per phase of the training epoch (see the module docstring) on `now`'s clock, summed over batches."""

    def __init__(self, now: Callable[[], float] = time.process_time) -> None:
        self.now = now
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.train_batches = self.val_batches = 0
        self.warmed_up = False
        self._mark = 0.0

    def _lap(self, phase: str) -> None:
        now = self.now()
        self.seconds[phase] += now - self._mark
        self._mark = now

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark = self.now()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, index: int):
        self._lap("data")

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self._lap("forward")

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._lap("backward")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self._lap("optimizer")
        if self.warmed_up:
            self.train_batches += 1
        else:  # the first batch pays one-time costs (allocations, backend probes): not counted
            self.seconds = dict.fromkeys(PHASES, 0.0)
            self.warmed_up = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._lap("other")

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.val_batches += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._lap("validation")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._lap("other")


@dataclass
class EpochTime:
    """One epoch's CPU seconds per phase (scaled to the whole epoch), its floor and their ratio."""

    config: str
    threads: int
    device: str
    batch_size: int
    train_batches: int
    val_batches: int
    timed_batches: int
    forward_backward_s: float
    forward_s: float
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def epoch_s(self) -> float:
        return sum(self.phases.values())

    @property
    def floor_s(self) -> float:
        return self.train_batches * self.forward_backward_s + self.val_batches * self.forward_s

    @property
    def ratio(self) -> float:
        return self.epoch_s / self.floor_s


def _kernel_seconds(
    net: torch.nn.Module, x: torch.Tensor, repeats: int, now: Callable[[], float]
) -> tuple[float, float]:
    """Median seconds of the encoder's forward (no grad, as in validation) and of forward+backward of y_T.sum(),
    after one warm-up pass of each."""
    forward, total = [], []
    for _ in range(repeats + 1):
        with torch.no_grad():
            start = now()
            net(x)
            forward.append(now() - start)
        net.zero_grad(set_to_none=True)
        start = now()
        y, _ = net(x)
        y[:, -1].sum().backward()
        total.append(now() - start)
    return statistics.median(forward[1:]), statistics.median(total[1:])


def time_epoch(overrides: list[str], batches: int, threads: int, repeats: int = 3, device: str = "cpu") -> EpochTime:
    """Fit the config of `overrides` (composed as train.py would) for `batches` + 1 training and `batches` validation
    batches on `device` ("cpu", with `threads` threads, or "cuda") and time it against the kernel floor."""
    torch.set_num_threads(threads)
    quiet_third_party()
    now = clock(device)
    cfg = compose_config(
        [f"trainer.accelerator={'cpu' if device == 'cpu' else 'gpu'}", "trainer.devices=1", *overrides]
    )
    module, datamodule = fresh_model(cfg)
    with tempfile.TemporaryDirectory() as output_dir:
        with open_dict(cfg):
            cfg.paths.output_dir = output_dir
        phase_clock = PhaseClock(now)
        trainer: pl.Trainer = instantiate(
            cfg.trainer,
            max_epochs=1,
            limit_train_batches=batches + 1,
            limit_val_batches=batches,
            num_sanity_val_steps=0,
            enable_model_summary=False,
            callbacks=[*instantiate_entries(cfg.get("callbacks")), phase_clock],
            logger=instantiate_entries(cfg.get("logger")) or False,
        )
        trainer.fit(module.train(), datamodule=datamodule)
        x, _ = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
        x = x.to(device)
        forward_s, forward_backward_s = _kernel_seconds(module.net.to(device), x, repeats, now)
    train_batches, val_batches = len(datamodule.train_dataloader()), len(datamodule.val_dataloader())
    scale = {phase: train_batches / phase_clock.train_batches for phase in PHASES}
    scale["validation"] = val_batches / max(phase_clock.val_batches, 1)
    scale["other"] = 1.0  # epoch-end work, once per epoch
    return EpochTime(
        config=" ".join(overrides),
        threads=threads,
        device=device,
        batch_size=len(x),
        train_batches=train_batches,
        val_batches=val_batches,
        timed_batches=phase_clock.train_batches,
        forward_backward_s=forward_backward_s,
        forward_s=forward_s,
        phases={phase: phase_clock.seconds[phase] * scale[phase] for phase in PHASES},
    )


def epoch_table(results: list[EpochTime]) -> str:
    """Markdown: per thread count, the phases' CPU seconds per epoch, the epoch, its floor and the ratio."""
    header = ["threads", *PHASES, "epoch", "floor", "ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        cells = [str(result.threads), *(f"{result.phases[phase]:.1f}" for phase in PHASES)]
        cells += [f"{result.epoch_s:.1f}", f"{result.floor_s:.1f}", f"{result.ratio:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    first = results[0]
    lines += [
        "",
        f"{'CPU seconds' if first.device == 'cpu' else 'Seconds on ' + first.device} per epoch of "
        f"`{first.config}`: {first.train_batches} training batches of {first.batch_size} and "
        f"{first.val_batches} validation batches, scaled from {first.timed_batches} timed batches. Floor = "
        f"{first.train_batches} × the encoder's forward+backward + {first.val_batches} × its forward (bench, same "
        "process); ratio = epoch / floor (goal ≤ 1.15).",
    ]
    return "\n".join(lines)
