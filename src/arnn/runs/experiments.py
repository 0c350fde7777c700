"""The experiments under `experiment=`: the files in conf/experiment/ and the paper rows' columns.

A row file (conf/experiment/paper/rows/<family>_<model>.yaml) holds one model of a paper's table with its training
setting; its `experiments:` block names the table's columns and their own settings. Each column becomes
`paper/<column>/<model>` (the row, its column's settings, the column's data) and `paper/<column>/quick/<model>` (the
same on the CPU budget paper/budget/<quick>), registered in Hydra's ConfigStore, so that no file per cell repeats
the row. Rows and budgets are parts, not experiments.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

ROWS = Path("experiment/paper/rows")
BUDGETS = Path("experiment/paper/budget")


@dataclass(frozen=True)
class Experiment:
    name: str
    """What `experiment=` takes: `paper/pmnist/arnn`."""
    task_name: str
    """Its output folder and W&B group, and its name before the tree (`paper_pmnist_arnn`)."""
    summary: str


@dataclass(frozen=True)
class _RowExperiment:
    experiment: Experiment
    group: str
    node: dict[str, Any]


def _is_override(entry: object) -> bool:
    keys = [entry] if isinstance(entry, str) else list(entry) if isinstance(entry, dict) else []
    return any(str(key).startswith("override ") for key in keys)


def _override_choice(defaults: list[Any], group: str) -> str | None:
    """The choice an `override /<group>: <choice>` entry of `defaults` makes, if any."""
    for entry in defaults:
        if isinstance(entry, dict) and f"override /{group}" in entry:
            return str(entry[f"override /{group}"])
    return None


def _row_columns(path: Path) -> list[_RowExperiment]:
    """The full and quick experiment of each column of one row file."""
    row = OmegaConf.to_container(OmegaConf.load(path))
    spec, defaults = row.pop("experiments"), row.pop("defaults")
    model = path.stem.split("_", 1)[1]
    parts = [entry for entry in defaults if not _is_override(entry)]
    overrides = [entry for entry in defaults if _is_override(entry)]
    row_data = _override_choice(defaults, "data")
    experiments = []
    for column, settings in spec["columns"].items():
        body = OmegaConf.to_container(OmegaConf.merge(row, settings or {}))
        data = row_data or column
        number = body.get("paper", {}).get("test_acc", {}).get(data)
        units = body["model"]["hidden_size"]
        summary = f"model={_override_choice(defaults, 'model')}, {units} units; the paper's test accuracy {number}%"
        # the data override is the row's own (text) or the column's (smnist, pmnist, ...)
        data_override = [] if row_data else [{"override /data": column}]
        for quick in (False, True):
            name = f"paper/{column}/quick/{model}" if quick else f"paper/{column}/{model}"
            task_name = f"paper_{column}_{model}" + ("_quick" if quick else "")
            # the row's own values over its parts, the quick budget over both
            budget = [f"/{BUDGETS.as_posix()}/{spec['quick']}"] if quick else []
            node = {**body, "task_name": task_name, "defaults": [*parts, "_self_", *budget, *overrides, *data_override]}
            text = f"paper/{column}/{model} on the budget paper/budget/{spec['quick']}" if quick else summary
            experiments.append(_RowExperiment(Experiment(name, task_name, text), name.rpartition("/")[0], node))
    return experiments


def _summary(path: Path) -> str:
    """The first comment line after `# @package`."""
    comments = [line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")]
    return next((line for line in comments if not line.startswith("@package")), "")


def _experiment_files(conf_dir: Path) -> list[Experiment]:
    root = conf_dir / "experiment"
    parts = (conf_dir / ROWS, conf_dir / BUDGETS)
    return [
        Experiment(
            path.relative_to(root).with_suffix("").as_posix(),
            str(OmegaConf.load(path).get("task_name", "")),
            _summary(path),
        )
        for path in root.rglob("*.yaml")
        if not any(part in path.parents for part in parts)
    ]


@functools.cache
def register_rows(conf_dir: Path) -> None:
    """Store every row column's experiments in Hydra's ConfigStore, once per process and conf_dir."""
    store = ConfigStore.instance()
    for path in sorted((conf_dir / ROWS).glob("*.yaml")):
        for entry in _row_columns(path):
            name = entry.experiment.name.rpartition("/")[2]
            store.store(group=f"experiment/{entry.group}", name=name, node=entry.node, package="_global_")


def catalogue(conf_dir: Path) -> list[Experiment]:
    """Every experiment, sorted by name."""
    rows = [entry.experiment for path in (conf_dir / ROWS).glob("*.yaml") for entry in _row_columns(path)]
    return sorted([*rows, *_experiment_files(conf_dir)], key=lambda experiment: experiment.name)


def listing(conf_dir: Path) -> str:
    """`python train.py --list-experiments`: one line per experiment, its name and what it runs."""
    experiments = catalogue(conf_dir)
    width = max(len(experiment.name) for experiment in experiments)
    lines = [f"{experiment.name:<{width}}  {experiment.summary}" for experiment in experiments]
    return "\n".join([*lines, f"({len(experiments)} experiments; python train.py experiment=<name>)"])


def unknown_experiment(name: str, conf_dir: Path) -> str:
    """The one-line error for `experiment=<name>` that names no experiment: its new name if it had one before the
    tree, else the closest names."""
    experiments = catalogue(conf_dir)
    renamed = {experiment.task_name: experiment.name for experiment in experiments}
    if name in renamed:
        return f"experiment={name} is now experiment={renamed[name]}"
    close = difflib.get_close_matches(name, [experiment.name for experiment in experiments], n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown experiment {name!r}; {hint}python train.py --list-experiments lists all {len(experiments)}"
