"""`resume=true`: run the same command again and the run continues in its earlier directory from `last.ckpt`, ending
with the metrics an uninterrupted run would have had."""

import logging
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from arnn.errors import UserError
from arnn.runs.build import compose
from arnn.runs.checkpoint import LAST_CHECKPOINT

log = logging.getLogger(__name__)

MULTIRUN_FLAGS = ("-m", "--multirun")


def _is_resume(argument: str) -> bool:
    return argument.partition("=")[0].lstrip("+~") == "resume"


def _asks_to_resume(arguments: list[str]) -> bool:
    """Whether `resume=true` (any spelling Hydra reads as true) is among the overrides."""
    parser = OverridesParser.create()
    return any(_is_resume(a) and parser.parse_override(a).value() is True for a in arguments if not a.startswith("-"))


def _run_overrides(arguments: list[str]) -> list[str]:
    """The overrides that define a run, in a comparable form: flags and `resume=` left out, sorted."""
    return sorted(a for a in arguments if not a.startswith("-") and not _is_resume(a))


def _runs_root(arguments: list[str], conf_dir: Path) -> Path:
    """`<paths.log_dir>/<task_name>` of the composed config, where Hydra puts this command's run directories."""
    parser = OverridesParser.create()
    # hydra.searchpath stays: config groups from a folder of the user's own (docs/extending.md) need it to compose
    plain = [
        a
        for a in arguments
        if not a.startswith("-")
        and (not a.startswith("hydra") or a.startswith("hydra.searchpath="))
        and not parser.parse_override(a).is_sweep_override()
    ]
    cfg = compose(plain, conf_dir=conf_dir)
    return Path(cfg.paths.log_dir) / str(cfg.task_name)


def _latest_single_run(root: Path, overrides: list[str]) -> Path | None:
    runs = [
        path.parents[1]
        for path in (root / "runs").glob("*/.hydra/overrides.yaml")
        if _run_overrides(list(OmegaConf.load(path))) == overrides and (path.parents[1] / LAST_CHECKPOINT).exists()
    ]
    return max(runs, key=lambda run: (run / LAST_CHECKPOINT).stat().st_mtime, default=None)


def _latest_sweep(root: Path, overrides: list[str]) -> Path | None:
    sweeps = [
        path.parent
        for path in (root / "multiruns").glob("*/multirun.yaml")
        if _run_overrides(list(OmegaConf.load(path).hydra.overrides.task)) == overrides
    ]
    return max(sweeps, key=lambda sweep: sweep.stat().st_mtime, default=None)


def resume_arguments(arguments: list[str], conf_dir: Path) -> list[str]:
    """With `resume=true` among `arguments`, add `hydra.run.dir` (or `hydra.sweep.dir` for `-m`) pointing at the
    newest earlier run of the same overrides, so Hydra reuses that directory. Unchanged without `resume=true` or when
    the directory is already given."""
    if not _asks_to_resume(arguments):
        return arguments
    multirun = any(a in MULTIRUN_FLAGS for a in arguments)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if any(a.startswith(f"{key}=") for a in arguments):
        return arguments
    root = _runs_root(arguments, conf_dir)
    overrides = _run_overrides(arguments)
    earlier = _latest_sweep(root, overrides) if multirun else _latest_single_run(root, overrides)
    if earlier is None:
        kind = "multirun" if multirun else f"run with {LAST_CHECKPOINT}"
        raise UserError(
            f"nothing to resume: no earlier {kind} of these overrides under {root}; "
            "run without resume=true, or give the run's directory with " + key + "=<dir>"
        )
    log.info("resuming %s", earlier)
    return [*arguments, f"{key}={earlier}"]
