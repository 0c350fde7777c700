"""W&B set-up: online only when the user has configured W&B (so no account is ever needed), one group per
experiment or sweep, and the config logged flat so its keys are the Hydra overrides that set them."""

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.types import RunMode
from omegaconf import OmegaConf


def wandb_configured() -> bool:
    """True when an API key is set in the environment or stored by `wandb login`, and W&B is not forced off."""
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def run_group(task_name: str, mode: RunMode | None, sweep_dir: str) -> str:
    """The W&B group of a run: its experiment (`task_name`); the jobs of one multirun share
    `<task_name>/<sweep dir name>`, so each sweep is a group of its own."""
    if mode == RunMode.MULTIRUN:
        return f"{task_name}/{Path(sweep_dir).name}"
    return task_name


def run_tags(*choices: str | None) -> list[str]:
    """W&B tags from config-group choices, leaving out groups where nothing is chosen (e.g. no experiment)."""
    return [str(choice) for choice in choices if choice is not None]


def flat_hyperparameters(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"gamma": 0.01}} → {"model.gamma": 0.01}: one dotted key per leaf, the name a Hydra override and
    a W&B sweep parameter give it. Lists and empty mappings are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flat_hyperparameters(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def register_resolver() -> None:
    """Config resolvers: `${wandb_offline:}` is the opposite of `wandb_configured()`; `${wandb_group:...}` is
    `run_group`, `${run_tags:...}` is `run_tags`."""
    resolvers = {
        "wandb_offline": lambda: not wandb_configured(),
        "wandb_group": run_group,
        "run_tags": run_tags,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
