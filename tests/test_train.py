"""End to end through Hydra: every model trains on digits, checkpoints rebuild, the CLI runs and multiruns."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from arnn.runs.build import build
from arnn.runs.checkpoint import load_model
from arnn.runs.train import train
from tests.helpers.data import REAL_DATA, requires_shared_data
from tests.helpers.runs import EXPERIMENTS, FAST, ROOT, run_cli

MODELS = sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml"))
PAPER_EXPERIMENTS = [name for name in EXPERIMENTS if name.startswith("paper/") and "/quick/" not in name]
QUICK_EXPERIMENTS = [name for name in EXPERIMENTS if name.startswith("paper/") and "/quick/" in name]
# Chang et al. (ICLR 2019), Tables 1 and 2: the dataset columns and the model rows, as config names.
MNIST_ROWS = ["lstm", "fcurnn_116", "fcurnn_512", "soft_orth", "kru", "arnn", "arnn_gated"]
CIFAR_ROWS = ["lstm", "ablation", "arnn", "arnn_gated"]
CHANG_2019_TABLES = [f"paper/{data}/{row}" for data in ("smnist", "pmnist") for row in MNIST_ROWS] + [
    f"paper/{data}/{row}" for data in ("scifar10", "ncifar10") for row in CIFAR_ROWS
]
# What a quick variant may change: its name, the training budget and the data's size (never the model or optimizer).
QUICK_KEYS = {
    "task_name",
    "trainer.max_epochs",
    "trainer.limit_train_batches",
    "data.source",
    "data.val_size",
}


def _logged_metric_names(output_dir: Path) -> set[str]:
    (metrics_file,) = output_dir.glob("csv/metrics.csv")
    with metrics_file.open() as handle:
        return set(next(csv.reader(handle)))


@pytest.mark.e2e
@pytest.mark.parametrize("model", MODELS)
def test_each_model_trains_on_permuted_digits_and_tests_its_best_checkpoint(make_cfg, tmp_path, model):
    metrics = train(make_cfg(f"model={model}", "data=pdigits", "model.hidden_size=16"))
    assert 0 <= metrics["test/acc"] <= 1 and metrics["val/acc_best"] > 0
    assert list((tmp_path / "checkpoints").glob("epoch_*.ckpt")) and (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert {"train/loss_step", "val/loss", "val/acc", "test/acc"} <= _logged_metric_names(tmp_path)


@pytest.mark.e2e
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam", "rmsprop"])
@pytest.mark.parametrize("scheduler", [[], ["scheduler=cosine"], ["scheduler=plateau"], ["scheduler=step"]])
def test_every_optimizer_and_scheduler_config_trains(make_cfg, optimizer, scheduler):
    cfg = make_cfg(f"optimizer={optimizer}", *scheduler, "model.hidden_size=8", "trainer.max_epochs=1")
    assert torch.isfinite(torch.tensor(train(cfg)["train/loss_epoch"]))


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_cli_trains_and_prints_the_test_accuracy(tmp_path):
    result = run_cli(*FAST, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "test/acc" in result.stdout and "best-validation checkpoint" in result.stdout
    assert (tmp_path / ".hydra" / "config.yaml").exists() and (tmp_path / "train.log").exists()


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
@pytest.mark.shared_data
@requires_shared_data
def test_gated_arnn_on_permuted_mnist_from_the_command_line(tmp_path):
    result = run_cli(
        "model=arnn_gated",
        "data=pmnist",
        f"data.data_dir={REAL_DATA}",
        "data.source=test_split",
        "model.hidden_size=16",
        *FAST,
        "trainer.limit_train_batches=2",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.fixture
def tiny_text(tmp_path: Path) -> Path:
    """A 12 000-character text: room for a 400-character window in each of the 5% validation and test blocks."""
    path = tmp_path / "tiny.txt"
    path.write_text("".join(np.random.default_rng(0).choice(list("abc de\n"), size=12_000)))
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_config_runs_for_a_few_batches(make_cfg, tiny_mnist, tiny_cifar, tiny_text, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    # An experiment's own budget (quick variants set one) gives way to two batches of a 16-unit model: this checks
    # the wiring, the paper's widths are built by the parameter-count test. Anomaly mode is off: its per-op
    # bookkeeping makes 784 steps of the complex-state cells take 10× longer.
    budget = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "limit_test_batches": 1}
    cfg.trainer.update(**budget, detect_anomaly=False)
    cfg.model.hidden_size = 16
    if "data_dir" in cfg.data:  # the tiny files in the real formats stand in for MNIST and CIFAR-10
        data_dir = tiny_cifar if "cifar" in cfg.data._target_ else tiny_mnist
        cfg.data.update(data_dir=str(data_dir), download=False, val_size=30, batch_size=8)
    if "path" in cfg.data:
        cfg.data.update(path=str(tiny_text), batch_size=8)
    test_metric = cfg.monitor.metric.replace("val/", "test/", 1)
    assert math.isfinite(train(cfg)[test_metric])


def test_every_cell_of_the_antisymmetric_rnn_tables_has_a_paper_experiment_with_its_number(make_cfg):
    assert set(CHANG_2019_TABLES) <= set(PAPER_EXPERIMENTS)
    for experiment in CHANG_2019_TABLES:
        cfg = make_cfg(f"experiment={experiment}")
        data = HydraConfig.get().runtime.choices.data
        assert experiment.split("/")[1] == data and cfg.task_name == experiment.replace("/", "_")
        assert cfg.model.hidden_size == cfg.paper.units and 10 < cfg.paper.test_acc[data] < 100


def _quick(experiment: str) -> str:
    """paper/<data>/quick/<model> for paper/<data>/<model>."""
    head, _, model = experiment.rpartition("/")
    return f"{head}/quick/{model}"


def test_every_paper_experiment_has_a_quick_variant_and_every_quick_variant_a_paper_experiment():
    assert {_quick(name) for name in PAPER_EXPERIMENTS} == set(QUICK_EXPERIMENTS)


def _leaves(node: object, key: str = "") -> dict[str, object]:
    """A config's values by dotted key: {"a.b": 1} for {"a": {"b": 1}}."""
    if not isinstance(node, dict):
        return {key: node}
    return {
        path: value
        for name, child in node.items()
        for path, value in _leaves(child, f"{key}.{name}".lstrip(".")).items()
    }


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_quick_variant_keeps_the_paper_setting_and_changes_only_budget_and_data_size(make_cfg, experiment):
    leaves, sweeps = {}, {}
    for name in (experiment, _quick(experiment)):
        leaves[name] = _leaves(OmegaConf.to_container(make_cfg(f"experiment={name}")))
        sweeps[name] = HydraConfig.get().sweeper.params
    full, quick = leaves[experiment], leaves[_quick(experiment)]
    changed = {key for key in full.keys() | quick.keys() if full.get(key) != quick.get(key)}
    assert changed <= QUICK_KEYS and quick["task_name"] == full["task_name"] + "_quick"
    # a quick sweep runs the same models and sizes (sysid's on fewer realisations of its teacher)
    full_sweep, quick_sweep = (dict(sweeps[name] or {}) for name in (experiment, _quick(experiment)))
    assert {k: v for k, v in full_sweep.items() if k != "data.realisation"} == {
        k: v for k, v in quick_sweep.items() if k != "data.realisation"
    }


