"""A run killed with SIGKILL mid-epoch and started again with `resume=true` ends where an uninterrupted run ends."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from arnn.cli.resume import resume_arguments
from arnn.errors import UserError
from arnn.runs.checkpoint import AtomicCheckpointIO
from tests.helpers.faults import KillAtStep, RecordFirstEpoch
from tests.helpers.runs import ROOT, run_cli

RUN = [
    "model.hidden_size=16",
    "trainer.max_epochs=4",
    "trainer.accelerator=cpu",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
]


def _metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def _kill_after_first_checkpoint(arguments: list[str], runs: Path) -> int:
    """Start train.py, SIGKILL it as soon as epoch 0's last.ckpt exists under `runs` (it is then inside epoch 1),
    return its exit code."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *arguments],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "offline"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/checkpoints/last.ckpt")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    return process.wait()


@pytest.mark.e2e
def test_run_killed_mid_epoch_resumes_to_the_same_final_metrics(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    assert run_cli(*RUN, f"hydra.run.dir={uninterrupted}").returncode == 0

    command = [*RUN, f"paths.log_dir={tmp_path / 'outputs'}"]
    runs = tmp_path / "outputs" / "train" / "runs"
    assert _kill_after_first_checkpoint(command, runs) == -signal.SIGKILL
    (killed,) = runs.iterdir()
    assert not (killed / "metrics.json").exists(), "the kill came after the run had finished"
    stored = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["epoch"] == 0 and not list(killed.glob("checkpoints/.*.tmp"))

    resumed = run_cli(*command, "resume=true")  # the same command: it finds the killed run's directory
    assert resumed.returncode == 0, resumed.stderr
    assert [path.name for path in runs.iterdir()] == [killed.name]
    assert f"Resuming from {killed / 'checkpoints' / 'last.ckpt'}" in resumed.stderr + resumed.stdout
    expected, got = _metrics(uninterrupted), _metrics(killed)
    assert got.keys() == expected.keys()
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    record = json.loads((killed / "metrics.json").read_text())
    assert record["best_checkpoint"].startswith(str(killed))
    # the fit time carries the killed run's first epoch (Lightning's Timer state in last.ckpt)
    assert record["run"]["epochs"] == json.loads((uninterrupted / "metrics.json").read_text())["run"]["epochs"]
    assert record["run"]["fit_time_s"] > stored["callbacks"]["Timer"]["time_elapsed"]["train"] > 0
    # and it is the fit's time, not more: the test's load of the best checkpoint must not add that checkpoint's
    # elapsed time to it again (it did: metrics.json said about twice the wall time)
    final = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["Timer"]
    assert final["time_elapsed"]["train"] <= record["run"]["fit_time_s"] < 1.5 * final["time_elapsed"]["train"]

    again = run_cli(*command, "resume=true")  # a finished run is left as it is
    assert again.returncode == 0 and "nothing to resume" in again.stderr + again.stdout
    assert _metrics(killed) == got


STEPS_PER_EPOCH = 20  # 1257 training digits in batches of 64


@pytest.mark.e2e
def test_run_killed_after_its_best_epoch_resumes_from_its_latest_epoch_not_its_best(tmp_path):
    # mode=min on val/acc makes the first epoch the best one, so every later epoch is past it.
    run = [*RUN, "trainer.max_epochs=5", "callbacks.model_checkpoint.mode=min", "callbacks.early_stopping=null"]
    uninterrupted = tmp_path / "uninterrupted"
    assert run_cli(*run, f"hydra.run.dir={uninterrupted}").returncode == 0

    killed = tmp_path / "killed"
    epoch = 3
    step = epoch * STEPS_PER_EPOCH + int(np.random.default_rng().integers(STEPS_PER_EPOCH))
    kill = [f"+callbacks.kill._target_={KillAtStep.__module__}.KillAtStep", f"+callbacks.kill.step={step}"]
    assert run_cli(*run, *kill, f"hydra.run.dir={killed}").returncode == -signal.SIGKILL
    checkpoints = killed / "checkpoints"
    (best,) = checkpoints.glob("epoch_*.ckpt")
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == epoch - 1
    assert torch.load(best, weights_only=True)["epoch"] < epoch - 1
    stale = checkpoints / ".epoch_002.ckpt.4194304.tmp"  # left by a writer killed mid-write (no such pid runs)
    stale.write_bytes(b"")

    first_epoch = tmp_path / "first_epoch"
    record = [
        f"+callbacks.first._target_={RecordFirstEpoch.__module__}.RecordFirstEpoch",
        f"+callbacks.first.path={first_epoch}",
    ]
    resumed = run_cli(*run, *record, f"hydra.run.dir={killed}", "resume=true")

    assert resumed.returncode == 0, resumed.stderr
    assert first_epoch.read_text() == str(epoch)
    assert not stale.exists()
    assert _metrics(killed) == pytest.approx(_metrics(uninterrupted), rel=1e-6, abs=1e-7)
    assert sorted(path.name for path in (killed / "csv").iterdir()) == ["hparams.yaml", "metrics.csv"]
    got, expected = _csv_rows(killed), _csv_rows(uninterrupted)
    assert [row["step"] for row in got] == [row["step"] for row in expected]
    for row, reference in zip(got, expected, strict=True):
        assert row.keys() == reference.keys()
        assert [float(row[key] or "nan") for key in row] == pytest.approx(
            [float(reference[key] or "nan") for key in reference], rel=1e-6, abs=1e-7, nan_ok=True
        )


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_atomic_save_leaves_the_previous_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1, "weight": torch.ones(3)}, path)

    def fail_halfway(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2, "weight": torch.zeros(3)}, path)

    assert AtomicCheckpointIO().load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_checkpoints_load_weights_only(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "payload": Path("not a tensor")}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        AtomicCheckpointIO().load_checkpoint(path)


