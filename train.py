"""Train a recurrent network from the command line: `python train.py model=arnn_gated data=pmnist`.

Configuration lives in conf/ (entry: conf/train.yaml); the work is done by `arnn.train.train`. Mistakes end in
one line `error: ...` and a non-zero exit: the command line is checked before Hydra starts (`arnn.precheck`),
the composed config before anything is built (`arnn.schema`).
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from arnn.errors import DivergedError, UserError, find_user_error
from arnn.precheck import HYDRA_VERSION_BASE, command_line_error
from arnn.resume import resume_arguments

CONF_DIR = Path(__file__).parent / "conf"
CONFIG_NAME = "train"


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path="conf", config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> float | None:
    """Run one job and return the metric a sweeper optimises; user mistakes end in one line and exit 1, except a
    diverged job of a sweep, which is reported and scored NaN so the other settings still run."""
    # Imported here so that a mistake on the command line is reported before torch loads (seconds).
    from arnn.train import train

    try:
        metrics = train(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        if isinstance(user_error, DivergedError) and HydraConfig.get().mode == RunMode.MULTIRUN:
            print(f"error: {user_error}; the sweep goes on", file=sys.stderr)
            return float("nan")
        sys.exit(f"error: {user_error}")
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    if message := command_line_error(sys.argv[1:], CONF_DIR, CONFIG_NAME):
        sys.exit(f"error: {message}")
    try:
        sys.argv[1:] = resume_arguments(sys.argv[1:], CONF_DIR)
    except UserError as error:
        sys.exit(f"error: {error}")
    main()
