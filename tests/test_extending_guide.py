"""docs/extending.md, followed as a reader follows it: its files written, its commands run, their outcomes checked.

How the guide is read:
- a fenced code block right after a line that is just a backquoted path and a colon ("`myext/arnn_ext/leaky.py`:")
  is that file; the files under `myext/` are written into a temporary workspace, never into the checkout;
- the block after the line naming `src/arnn/analysis/__main__.py` is the analysis's entry of `ANALYSES`: the test
  puts that entry into the registry (monkeypatch) instead of editing the file;
- in ```bash blocks, `export NAME=value` lines give the commands' environment and `python ...` lines are the
  commands, `$PWD` being the workspace (the folder that holds `myext/`).

`python train.py` commands run as they are written, through the real train.py in a subprocess started in the
workspace, with three overrides appended that change only where and how the run logs (a run directory in tmp_path,
the CSV logger instead of W&B, no progress bar). Commands that would train for long (no `trainer=debug`) are only
composed and checked, in process, as train.py checks a command line before it starts. The analysis commands run in
process through `arnn.analysis.__main__.main` (registered) and runpy (unregistered), with the workspace as the
working directory and `myext/` on sys.path, as PYTHONPATH puts it there for a command.
"""

import ast
import csv
import json
import math
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from arnn.analysis import __main__ as analysis_cli
from arnn.cli.precheck import command_line_error
from arnn.cli.resume import resume_arguments
from arnn.errors import ConfigError
from arnn.runs.build import CONF_DIR, CONFIG_NAME, build, compose
from arnn.runs.checkpoint import load_model
from tests.helpers.runs import ROOT

GUIDE = ROOT / "docs" / "extending.md"
LABEL = re.compile(r"^`([^`]+)`.*:$")
REGISTRY = "src/arnn/analysis/__main__.py"
LOGGING_ONLY = ["logger=csv", "callbacks.rich_progress_bar=null"]
"""Appended to each training command with its run directory: they change what is logged where, not what trains."""


def guide_blocks() -> list[tuple[str | None, str, str]]:
    """(path labelling the block or None, language, text) of each fenced code block of the guide."""
    blocks, label, lines = [], None, GUIDE.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = lines.index("```", index + 1)
            blocks.append((label, line[3:].strip(), "\n".join(lines[index + 1 : end]) + "\n"))
            index, label = end + 1, None
            continue
        if line.strip():
            match = LABEL.match(line.strip())
            label = match.group(1) if match else None
        index += 1
    return blocks


BLOCKS = guide_blocks()
FILES = {path: text for path, _, text in BLOCKS if path and path.startswith("myext/")}
COMMAND_LINES = [
    line.strip()
    for _, language, text in BLOCKS
    if language == "bash"
    for line in text.splitlines()
    if line.startswith(("python ", "export "))
]


def guide_command(*parts: str, without: str | None = None) -> list[str]:
    """The guide's one `python ...` command containing every string of `parts` (and not `without`), split as the
    shell splits it."""
    found = [
        line
        for line in COMMAND_LINES
        if line.startswith("python ") and all(part in line for part in parts) and not (without and without in line)
    ]
    assert len(found) == 1, f"expected one command of the guide with {parts}, found {found}"
    return shlex.split(found[0], comments=True)


def overrides_of(command: list[str]) -> list[str]:
    """The overrides of a `python train.py ...` command."""
    assert command[:2] == ["python", "train.py"], command
    return command[2:]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the guide's `myext/`, the directory its commands start in."""
    folder = tmp_path_factory.mktemp("guide")
    assert {"myext/arnn_ext/__init__.py", "myext/conf/model/leaky_arnn.yaml"} <= set(FILES)
    for path, text in FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    return folder


def guide_environment(workspace: Path) -> dict[str, str]:
    """The environment after the guide's `export` lines, run in the workspace."""
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    for line in COMMAND_LINES:
        if line.startswith("export "):
            name, _, value = shlex.split(line, comments=True)[1].partition("=")
            environment[name] = value.replace("$PWD", str(workspace))
    return environment


def run_guide(workspace: Path, command: list[str], *extra: str) -> subprocess.CompletedProcess:
    """`python train.py ...` as the guide writes it, started in the workspace with the guide's environment."""
    arguments = [sys.executable, str(ROOT / "train.py"), *overrides_of(command), *extra]
    return subprocess.run(
        arguments, cwd=workspace, env=guide_environment(workspace), capture_output=True, text=True, timeout=300
    )


