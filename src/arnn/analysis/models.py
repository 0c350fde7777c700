"""Models and input batches for analyses: freshly initialised from config overrides, or from a checkpoint."""

from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from arnn.lit.base import TaskModule
from arnn.runs.build import build, compose
from arnn.runs.checkpoint import CONFIG_KEY, module_from_checkpoint, read_checkpoint
from arnn.runs.wandb_mode import register_resolver


def compose_config(overrides: list[str]) -> DictConfig:
    """conf/train.yaml composed with `overrides` as train.py would, without a logger or a run directory."""
    register_resolver()
    cfg = compose(["logger=none", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = "."
    return cfg


def fresh_model(cfg: DictConfig) -> tuple[TaskModule, pl.LightningDataModule]:
    """The task module at initialisation (seeded by cfg.seed) and its datamodule, sizes filled in."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    return module.eval(), datamodule


def trained_model(checkpoint: Path) -> tuple[TaskModule, pl.LightningDataModule]:
    """The checkpoint's task module (CPU, eval mode) and the datamodule of the run that wrote it."""
    stored = read_checkpoint(checkpoint)
    register_resolver()
    return module_from_checkpoint(stored), instantiate(OmegaConf.create(stored[CONFIG_KEY])["data"])


def input_batch(datamodule: pl.LightningDataModule, size: int, split: str = "val") -> tuple[Tensor, Tensor]:
    """The first `size` examples (inputs, targets) of a split, as the model sees them: (B, T, m) float sequences
    after the datamodule's on-device transform."""
    datamodule.prepare_data()
    datamodule.setup("fit" if split in ("train", "val") else "test")
    loader = getattr(datamodule, f"{split}_dataloader")()
    inputs, targets = [], []
    count = 0
    for x, y in loader:
        x, y = datamodule.on_after_batch_transfer((x, y), 0)
        inputs.append(x)
        targets.append(y)
        count += len(x)
        if count >= size:
            break
    return torch.cat(inputs)[:size], torch.cat(targets)[:size]
