"""Train a recurrent network from the command line: `python train.py model=arnn_gated data=pmnist`.

Configuration lives in conf/ (entry: conf/train.yaml); the work is done by `arnn.train.train`.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from arnn.choices import unknown_choice
from arnn.errors import find_user_error
from arnn.train import train

CONF_DIR = Path(__file__).parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job and return the metric a sweeper optimises; user mistakes end in one line and exit 2."""
    try:
        metrics = train(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        sys.exit(f"error: {user_error}")
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    if message := unknown_choice(sys.argv[1:], CONF_DIR):
        sys.exit(f"error: {message}")
    main()