def train_as_guided(workspace: Path, command: list[str], run_dir: Path) -> dict:
    """Run a training command of the guide into `run_dir`; its metrics.json record."""
    result = run_guide(workspace, command, f"hydra.run.dir={run_dir}", *LOGGING_ONLY)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def extension(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In this process, what the guide's commands see: `myext/` importable, the workspace as working directory."""
    pythonpath = guide_environment(workspace)["PYTHONPATH"]
    assert Path(pythonpath) == workspace / "myext"
    monkeypatch.syspath_prepend(pythonpath)
    monkeypatch.chdir(workspace)
    yield workspace
    for name in [name for name in sys.modules if name == "arnn_ext" or name.startswith("arnn_ext.")]:
        del sys.modules[name]
    GlobalHydra.instance().clear()


def test_guide_folder_setup_shows_the_new_model_config(workspace):
    result = run_guide(workspace, guide_command("--cfg job"))
    assert result.returncode == 0, result.stderr
    assert "_target_: arnn_ext.leaky.LeakyAntisymmetricCell" in result.stdout


def test_every_training_command_of_the_guide_passes_the_command_line_check(extension):
    commands = [shlex.split(line, comments=True) for line in COMMAND_LINES if line.startswith("python train.py")]
    assert len(commands) >= 5
    for command in commands:
        assert command_line_error(overrides_of(command), CONF_DIR, CONFIG_NAME) is None, command


def test_guide_command_with_resume_finds_its_earlier_run(extension):
    command = overrides_of(guide_command("model=leaky_arnn", "trainer=debug"))
    earlier = extension / "outputs" / "train" / "runs" / "earlier"
    (earlier / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(command), earlier / ".hydra" / "overrides.yaml")  # as Hydra saves a run's
    (earlier / "checkpoints").mkdir()
    (earlier / "checkpoints" / "last.ckpt").touch()
    *given, run_dir = resume_arguments([*command, "resume=true"], CONF_DIR)
    assert given == [*command, "resume=true"]
    assert Path(run_dir.removeprefix("hydra.run.dir=")).resolve() == earlier.resolve()


@pytest.mark.e2e
def test_guide_cell_trains_from_its_own_config(workspace, tmp_path):
    record = train_as_guided(workspace, guide_command("model=leaky_arnn", "trainer=debug"), tmp_path / "run")
    metrics = record["metrics"]
    assert math.isfinite(metrics["test/loss"]) and 0 <= metrics["test/acc"] <= 1
    config = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "_target_: arnn_ext.leaky.LeakyAntisymmetricCell" in config


def test_guide_cell_forward_agrees_with_its_step_and_continues_from_a_state(extension):
    from arnn_ext.leaky import LeakyAntisymmetricCell

    torch.manual_seed(0)
    cell = LeakyAntisymmetricCell(input_size=3, hidden_size=5, alpha=0.3)
    x = torch.randn(2, 7, 3)
    y, last = cell(x)
    h = cell.default_state(2, x)
    for t in range(7):
        h = cell.step(x[:, t], h)
        torch.testing.assert_close(y[:, t], h)
    torch.testing.assert_close(last, y[:, -1])
    continued, _ = cell(x[:, 4:], y[:, 3])
    torch.testing.assert_close(continued, y[:, 4:])
    assert cell.output_size == 5


def test_guide_cell_settings_are_checked_with_one_line_errors(extension):
    from arnn_ext.leaky import LeakyAntisymmetricCell

    command = overrides_of(guide_command("model=leaky_arnn", "trainer=debug"))
    assert command_line_error([*command, "model.alpha=abc"], CONF_DIR, CONFIG_NAME) == (
        "model.alpha must be float, got 'abc'"
    )
    with pytest.raises(ConfigError, match=r"model\.alpha must be in \(0, 1\], got 2"):
        LeakyAntisymmetricCell(input_size=1, hidden_size=4, alpha=2)


def test_guide_cell_parameter_group_trains_at_its_own_learning_rate(extension):
    cfg = compose([*overrides_of(guide_command("+task.lr_scales.recurrent=0.1")), "model.hidden_size=4"])
    _, module = build(cfg)
    optimizer = module.configure_optimizers()
    (recurrent,) = [group for group in optimizer.param_groups if any(p is module.net.weight for p in group["params"])]
    assert recurrent["lr"] == pytest.approx(0.1 * cfg.optimizer.lr)
    assert len(recurrent["params"]) == 1 and module.net.alpha == 0.5


def test_guide_dataset_yields_batches_of_its_declared_sizes(extension):
    cfg = compose(overrides_of(guide_command("data=recall", "trainer=debug", without="task=")))
    datamodule = instantiate(cfg.data)
    assert datamodule.input_size == cfg.data.num_classes and datamodule.task_kwargs == {"num_classes": 4}
    datamodule.setup("fit")
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.shape == (cfg.data.batch_size, cfg.data.seq_len, datamodule.input_size) and x.dtype == torch.float32
    assert y.shape == (cfg.data.batch_size,) and y.dtype == torch.int64
    assert torch.equal(x[:, 0].argmax(dim=1), y) and torch.equal(x[:, 0].sum(dim=1), torch.ones(len(y)))
    assert [len(datamodule.splits[split]) for split in ("train", "val", "test")] == [2000, 200, 200]
    first, again = datamodule.draw("val"), instantiate(cfg.data).draw("val")
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # the samples depend on data.seed only


@pytest.mark.e2e
def test_guide_dataset_trains_from_the_command_line(workspace, tmp_path):
    command = guide_command("data=recall", "trainer=debug", without="task=")
    record = train_as_guided(workspace, command, tmp_path / "run")
    assert math.isfinite(record["metrics"]["test/loss"]) and 0 <= record["metrics"]["test/acc"] <= 1


@pytest.mark.e2e
def test_guide_task_trains_logs_its_metrics_and_rebuilds_from_its_checkpoint(workspace, tmp_path, extension):
    run_dir = tmp_path / "run"
    record = train_as_guided(workspace, guide_command("task=pooled_classification"), run_dir)
    metrics = record["metrics"]
    assert record["test_metric"] == "test/acc" and 0 <= metrics["test/acc"] <= 1
    assert all(math.isfinite(metrics[name]) for name in ("train/loss_epoch", "val/loss", "val/acc_best", "test/loss"))
    with (run_dir / "csv" / "metrics.csv").open() as handle:
        assert {"train/loss_step", "train/acc", "val/acc", "val/acc_best", "test/acc"} <= set(next(csv.reader(handle)))
    model = load_model(run_dir / "checkpoints" / "last.ckpt")
    assert type(model).__name__ == "PooledClassifier" and model.chance == 1 / 4
    assert model(torch.zeros(2, 50, 4)).shape == (2, 4)


def test_guide_analysis_runs_registered_and_standalone_and_writes_its_files(extension, monkeypatch, capsys):
    (entry,) = [text for path, _, text in BLOCKS if path == REGISTRY]
    registered = ast.literal_eval("{" + entry + "}")
    for name, value in registered.items():
        monkeypatch.setitem(analysis_cli.ANALYSES, name, value)
    analysis_cli.main(["--help"])
    assert "state_norm" in capsys.readouterr().out

    registered_command, standalone_command = guide_command("arnn.analysis"), guide_command("arnn_ext.state_norm")
    assert registered_command[:4] == ["python", "-m", "arnn.analysis", "state_norm"]
    analysis_cli.main(registered_command[3:])
    assert standalone_command[:3] == ["python", "-m", "arnn_ext.state_norm"]
    monkeypatch.delitem(sys.modules, "arnn_ext.state_norm")  # as in a fresh process, where runpy imports it first
    monkeypatch.setattr(sys, "argv", ["state_norm", *standalone_command[3:]])
    runpy.run_module("arnn_ext.state_norm", run_name="__main__", alter_sys=True)

    folders = sorted((extension / "outputs" / "analysis" / "state_norm").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert (folder / "state_norm.png").stat().st_size > 0
        with (folder / "state_norm.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert {row["model"] for row in rows} == {"rnn", "arnn", "leaky_arnn"}
        assert len(rows) == 3 * 64 and all(math.isfinite(float(row["norm"])) for row in rows)  # digits: 64 steps
        last = {row["model"]: float(row["norm"]) for row in rows if row["t"] == "64"}
        assert last["leaky_arnn"] < last["arnn"]  # the guide: the leaky cell's decay keeps its state smaller
    assert "leaky_arnn: ‖y_t‖" in capsys.readouterr().out
