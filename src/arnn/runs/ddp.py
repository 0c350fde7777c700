"""DDP inside Hydra: which ways of starting the ranks are safe in a multirun."""

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

# Lightning exports it from `strategies.launchers` under a private name; it is the launcher that re-runs the script.
from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

from arnn.errors import ConfigError


def check_rank_launch(trainer: pl.Trainer) -> None:
    """Raise ConfigError when this trainer would start DDP ranks by re-running the command line of a multirun.

    Lightning starts the extra ranks of a local DDP run as `python train.py <the same arguments>`. In a multirun
    those arguments hold the whole sweep, so every rank would run the sweep again, into the same job directories.
    Ranks started by the cluster (SLURM's srun, torchrun) are safe, and so is a single process.
    """
    launcher = trainer.strategy.launcher
    relaunches = (
        isinstance(launcher, _SubprocessScriptLauncher)
        and not launcher.cluster_environment.creates_processes_externally
        and launcher.num_processes > 1
    )
    if relaunches and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(
            f"trainer.devices={launcher.num_processes} with DDP in a local multirun: Lightning starts each extra rank "
            "by re-running the command line, which would start the sweep again; run the jobs one at a time, or sweep "
            "on SLURM (hydra/launcher=slurm), where srun starts the ranks"
        )
