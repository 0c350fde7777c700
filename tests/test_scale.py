"""Scaling out: DDP over several processes, SLURM job arrays, Optuna and W&B sweeps, W&B dashboards."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import pytorch_lightning as pl
import submitit
import wandb
import yaml
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf
from submitit.core.utils import DelayedSubmission
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from arnn.errors import ConfigError
from arnn.runs.build import compose, hydra_configs
from arnn.runs.checkpoint import load_model
from arnn.runs.ddp import check_rank_launch
from arnn.runs.train import train
from arnn.runs.wandb_mode import flat_hyperparameters, register_resolver, run_group
from tests.helpers.runs import ROOT, run_cli

TINY = ["model.hidden_size=16", "logger=csv", "callbacks.rich_progress_bar=null"]
SHORT = ["trainer.max_epochs=2", "trainer.limit_train_batches=8"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def final_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


@pytest.mark.e2e
def test_two_gloo_processes_reach_the_validation_accuracy_of_one_process_with_the_same_global_batch(tmp_path):
    """DDP over 2 CPU processes with batch 16 each against one process with batch 32: same numbers.

    Why they agree: under DDP Lightning swaps the training shuffle (EpochShuffle, seeded by the run's seed and the
    epoch) for its DistributedSampler with the same seed, so both runs draw the same permutation and rank r takes
    its positions r, r + 2, ...: the 2 × 16 sequences of a DDP step are the 32 of the single-process step. Each
    rank's loss is a mean over its 16 and DDP averages the gradients, which is the mean over all 32. What is left is
    float32 summation order (~1e-7 relative per reduction); over these 16 Adagrad steps it stays far below 1e-4 in
    the loss. The tolerance: losses to 1e-4 relative, and accuracies to one sequence of the 180 validation
    (360 test) sequences, the most a rounding difference can flip in a borderline prediction. Validation and test
    accuracy are synced over ranks by torchmetrics, so each covers the whole split (180 and 360 split evenly).
    """
    one, two = tmp_path / "one", tmp_path / "two"
    single = run_cli(
        *TINY, *SHORT, "trainer.accelerator=cpu", "data.batch_size=32", f"hydra.run.dir={one}", env=ONE_THREAD
    )
    assert single.returncode == 0, single.stderr
    ddp = run_cli(*TINY, *SHORT, "trainer=ddp_cpu", "data.batch_size=16", f"hydra.run.dir={two}", env=ONE_THREAD)
    assert ddp.returncode == 0, ddp.stderr

    expected, got = final_metrics(one), final_metrics(two)
    assert got["val/acc"] == pytest.approx(expected["val/acc"], abs=1 / 180)
    assert got["val/acc_best"] == pytest.approx(expected["val/acc_best"], abs=1 / 180)
    assert got["test/acc"] == pytest.approx(expected["test/acc"], abs=1 / 360)
    assert got["val/loss"] == pytest.approx(expected["val/loss"], rel=1e-4)
    assert got["train/loss_epoch"] == pytest.approx(expected["train/loss_epoch"], rel=1e-4)
    # Rank zero alone writes: one metrics file, the checkpoints once, a best checkpoint that loads.
    assert sorted(path.name for path in (two / "csv").iterdir()) == ["hparams.yaml", "metrics.csv"]
    best = Path(json.loads((two / "metrics.json").read_text())["best_checkpoint"])
    assert best.parent == two / "checkpoints" and (two / "checkpoints" / "last.ckpt").exists()
    assert load_model(best).net.hidden_size == 16


class Submitted(Exception):
    """Raised in place of calling sbatch: the test stops once the job is ready to go."""


@pytest.fixture
def sbatch_scripts(tmp_path, monkeypatch) -> list[str]:
    """The sbatch scripts submitit would submit, collected instead of submitted; `srun` need only be on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\necho 'this test never runs srun' >&2\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    scripts: list[str] = []

    def capture(executor: submitit.SlurmExecutor, command: str) -> None:
        scripts.append(executor._make_submission_file_text(command, "test"))
        raise Submitted

    monkeypatch.setattr(submitit.SlurmExecutor, "_submit_command", capture)
    return scripts


def compose_with_hydra(*overrides: str):
    """conf/train.yaml with the `hydra` node, as a multirun sees it."""
    return compose(overrides, hydra_config=True)


def multirun(*overrides: str) -> None:
    """`python train.py -m <overrides>` in this process, as hydra.main would start it."""
    with hydra_configs():
        GlobalHydra.instance().hydra.multirun(
            config_name="train", task_function=train, overrides=list(overrides), with_log_configuration=False
        )


