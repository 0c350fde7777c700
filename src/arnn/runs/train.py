"""train(cfg): instantiate data, network, task and trainer from the Hydra config, fit, then test the best
validation checkpoint."""

import json
import logging
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from arnn.callbacks.config_in_checkpoint import ConfigInCheckpoint
from arnn.callbacks.learning_check import LearningCheck
from arnn.callbacks.nan_guard import NonFiniteGuard, TrainingDiverged, likely_causes
from arnn.callbacks.parameter_summary import ParameterSummary
from arnn.callbacks.reseed import ReseedEachEpoch
from arnn.cli.schema import validate
from arnn.errors import ConfigError, DivergedError
from arnn.provenance import code_version, cpu_name
from arnn.runs.build import build
from arnn.runs.checkpoint import LAST_CHECKPOINT, check_fits, remove_stale_temporaries
from arnn.runs.ddp import check_rank_launch
from arnn.runs.quiet import quiet_third_party
from arnn.runs.wandb_mode import flat_hyperparameters, register_resolver

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
"""Written into the run's output dir after testing: all logged metrics of the best-validation checkpoint."""


def instantiate_entries(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry of a group (callbacks, loggers) that has a `_target_`; nulled entries vanish."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def _finish(loggers: list[Logger]) -> None:
    """End this job's W&B run, so the next job of a multirun starts its own."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


def write_metrics(
    path: Path,
    metrics: dict[str, float],
    test_metric: str,
    best_checkpoint: str,
    warnings: list[str],
    run: dict[str, Any],
) -> None:
    """The run's final numbers as JSON, for `python -m arnn.report` to read back; `warnings` say when the run
    learned nothing (`LearningCheck`), `run` how it ran (`run_facts`)."""
    record = {
        "metrics": metrics,
        "test_metric": test_metric,
        "best_checkpoint": best_checkpoint or None,
        "warnings": warnings,
        "run": run,
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def run_facts(trainer: pl.Trainer, callbacks: list[Any], best_checkpoint: str) -> dict[str, Any]:
    """How the run went and where: epochs trained, the best checkpoint's epoch, fitting wall time over all resumes
    (Lightning's Timer, when configured), torch threads, CPU or GPU, the code's commit, the date."""
    timers = [callback for callback in callbacks if isinstance(callback, Timer)]
    fit_time = timers[0].time_elapsed("train") if timers else None
    best_epoch = (
        torch.load(best_checkpoint, map_location="cpu", weights_only=True)["epoch"] if best_checkpoint else None
    )
    return {
        "epochs": trainer.current_epoch,
        "best_epoch": best_epoch,
        "fit_time_s": fit_time,
        "s_per_epoch": fit_time / trainer.current_epoch if fit_time and trainer.current_epoch else None,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if trainer.strategy.root_device.type == "cuda" else cpu_name(),
        "commit": code_version(),
        "date": datetime.now().strftime("%Y-%m-%d"),
    }


def start_checkpoint(cfg: DictConfig) -> str | None:
    """Where fitting starts from: `ckpt_path`, or with `resume=true` the run directory's last checkpoint (None when
    the run never saved one, e.g. a multirun job that had not started)."""
    if not cfg.get("resume"):
        return cfg.get("ckpt_path")
    if cfg.get("ckpt_path"):
        raise ConfigError("give either ckpt_path=<file> or resume=true, not both")
    last = Path(cfg.paths.output_dir) / LAST_CHECKPOINT
    if last.exists():
        log.info("Resuming from %s", last)
        return str(last)
    log.warning("resume=true but %s does not exist: training from the start", last)
    return None


def check_accelerator(trainer: DictConfig) -> None:
    """ConfigError when the trainer names GPUs this machine does not have (Lightning's own error names no fix)."""
    if trainer.get("accelerator") not in ("gpu", "cuda", "mps"):
        return
    if torch.cuda.is_available() or (trainer.accelerator != "cuda" and torch.backends.mps.is_available()):
        return
    ddp = " (trainer=ddp_cpu runs DDP on CPU processes)" if "ddp" in str(trainer.get("strategy")) else ""
    raise ConfigError(
        f"trainer.accelerator={trainer.accelerator} but this machine has no GPU that torch can use; run on a GPU node, "
        f"or set trainer.accelerator=cpu{ddp}"
    )


def check_epochs_left(checkpoint: dict[str, Any], path: str, cfg: DictConfig) -> None:
    """ConfigError when the checkpoint has already trained `trainer.max_epochs` epochs (a resumed run may be exactly
    there: killed while testing), since fitting would do nothing."""
    done, max_epochs = checkpoint.get("epoch", -1) + 1, cfg.trainer.get("max_epochs")
    if max_epochs is None or done < max_epochs or (done == max_epochs and cfg.get("resume")):
        return
    raise ConfigError(
        f"checkpoint {path} has already trained {done} epochs and trainer.max_epochs={max_epochs}: nothing is left "
        f"to train; set trainer.max_epochs above {done}"
    )


def checkpoint_path(trainer: pl.Trainer, monitored: bool) -> str:
    """The best-validation checkpoint (`monitored`) or the latest epoch's, as saved so far; "" when none."""
    for callback in trainer.checkpoint_callbacks:
        if (callback.monitor is not None) == monitored and callback.best_model_path:
            return callback.best_model_path
    return ""


def diverged(error: TrainingDiverged, cfg: DictConfig, trainer: pl.Trainer) -> DivergedError:
    """One line for a run stopped by the NaN guard: the step, the loss, the likely cause, the checkpoint kept."""
    last = checkpoint_path(trainer, monitored=False)
    kept = f"last good checkpoint kept: {last}" if last else "no checkpoint was saved before it"
    cause = error.cause or likely_causes(cfg, first_step=error.step == 0)
    return DivergedError(f"training diverged: {error}; likely cause: {cause}; {kept}")


def anomaly(error: RuntimeError, trainer: pl.Trainer, module: pl.LightningModule) -> TrainingDiverged | None:
    """autograd's anomaly detection (`trainer.detect_anomaly`) stops at a NaN in backward before the NaN guard runs:
    the guard's error for that step, naming the function, or None for any other RuntimeError."""
    message = str(error).splitlines()[0] if str(error) else ""
    guard = next((callback for callback in trainer.callbacks if isinstance(callback, NonFiniteGuard)), None)
    if "returned nan values" not in message or guard is None:
        return None
    return guard.diverged(trainer, module, where=f"gradient not finite (anomaly detection: {message.rstrip('.')})")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured model, test its best-validation checkpoint, and return all logged metrics."""
    register_resolver()
    validate(cfg)
    finished = Path(cfg.paths.output_dir) / METRICS_FILE
    if cfg.get("resume") and finished.exists():
        log.info("%s already finished (%s); nothing to resume", cfg.paths.output_dir, METRICS_FILE)
        return json.loads(finished.read_text())["metrics"]
    quiet_third_party()
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    ckpt_path = start_checkpoint(cfg)
    if ckpt_path:
        check_epochs_left(check_fits(ckpt_path, module), ckpt_path, cfg)
    datamodule.prepare_data()

    config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [*instantiate_entries(cfg.get("callbacks")), ConfigInCheckpoint(config), ReseedEachEpoch(cfg.seed)]
    if cfg.trainer.get("enable_model_summary") is not False:
        callbacks.append(ParameterSummary())
    loggers = instantiate_entries(cfg.get("logger"))
    check_accelerator(cfg.trainer)
    try:
        # the summary is ours (no FLOPs column), so Lightning is told not to add its own
        trainer: pl.Trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_model_summary=False
        )
    except Exception as error:
        if not isinstance(error.__cause__, MisconfigurationException):
            raise
        raise ConfigError(f"trainer: {error.__cause__}; check the trainer group (e.g. trainer=default)") from error
    check_rank_launch(trainer)
    if trainer.is_global_zero:
        for path in remove_stale_temporaries(Path(cfg.paths.output_dir) / LAST_CHECKPOINT.parent):
            log.info("Removed %s, left by a checkpoint write that was killed", path)
    for logger in loggers:
        logger.log_hyperparams(flat_hyperparameters(config))

    # anomaly detection's forward traceback of a NaN: the error line below names the function instead
    warnings.filterwarnings("ignore", message="Error detected in .*Traceback of forward call", category=UserWarning)
    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except TrainingDiverged as error:
            raise diverged(error, cfg, trainer) from error
        except RuntimeError as error:
            if (nan := anomaly(error, trainer, module)) is None:
                raise
            raise diverged(nan, cfg, trainer) from error
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        best = checkpoint_path(trainer, monitored=True)
        # before testing: loading the best checkpoint for the test restores the Timer's elapsed time from it
        facts = run_facts(trainer, callbacks, best)
        if not best:
            log.warning("No best-validation checkpoint was saved; testing the final weights instead.")
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics |= {name: float(value) for name, value in trainer.callback_metrics.items()}
    finally:
        _finish(loggers)

    if trainer.is_global_zero:
        test_metric = cfg.monitor.metric.replace("val/", "test/", 1)
        checks = [callback for callback in callbacks if isinstance(callback, LearningCheck)]
        run_warnings = [message for check in checks for message in check.warnings]
        write_metrics(Path(cfg.paths.output_dir) / METRICS_FILE, metrics, test_metric, best, run_warnings, facts)
        log.info(
            "%s %.4f on the best-validation checkpoint %s (%s %.4f)",
            test_metric,
            metrics.get(test_metric, float("nan")),
            best or "(final weights)",
            cfg.optimized_metric,
            metrics.get(cfg.optimized_metric, float("nan")),
        )
    return metrics