def _fake_run(directory: Path, overrides: list[str], checkpoint: bool = True) -> Path:
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if checkpoint:
        (directory / "checkpoints").mkdir()
        (directory / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return directory


def test_resume_finds_the_newest_earlier_run_of_the_same_overrides(tmp_path):
    log_dir = f"paths.log_dir={tmp_path}"
    runs = tmp_path / "train" / "runs"
    older = _fake_run(runs / "a", [log_dir, "model.eps=0.1", "seed=3"])
    newer = _fake_run(runs / "b", ["seed=3", log_dir, "model.eps=0.1"])  # the same overrides in another order
    _fake_run(runs / "c", [log_dir, "model.eps=0.1", "seed=4"])  # other overrides
    _fake_run(runs / "d", [log_dir, "model.eps=0.1", "seed=3"], checkpoint=False)  # never saved a checkpoint
    now = time.time()
    os.utime(older / "checkpoints" / "last.ckpt", (now - 100, now - 100))
    os.utime(newer / "checkpoints" / "last.ckpt", (now, now))

    arguments = ["model.eps=0.1", "seed=3", log_dir, "resume=true"]
    assert resume_arguments(arguments, ROOT / "conf") == [*arguments, f"hydra.run.dir={newer}"]


def test_resume_without_an_earlier_run_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="nothing to resume.*run without resume=true"):
        resume_arguments(["seed=5", f"paths.log_dir={tmp_path}", "resume=true"], ROOT / "conf")


def test_arguments_without_resume_are_left_alone():
    assert resume_arguments(["seed=5", "resume=false"], ROOT / "conf") == ["seed=5", "resume=false"]


def test_resume_of_a_sweep_reuses_the_sweep_directory_of_the_same_overrides(tmp_path):
    log_dir = f"paths.log_dir={tmp_path}"
    sweeps = tmp_path / "train" / "multiruns"
    for name, task in (("a", ["seed=1,2,3", log_dir]), ("b", ["seed=1,2", log_dir])):
        (sweeps / name).mkdir(parents=True)
        (sweeps / name / "multirun.yaml").write_text(f"hydra:\n  overrides:\n    task: {task}\n")

    arguments = ["-m", log_dir, "seed=1,2,3", "resume=true"]
    assert resume_arguments(arguments, ROOT / "conf") == [*arguments, f"hydra.sweep.dir={sweeps / 'a'}"]