@pytest.mark.e2e
def test_slurm_launcher_submits_one_array_task_per_job_with_a_task_per_device(tmp_path, sbatch_scripts):
    sweep = tmp_path / "sweep"
    with pytest.raises(Submitted):
        multirun(
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "model.gamma=0.01,0.1",
            f"hydra.sweep.dir={sweep}",
        )

    (script,) = sbatch_scripts
    directives = dict(line.split("=", 1) for line in script.splitlines() if line.startswith("#SBATCH"))
    logs = f"{sweep}/.submitit/%A_%a/%A_%a_0_log"
    assert directives == {
        "#SBATCH --array": "0-1%2",
        "#SBATCH --cpus-per-task": "4",
        "#SBATCH --error": f"{logs}.err",
        "#SBATCH --gpus-per-node": "4",
        "#SBATCH --job-name": "train",
        "#SBATCH --mem": "32GB",
        "#SBATCH --nodes": "2",
        "#SBATCH --ntasks-per-node": "4",
        "#SBATCH --open-mode": "append",
        "#SBATCH --output": f"{logs}.out",
        "#SBATCH --partition": "gpu",
        "#SBATCH --signal": "USR2@120",
        "#SBATCH --time": "1440",
        "#SBATCH --wckey": "submitit",
    }
    assert script.rstrip().splitlines()[-1].startswith("srun --unbuffered --output ")
    assert script.rstrip().endswith(f"-u -m submitit.core._submit {sweep}/.submitit/%j")
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    # What each array task runs: this Hydra job, with its own overrides.
    jobs = [DelayedSubmission.load(path) for path in (sweep / ".submitit").glob("*.pkl")]
    assert sorted(job.args[0][-1] for job in jobs) == ["model.gamma=0.01", "model.gamma=0.1"]
    assert {job.args[0][0] for job in jobs} == {"trainer=ddp"}


@pytest.mark.e2e
def test_optuna_sweep_over_gamma_eps_lr_reports_its_best_trial(tmp_path):
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna_gamma_eps_lr",
        "hydra.sweeper.n_trials=2",
        "trainer=debug",
        "model.hidden_size=8",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
        f"hydra.sweep.dir={tmp_path}",
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr

    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    trials = {job: final_metrics(tmp_path / job)["val/acc_best"] for job in ("0", "1")}
    best_job = max(trials, key=trials.get)
    assert results.best_value == trials[best_job]
    assert set(results.best_params) == {"model.eps", "model.gamma", "optimizer.lr"}
    ranges = {"model.eps": (1e-3, 1), "model.gamma": (1e-4, 1), "optimizer.lr": (1e-4, 1)}
    for name, (low, high) in ranges.items():
        assert low <= results.best_params[name] <= high
    job_config = OmegaConf.load(tmp_path / best_job / ".hydra" / "config.yaml")
    assert job_config.model.eps == results.best_params["model.eps"]
    assert job_config.optimizer.lr == results.best_params["optimizer.lr"]


@pytest.mark.parametrize(("mode", "direction"), [("max", "maximize"), ("min", "minimize")])
def test_optuna_sweep_direction_follows_the_task_monitor(mode, direction):
    cfg = compose_with_hydra("hydra/sweeper=optuna_gamma_eps_lr", f"monitor.mode={mode}")
    assert cfg.hydra.sweeper.direction == direction


SWEEP_FILE = ROOT / "sweeps" / "wandb_gamma_eps_lr.yaml"
# Top-level keys and parameter distributions of W&B's sweep config schema (wandb/sweeps, config/schema.json).
SWEEP_KEYS = {
    "program",
    "project",
    "entity",
    "name",
    "description",
    "method",
    "metric",
    "parameters",
    "command",
    "early_terminate",
    "run_cap",
}


def test_wandb_sweep_file_is_a_bayes_sweep_of_hydra_overrides_on_the_logged_metric(make_cfg):
    sweep = yaml.safe_load(SWEEP_FILE.read_text())

    assert set(sweep) <= SWEEP_KEYS and sweep["method"] == "bayes"
    assert (ROOT / sweep["program"]).exists()
    assert sweep["metric"] == {"name": make_cfg().optimized_metric, "goal": "maximize"}
    assert sweep["command"] == ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]
    searched = {name: spec for name, spec in sweep["parameters"].items() if "distribution" in spec}
    assert set(searched) == {"model.eps", "model.gamma", "optimizer.lr"}
    for spec in searched.values():
        assert spec["distribution"] == "log_uniform_values" and 0 < spec["min"] < spec["max"]

    # The agent's own argument builder, on the range ends: they compose as overrides and land where they say.
    for end in ("min", "max"):
        values = {name: spec.get("value", spec.get(end)) for name, spec in sweep["parameters"].items()}
        arguments = create_sweep_command_args({"args": {name: {"value": v} for name, v in values.items()}})
        cfg = make_cfg(*arguments["args_no_hyphens"])
        assert cfg.model._target_ == "arnn.cells.AntisymmetricCell"
        for name in searched:
            assert OmegaConf.select(cfg, name) == values[name]


