"""From overrides to objects, the one path every entry point takes: `compose` the config, then `build` the data and
the task module around the configured network (the data's facts fed to model and task in one place)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from arnn.runs.experiments import register_rows

if TYPE_CHECKING:  # torch and Lightning load only when something is built, not for a command-line check
    import pytorch_lightning as pl

    from arnn.lit.base import TaskModule

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
"""The configs, inside the package: src/arnn/conf links to the top-level conf/, and a wheel carries a copy."""
CONFIG_NAME = "train"
HYDRA_VERSION_BASE = "1.3"


@contextmanager
def hydra_configs(conf_dir: Path = CONF_DIR) -> Iterator[ConfigLoader]:
    """Hydra set up on `conf_dir` for the block, giving its config loader (config groups and their options)."""
    GlobalHydra.instance().clear()
    register_rows(conf_dir)
    try:
        with hydra.initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=HYDRA_VERSION_BASE):
            yield GlobalHydra.instance().config_loader()
    finally:
        GlobalHydra.instance().clear()


def compose(
    overrides: Sequence[str] = (),
    *,
    config_name: str = CONFIG_NAME,
    hydra_config: bool = False,
    conf_dir: Path = CONF_DIR,
) -> DictConfig:
    """conf/<config_name>.yaml composed with `overrides` as `python train.py <overrides>` composes it (`hydra_config`:
    with Hydra's own `hydra` node). Inside a `hydra_configs` block it uses that block's setup."""
    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name, overrides=list(overrides), return_hydra_config=hydra_config)
    with hydra_configs(conf_dir):
        return hydra.compose(config_name, overrides=list(overrides), return_hydra_config=hydra_config)


def build_module(cfg: DictConfig) -> TaskModule:
    """The task's LightningModule around the configured network (cfg.model already holds input_size)."""
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return instantiate(cfg.task, net=instantiate(cfg.model), optimizer=instantiate(cfg.optimizer), scheduler=scheduler)


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, TaskModule]:
    """The datamodule and the task module of a composed config. The data's facts (input size; classes or
    vocabulary) are written into cfg.model and cfg.task first, so the config describes what was built."""
    datamodule = instantiate(cfg.data)
    with open_dict(cfg):
        cfg.model.input_size = datamodule.input_size
        cfg.task.update(datamodule.task_kwargs)
    return datamodule, build_module(cfg)
