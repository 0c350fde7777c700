"""Checkpoints that carry their run's resolved config, so a model can be rebuilt from the file alone."""

import pickle
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arnn.errors import UserError

CONFIG_KEY = "arnn_config"


def build_module(cfg: DictConfig) -> pl.LightningModule:
    """The task's LightningModule around the configured encoder (cfg.model already holds input_size)."""
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return instantiate(cfg.task, net=instantiate(cfg.model), optimizer=instantiate(cfg.optimizer), scheduler=scheduler)


class ConfigInCheckpoint(pl.Callback):
    """Writes the resolved run config into every checkpoint under `arnn_config`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path` (weights-only loading, CPU), checked to carry its run config."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = "not a checkpoint, or it holds objects that weights-only loading refuses"
        raise UserError(f"cannot read checkpoint {path}: {reason}; pass a .ckpt file written by arnn") from error
    except (OSError, RuntimeError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason}; pass a .ckpt file written by arnn") from error
    if CONFIG_KEY not in checkpoint:
        raise UserError(f"checkpoint {path} has no {CONFIG_KEY}; it was not written by arnn's train")
    return checkpoint


def module_from_checkpoint(checkpoint: dict[str, Any]) -> pl.LightningModule:
    """The trained LightningModule of a checkpoint read by `read_checkpoint`, in eval mode."""
    module = build_module(OmegaConf.create(checkpoint[CONFIG_KEY]))
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def load_model(path: str | Path) -> pl.LightningModule:
    """Rebuild the trained LightningModule stored at `path` (weights-only loading, CPU)."""
    return module_from_checkpoint(read_checkpoint(path))