def test_flat_hyperparameters_name_each_leaf_by_its_override():
    config = {"model": {"gamma": 0.01, "net": {"sizes": [1, 2]}}, "seed": 1, "callbacks": {"bar": None}, "e": {}}
    assert flat_hyperparameters(config) == {
        "model.gamma": 0.01,
        "model.net.sizes": [1, 2],
        "seed": 1,
        "callbacks.bar": None,
        "e": {},
    }


def test_multirun_jobs_share_one_wandb_group_per_sweep():
    assert run_group("train", None, "outputs/train/multiruns/x") == "train"
    assert run_group("train", RunMode.RUN, "outputs/train/multiruns/x") == "train"
    assert run_group("paper", RunMode.MULTIRUN, "outputs/paper/multiruns/2026-01-02_03-04-05") == (
        "paper/2026-01-02_03-04-05"
    )


def test_wandb_group_and_tags_name_the_experiment():
    experiment = "paper/pmnist/quick/arnn"
    register_resolver()
    cfg = compose_with_hydra("logger=wandb", f"experiment={experiment}", "hydra.mode=MULTIRUN", "hydra.sweep.dir=/s/x")
    HydraConfig.instance().set_config(cfg)
    choices = cfg.hydra.runtime.choices
    assert cfg.tags == [choices.model, choices.data, experiment]
    assert cfg.logger.wandb.group == f"{cfg.task_name}/x"


@pytest.mark.e2e
def test_offline_wandb_run_gets_flat_config_group_and_tags(make_cfg, monkeypatch, tmp_path):
    """The W&B run as the SDK holds it when train() finishes it (what its .wandb file stores and `wandb sync`
    uploads: W&B ships no reader of offline run files), tied to the offline run directory by its id."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = {}
    finish = wandb.finish

    def record_then_finish(*args, **kwargs):
        seen.update(id=wandb.run.id, config=dict(wandb.run.config), group=wandb.run.group, tags=wandb.run.tags)
        finish(*args, **kwargs)

    monkeypatch.setattr(wandb, "finish", record_then_finish)
    train(make_cfg("logger=wandb", "model.hidden_size=8", "model.gamma=0.05"))

    assert seen["group"] == "train" and list(seen["tags"]) == ["arnn", "digits"]
    assert seen["config"]["model.gamma"] == 0.05 and seen["config"]["optimizer.lr"] == 0.1
    assert not any(isinstance(value, dict) and value for value in seen["config"].values())
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert run_dir.name.endswith(seen["id"]) and (run_dir / f"run-{seen['id']}.wandb").stat().st_size > 0


def ddp_trainer(devices: int) -> pl.Trainer:
    return pl.Trainer(strategy="ddp", accelerator="cpu", devices=devices, logger=False, enable_checkpointing=False)


def in_hydra(mode: str) -> None:
    """HydraConfig as in a job of `python train.py` (RUN) or `python train.py -m` (MULTIRUN)."""
    HydraConfig.instance().set_config(compose_with_hydra(f"hydra.mode={mode}"))


def test_ddp_that_would_rerun_the_sweep_in_each_rank_is_refused_in_a_multirun():
    in_hydra("MULTIRUN")
    with pytest.raises(ConfigError, match="trainer.devices=2 with DDP in a local multirun"):
        check_rank_launch(ddp_trainer(2))
    check_rank_launch(ddp_trainer(1))
    in_hydra("RUN")
    check_rank_launch(ddp_trainer(2))


def test_ddp_ranks_started_by_slurm_are_allowed_in_a_multirun(monkeypatch):
    slurm_task = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NAME": "train",
        "SLURM_JOB_ID": "7",
        "SLURM_NODELIST": "node1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    for name, value in slurm_task.items():
        monkeypatch.setenv(name, value)
    in_hydra("MULTIRUN")
    check_rank_launch(ddp_trainer(2))
