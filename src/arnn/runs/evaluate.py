"""A saved checkpoint's metrics on its run's data, or on other data: `python eval.py ckpt_path=<file> [split=val|test]
[data=<name>] [data.<key>=<value> ...]`.

The checkpoint carries its run's resolved config, so the model and, unless `data=` names another dataset, its data
are rebuilt from the file alone; `data.<key>=<value>` changes the data config (e.g. `data.data_dir` on another
machine). Lightning's validate or test loop computes the task's metrics; they are printed and written to
`<checkpoint>.<split>.json` beside the file.
"""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.override_parser.types import Override
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arnn.cli.key_values import REQUIRED, parse_key_values
from arnn.errors import UserError
from arnn.runs.build import compose
from arnn.runs.checkpoint import CONFIG_KEY, module_from_checkpoint, read_checkpoint
from arnn.runs.quiet import quiet_third_party

SPLITS = ("val", "test")
USAGE = "eval.py ckpt_path=<file> [split=val|test] [data=<name>] [data.<key>=<value> ...]"


def _arguments(arguments: list[str]) -> tuple[Path, str, list[Override]]:
    """The checkpoint, the split and the data overrides of the command line."""
    values, data = parse_key_values(arguments, {"ckpt_path": REQUIRED, "split": "test"}, USAGE)
    if values["split"] not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {values['split']!r}")
    return Path(str(values["ckpt_path"])), str(values["split"]), data


def data_config(stored: DictConfig, overrides: list[Override]) -> DictConfig:
    """The run's own data config with `data.<key>=<value>` applied, or the config `data=<name>` composes."""
    if any(override.key_or_group == "data" for override in overrides):
        return compose([override.input_line for override in overrides]).data
    data = stored.data
    for override in overrides:
        OmegaConf.update(data, override.key_or_group.removeprefix("data."), override.value(), force_add=True)
    return data


def evaluate(arguments: list[str]) -> dict[str, Any]:
    """Run the evaluation the command line asks for; returns what the JSON file holds."""
    path, split, overrides = _arguments(arguments)
    checkpoint = read_checkpoint(path)
    stored = OmegaConf.create(checkpoint[CONFIG_KEY])
    data = data_config(stored, overrides)
    module = module_from_checkpoint(checkpoint)
    datamodule = instantiate(data)
    trained_on = stored.model.get("input_size")
    if trained_on is not None and datamodule.input_size != trained_on:
        raise UserError(
            f"data {data._target_.rsplit('.', 1)[-1]} gives {datamodule.input_size} inputs per step but the model in "
            f"{path} was trained on {trained_on}; evaluate it on data of its kind (its own: leave out data=)"
        )
    quiet_third_party()
    trainer = pl.Trainer(
        accelerator="auto", devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False
    )
    run = trainer.validate if split == "val" else trainer.test
    (metrics,) = run(module, datamodule=datamodule, verbose=False)
    result = {
        "checkpoint": str(path),
        "split": split,
        "data": OmegaConf.to_container(data),
        "metrics": {name: float(value) for name, value in metrics.items()},
        "date": datetime.now().isoformat(timespec="seconds"),
    }
    output = path.with_name(f"{path.name}.{split}.json")
    output.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in sorted(result["metrics"].items()):
        print(f"{name} {value:.4f}")
    print(f"wrote {output}")
    return result
