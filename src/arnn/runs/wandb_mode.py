"""W&B set-up: online only when the user has configured W&B (so no account is ever needed) and its server answers
(else offline, with one warning line), one group per experiment or sweep, and the config logged flat so its keys
are the Hydra overrides that set them."""

import logging
import netrc
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hydra.types import RunMode
from lightning_fabric.loggers.logger import rank_zero_experiment
from omegaconf import OmegaConf
from pytorch_lightning.loggers import WandbLogger

from arnn.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.wandb.ai"


def wandb_configured() -> bool:
    """True when an API key is set in the environment or stored by `wandb login`, and W&B is not forced off."""
    if os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)).hostname
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


def unreachable(url: str, timeout: float) -> str | None:
    """Why a TCP connection to `url`'s host (or to the HTTPS proxy in the environment, which would carry it) cannot be
    opened within `timeout` seconds, or None when it can. Name lookup runs in a thread, since it has no timeout."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("ALL_PROXY")
    parsed = urlparse(proxy or url)
    address = (parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80))
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error.strerror or type(error).__name__)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer in {timeout:g} s"


class FallbackWandbLogger(WandbLogger):
    """WandbLogger that cannot hang a job on a machine without network: when online, its server must accept a
    connection and `wandb.init` must succeed within `init_timeout` seconds; otherwise the run logs offline (one
    warning line says so) and `make sync` uploads it later."""

    def __init__(self, *args: Any, init_timeout: float = 10.0, **kwargs: Any) -> None:
        if init_timeout <= 0:
            raise ConfigError(f"logger.wandb.init_timeout must be > 0 seconds, got {init_timeout}")
        settings = {"init_timeout": init_timeout, **kwargs.pop("settings", {})}
        super().__init__(*args, settings=settings, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            # Lightning passes anonymous=None, which W&B (seen with 0.31) warns about at every run: it has no effect
            del self._wandb_init["anonymous"]
        self.init_timeout = init_timeout

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None and not self._offline:
            url = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
            if reason := unreachable(url, self.init_timeout):
                self._go_offline(f"cannot connect to {url}: {reason}")
            else:
                import wandb

                wandb_log = logging.getLogger("wandb")
                wandb_log.addFilter(_without_comm_errors)  # the traceback it logs becomes our one line
                try:
                    return super().experiment
                except wandb.errors.CommError as error:
                    self._go_offline(str(error).splitlines()[0])
                finally:
                    wandb_log.removeFilter(_without_comm_errors)
        return super().experiment

    def _go_offline(self, reason: str) -> None:
        log.warning(
            "W&B is configured but %s; logging offline to %s (upload later with `make sync`)",
            reason,
            Path(self.save_dir or ".") / "wandb",
        )
        self._offline = True
        self._wandb_init["mode"] = "offline"  # W&B read WANDB_MODE once, at its first init


def _without_comm_errors(record: logging.LogRecord) -> bool:
    import wandb

    return not (record.exc_info and isinstance(record.exc_info[1], wandb.errors.CommError))
