"""Where the project is, and runs started as a user starts them: composed configs and `python train.py`."""

import os
import subprocess
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from arnn.runs.build import CONF_DIR, compose
from arnn.runs.experiments import catalogue

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = [experiment.name for experiment in catalogue(CONF_DIR)]
"""Every `experiment=` name: the files under conf/experiment/ and the paper rows' registered columns."""
FAST = ["trainer=debug", "logger=csv", "callbacks.rich_progress_bar=null"]


def compose_run_cfg(output_dir: Path, overrides: list[str]) -> DictConfig:
    """conf/train.yaml composed with `overrides` as the job receives it, writing into output_dir."""
    GlobalHydra.instance().clear()
    cfg = compose(overrides, hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg


def run_cli(*arguments: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python train.py ...` as a user would; W&B is kept offline and away from the user's settings."""
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