# The CIFAR table's one parameter column counts the pixel models (3 inputs per step); noise-padded CIFAR feeds 96.
@pytest.mark.parametrize("experiment", [name for name in CHANG_2019_TABLES if "ncifar10" not in name])
def test_experiment_rows_have_the_papers_parameter_count_within_10_percent(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}")
    _, module = build(cfg)  # reads no files: the sizes are facts of the dataset
    count = module.net.free_parameters() + sum(p.numel() for p in module.readout.parameters())
    assert count == pytest.approx(cfg.paper.params, rel=0.1)


@pytest.mark.e2e
@pytest.mark.parametrize("model", ["svd_urnn", "fcurnn"])
def test_manifold_updates_run_after_each_lightning_optimizer_step(make_cfg, tmp_path, model):
    train(make_cfg(f"model={model}", "data=pdigits", "model.hidden_size=16", "optimizer=adam", "optimizer.lr=0.05"))
    w = load_model(tmp_path / "checkpoints" / "last.ckpt").net.recurrent_matrix().detach()
    assert torch.linalg.matrix_norm(w.conj().t() @ w - torch.eye(16, dtype=w.dtype)) < 1e-4


@pytest.mark.e2e
def test_soft_constraint_penalty_is_logged_during_training(make_cfg, tmp_path):
    train(make_cfg("model=soft_orth", "data=pdigits", "model.hidden_size=16"))
    assert {"train/penalty_step", "train/penalty_epoch"} <= _logged_metric_names(tmp_path)
