"""A NaN or Inf loss or gradient stops training with one line naming the step, the loss and the likely cause; the
weights never take the bad step and the last good checkpoint stays on disk."""

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn

from arnn.callbacks.nan_guard import NonFiniteGuard, TrainingDiverged, likely_causes
from arnn.report import write_report
from tests.helpers.runs import run_cli

# init_std 6 (an earlier default of the authors' code) makes the step-0 loss overflow at ε = 10
DIVERGING = ["model=lipschitz_rnn", "model.hidden_size=16", "model.init_std=6", "model.eps=10"]
RUN = ["trainer.accelerator=cpu", "logger=csv", "callbacks.rich_progress_bar=null"]


class _Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)


def _guard_after_backward(loss: torch.Tensor, module: _Linear) -> None:
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    guard = NonFiniteGuard()
    guard.on_before_backward(trainer, module, loss)
    loss.backward()
    guard.on_before_optimizer_step(trainer, module, torch.optim.SGD(module.parameters()))


def test_guard_passes_a_finite_step():
    module = _Linear()
    _guard_after_backward(module.layer(torch.ones(1, 2)).sum(), module)


def test_guard_stops_on_an_infinite_loss():
    module = _Linear()
    with pytest.raises(TrainingDiverged, match=r"loss not finite at step 0 \(epoch 0\), loss inf"):
        _guard_after_backward((module.layer(torch.ones(1, 2)).sum() ** 2 + 1) * float("inf"), module)


def test_guard_stops_on_a_nan_gradient_of_a_finite_loss():
    module = _Linear()
    weight = module.layer.weight[0, 0]
    # The unused branch's sqrt of a negative number is NaN; where() multiplies its gradient by 0, and 0·NaN = NaN.
    loss = torch.where(weight > 100, torch.sqrt(weight - 100), weight)
    with pytest.raises(TrainingDiverged, match="gradient not finite"):
        _guard_after_backward(loss, module)


def test_likely_cause_names_a_large_eps_and_otherwise_the_learning_rate():
    large_eps = OmegaConf.create(
        {"model": {"eps": 10.0}, "optimizer": {"lr": 0.1}, "trainer": {"gradient_clip_val": 1}}
    )
    assert likely_causes(large_eps).startswith("model.eps=10 is large for the forward-Euler step")
    plain = OmegaConf.create({"model": {"eps": 0.01}, "optimizer": {"lr": 0.1}, "trainer": {"gradient_clip_val": 1}})
    assert likely_causes(plain) == "try a smaller optimizer.lr (now 0.1) or model.eps"


@pytest.mark.e2e
def test_eps_10_diverges_to_one_error_line_and_saves_no_checkpoint(tmp_path):
    result = run_cli(*DIVERGING, *RUN, f"hydra.run.dir={tmp_path}")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: training diverged: loss not finite at step 0 (epoch 0), loss nan;"), last_line
    assert "likely cause: model.eps=10 is large" in last_line and "no checkpoint was saved" in last_line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.json").exists()


@pytest.mark.e2e
def test_a_run_that_diverges_later_keeps_the_last_good_checkpoint(tmp_path):
    good = run_cli(
        "model=lipschitz_rnn", "model.hidden_size=16", "trainer.max_epochs=1", *RUN, f"hydra.run.dir={tmp_path}"
    )
    assert good.returncode == 0, good.stderr
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = {path.name: path.read_bytes() for path in (tmp_path / "checkpoints").iterdir()}
    metrics = (tmp_path / "metrics.json").read_bytes()

    result = run_cli(*DIVERGING, "trainer.max_epochs=3", f"ckpt_path={last}", *RUN, f"hydra.run.dir={tmp_path}")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "loss not finite at step" in last_line and "(epoch 1)" in last_line, last_line
    assert last_line.endswith(f"last good checkpoint kept: {last}")
    assert {path.name: path.read_bytes() for path in (tmp_path / "checkpoints").iterdir()} == saved
    assert (tmp_path / "metrics.json").read_bytes() == metrics


@pytest.mark.e2e
def test_a_diverging_job_of_a_sweep_is_reported_and_the_sweep_goes_on(tmp_path):
    result = run_cli(
        "-m",
        "model=lipschitz_rnn",
        "model.hidden_size=16",
        "model.init_std=6",
        "model.eps=10,0.03",
        "trainer.max_epochs=1",
        *RUN,
        f"hydra.sweep.dir={tmp_path}",
    )

    assert result.returncode == 0, result.stderr
    assert (
        "error: training diverged: loss not finite at step 0" in result.stderr and "the sweep goes on" in result.stderr
    )
    assert not (tmp_path / "0" / "metrics.json").exists() and (tmp_path / "1" / "metrics.json").exists()
    error_line = next(line for line in result.stderr.splitlines() if line.startswith("error: training diverged"))
    assert error_line.removesuffix("; the sweep goes on") in (tmp_path / "0" / "train.log").read_text()

    text, _ = write_report(tmp_path, tmp_path / "report")
    assert "1 finished jobs, 1 failed or unfinished; varying: model.eps" in text
    failed_row = next(line for line in text.splitlines() if line.startswith("| 0 | 10 | training diverged: loss not"))
    assert "likely cause: model.eps=10 is large" in failed_row
