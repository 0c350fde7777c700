"""Train a recurrent network from the command line: `python train.py model=arnn_gated data=pmnist`
(`python train.py --list-experiments` lists the experiments).

Configuration lives in conf/ (entry: conf/train.yaml); the work is done by `arnn.runs.train.train`. Mistakes end in
one line `error: ...` and a non-zero exit: the command line is checked before Hydra starts (`arnn.cli.precheck`),
the composed config before anything is built (`arnn.cli.schema`).
"""

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from arnn.cli.precheck import command_line_error
from arnn.cli.resume import resume_arguments
from arnn.errors import DivergedError, UserError, find_user_error
from arnn.runs.build import CONF_DIR, CONFIG_NAME, HYDRA_VERSION_BASE
from arnn.runs.experiments import listing, register_rows


def log_to_file(message: str) -> None:
    """`message` into the job's log file only (stderr gets it from sys.exit), so a failed job's log says why."""
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def existing_run_dir(arguments: list[str]) -> Path | None:
    """The `hydra.run.dir` given on the command line when it exists already (an earlier run, or resume=true)."""
    given = [argument.partition("=")[2] for argument in arguments if argument.startswith("hydra.run.dir=")]
    return Path(given[-1]).absolute() if given and Path(given[-1]).exists() else None


EARLIER_RUN_DIR: Path | None = None
"""Set before Hydra starts: a run directory that held files before this command, which a config error keeps."""


def only_hydra_files(run_dir: Path) -> bool:
    """Whether `run_dir` holds only what Hydra wrote for this job (`.hydra/` and the job's log) and did not exist
    before the command: then a config error may remove it."""
    if run_dir.absolute() == EARLIER_RUN_DIR or not run_dir.is_dir():
        return False
    return all(path.name == ".hydra" or path.suffix == ".log" for path in run_dir.iterdir())


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=str(CONF_DIR), config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> float | None:
    """Run one job and return the metric a sweeper optimises; user mistakes end in one line (also written to the
    job's log) and exit 1, except a diverged job of a sweep, which is reported and scored NaN so the other settings
    still run. A config error of a single run removes the run directory Hydra made for it."""
    # Imported here so that a mistake on the command line is reported before torch loads (seconds).
    from arnn.runs.train import train

    try:
        metrics = train(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        message = f"error: {user_error}"
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        diverged = isinstance(user_error, DivergedError)
        log_to_file(message)
        if multirun and diverged:
            print(f"{message}; the sweep goes on", file=sys.stderr)
            return float("nan")
        if not (multirun or diverged) and only_hydra_files(Path(cfg.paths.output_dir)):
            logging.shutdown()  # closes the log file inside the directory
            shutil.rmtree(cfg.paths.output_dir, ignore_errors=True)
        sys.exit(message)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    if sys.argv[1:] == ["--list-experiments"]:
        sys.exit(print(listing(CONF_DIR)))
    if message := command_line_error(sys.argv[1:], CONF_DIR, CONFIG_NAME):
        sys.exit(f"error: {message}")
    try:
        sys.argv[1:] = resume_arguments(sys.argv[1:], CONF_DIR)
    except UserError as error:
        sys.exit(f"error: {error}")
    EARLIER_RUN_DIR = existing_run_dir(sys.argv[1:])
    register_rows(CONF_DIR)  # the paper/<column>/<model> experiments, before Hydra composes
    main()
