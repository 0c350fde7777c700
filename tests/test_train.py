"""End to end through Hydra: every model trains on digits, checkpoints rebuild, the CLI runs and multiruns."""

import csv
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from arnn.checkpoint import build_module, load_model
from arnn.train import train
from tests.conftest import FAST, ROOT, SHARED_DATA, requires_shared_data, run_cli

MODELS = sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
EXPERIMENTS = sorted(path.stem for path in (ROOT / "conf" / "experiment").glob("*.yaml"))
PAPER_ROWS = [name for name in EXPERIMENTS if "paper" in OmegaConf.load(ROOT / "conf" / "experiment" / f"{name}.yaml")]


def _logged_metric_names(output_dir: Path) -> set[str]:
    (metrics_file,) = output_dir.glob("csv/version_*/metrics.csv")
    with metrics_file.open() as handle:
        return set(next(csv.reader(handle)))


@pytest.mark.parametrize("model", MODELS)
def test_each_model_trains_on_permuted_digits_and_tests_its_best_checkpoint(make_cfg, tmp_path, model):
    metrics = train(make_cfg(f"model={model}", "data=pdigits", "model.hidden_size=16"))
    assert 0 <= metrics["test/acc"] <= 1 and metrics["val/acc_best"] > 0
    assert list((tmp_path / "checkpoints").glob("epoch_*.ckpt")) and (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert {"train/loss_step", "val/loss", "val/acc", "test/acc"} <= _logged_metric_names(tmp_path)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam", "rmsprop"])
@pytest.mark.parametrize("scheduler", [[], ["scheduler=cosine"], ["scheduler=plateau"], ["scheduler=step"]])
def test_every_optimizer_and_scheduler_config_trains(make_cfg, optimizer, scheduler):
    cfg = make_cfg(f"optimizer={optimizer}", *scheduler, "model.hidden_size=8", "trainer.max_epochs=1")
    assert torch.isfinite(torch.tensor(train(cfg)["train/loss_epoch"]))


def test_checkpoint_rebuilds_the_trained_model_from_the_file_alone(make_cfg, tmp_path):
    train(make_cfg("model=arnn_gated", "model.hidden_size=16", "model.gamma=0.2"))
    model = load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert model.net.gamma == 0.2 and model.net.hidden_size == 16
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[name])


def test_gradient_clipping_comes_from_the_trainer_config(make_cfg):
    cfg = make_cfg("trainer.gradient_clip_val=0.5")
    assert cfg.trainer.gradient_clip_val == 0.5 and cfg.trainer.gradient_clip_algorithm == "norm"


@pytest.mark.slow
def test_cli_trains_and_prints_the_test_accuracy(tmp_path):
    result = run_cli(*FAST, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "test/acc" in result.stdout and "best-validation checkpoint" in result.stdout
    assert (tmp_path / ".hydra" / "config.yaml").exists() and (tmp_path / "train.log").exists()


@pytest.mark.slow
def test_multirun_sweeps_gamma_and_eps_into_separate_job_dirs(tmp_path):
    result = run_cli(
        "-m", "model=arnn", "model.gamma=0.001,0.01", "model.eps=0.01", *FAST, f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(path.name for path in tmp_path.iterdir() if path.is_dir())
    assert jobs == ["0", "1"]
    for job, gamma in zip(jobs, ("0.001", "0.01"), strict=True):
        assert f"gamma: {gamma}" in (tmp_path / job / ".hydra" / "config.yaml").read_text()
        assert (tmp_path / job / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_wandb_logger_runs_offline_without_an_account(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli(
        "trainer=debug",
        "logger=wandb",
        "callbacks.rich_progress_bar=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"HOME": str(home), "WANDB_MODE": "", "WANDB_API_KEY": ""},
    )
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
@pytest.mark.shared_data
@requires_shared_data
def test_gated_arnn_on_permuted_mnist_from_the_command_line(tmp_path):
    result = run_cli(
        "model=arnn_gated",
        "data=pmnist",
        f"data.data_dir={SHARED_DATA}",
        "data.source=test_split",
        "model.hidden_size=16",
        *FAST,
        "trainer.limit_train_batches=2",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_config_runs_for_a_few_batches(make_cfg, tiny_mnist, tiny_cifar, experiment):
    cfg = make_cfg(f"experiment={experiment}", "trainer.max_epochs=1")
    if "data_dir" in cfg.data:  # the tiny files in the real formats stand in for MNIST and CIFAR-10
        data_dir = tiny_cifar if "cifar" in cfg.data._target_ else tiny_mnist
        cfg.data.update(data_dir=str(data_dir), download=False, val_size=30)
    test_metric = cfg.monitor.metric.replace("val/", "test/", 1)
    assert math.isfinite(train(cfg)[test_metric])


@pytest.mark.parametrize("experiment", PAPER_ROWS)
def test_experiment_rows_have_the_papers_parameter_count_within_10_percent(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    datamodule = instantiate(cfg.data)  # reads no files: the sizes are facts of the dataset
    with open_dict(cfg):
        cfg.model.input_size = datamodule.input_size
        cfg.task.update(datamodule.task_kwargs)
    module = build_module(cfg)
    count = module.net.free_parameters() + sum(p.numel() for p in module.readout.parameters())
    assert count == pytest.approx(cfg.paper.params, rel=0.1)


@pytest.mark.parametrize("model", ["svd_urnn", "fcurnn"])
def test_manifold_updates_run_after_each_lightning_optimizer_step(make_cfg, tmp_path, model):
    train(make_cfg(f"model={model}", "data=pdigits", "model.hidden_size=16", "optimizer=adam", "optimizer.lr=0.05"))
    w = load_model(tmp_path / "checkpoints" / "last.ckpt").net.recurrent_matrix().detach()
    assert torch.linalg.matrix_norm(w.conj().t() @ w - torch.eye(16, dtype=w.dtype)) < 1e-4


def test_soft_constraint_penalty_is_logged_during_training(make_cfg, tmp_path):
    train(make_cfg("model=soft_orth", "data=pdigits", "model.hidden_size=16"))
    assert {"train/penalty_step", "train/penalty_epoch"} <= _logged_metric_names(tmp_path)
