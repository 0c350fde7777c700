"""Checks of the command line before Hydra starts a job, each failure one line naming the fix.

The overrides are composed with Hydra's compose API exactly as `hydra.main` will compose them, so Hydra's own
errors (override syntax, an unknown config-group choice, a key that is not in the config) become one line here,
before anything is written, instead of Hydra's several lines. With --multirun the sweep overrides are left out of
that composition, as Hydra does, and their keys and choices are checked one by one (a key that only the choices of
a swept group have needs ++). Last, the run (or sweep) directory must be creatable.
"""

import difflib
import os
import tempfile
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

from hydra._internal.utils import get_args_parser  # the parser hydra.main reads the command line with
from hydra.core.config_loader import ConfigLoader
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from arnn.runs.build import compose, hydra_configs
from arnn.runs.experiments import unknown_experiment

_CHOICE_SWEEPS = (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP)
_ABSENT = object()


def command_line_error(arguments: list[str], conf_dir: Path, config_name: str) -> str | None:
    """The first mistake in `python train.py <arguments>` as a one-line message with its fix, or None."""
    args = get_args_parser().parse_args(arguments)
    if args.config_path or args.config_dir:
        return None  # configs from elsewhere: Hydra reports their errors itself
    if args.multirun and (args.cfg or args.info):
        flag = f"--cfg {args.cfg}" if args.cfg else "--info"
        return f"-m cannot be combined with {flag}; drop -m to show one job's config (sweep values: give one of each)"
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as error:
        return _syntax_error(error)
    sweeps = [override for override in overrides if args.multirun and override.is_sweep_override()]
    with hydra_configs(conf_dir) as loader:
        job_overrides = [override.input_line for override in overrides if override not in sweeps]
        swept_groups = [o.key_or_group for o in sweeps if loader.get_group_options(o.key_or_group, results_filter=None)]
        try:
            cfg = compose(job_overrides, config_name=args.config_name or config_name, hydra_config=True)
        except MissingConfigException as error:
            return _missing_config(error, loader, conf_dir)
        except ConfigCompositionException as error:
            unknown = _unknown_override(error, overrides)
            if swept_groups and unknown is not None:
                # Hydra composes the sweep's base config without the swept groups, so a key that only their
                # choices have (e.g. data.data_dir of the experiments' data) needs ++ (add, or set where present)
                return (
                    f"{unknown.key_or_group} is not in the config that a sweep over {', '.join(swept_groups)} "
                    f"starts from; write ++{unknown.input_line} to set it in every job"
                )
            return _composition_error(error, overrides)
        if message := _sweep_error(sweeps, cfg, loader, conf_dir):
            return message
    if not _runs_jobs(args):
        return None
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} in the directory's interpolation
    # With a swept group the base config is no job's config: each job checks its own values when it starts.
    return _output_dir_error(cfg, args.multirun) or (None if swept_groups else _value_error(cfg, args.multirun))


def _syntax_error(error: OverrideParseException) -> str:
    # Hydra's message: "Error parsing override '<text>'", ANTLR's reason, then a link; the reason lists every
    # token the grammar would have accepted, which says little to a user.
    lines = error.message.splitlines()
    reason = lines[1].split(" expecting ")[0] if len(lines) > 1 else "invalid syntax"
    return (
        f"cannot parse override {error.override!r} ({reason}); write key=value, e.g. model.eps=0.1 (quoting values "
        f"with special characters: https://hydra.cc/docs/advanced/override_grammar/basic/)"
    )


def _missing_config(error: MissingConfigException, loader: ConfigLoader, conf_dir: Path) -> str:
    """An unknown choice of a config group (`model=nope`, `callbacks=[default,nope]`, `hydra/launcher=nope`); an
    experiment is named by its path in the tree (`experiment=paper/pmnist/arnn`)."""
    missing = error.missing_cfg_file or ""
    if missing.startswith("experiment/"):
        return unknown_experiment(missing.removeprefix("experiment/"), conf_dir)
    group, _, name = missing.rpartition("/")
    options = loader.get_group_options(group) if group else []
    if not options:
        return _first_paragraph(error)
    return f"unknown {group} {name!r}; choose one of: {', '.join(options)}"


def _unknown_override(error: ConfigCompositionException, overrides: list[Override]) -> Override | None:
    """The override whose key is not in the config, when that is why composition failed."""
    cause = error.__cause__
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and isinstance(cause.parent_node, DictConfig):
        return next((o for o in overrides if o.key_or_group == cause.full_key), None)
    return None


def _composition_error(error: ConfigCompositionException, overrides: list[Override]) -> str:
    if (override := _unknown_override(error, overrides)) is not None:
        return _unknown_key(override, error.__cause__.parent_node)
    return _first_paragraph(error)


def _first_paragraph(error: Exception) -> str:
    return "; ".join(line.strip() for line in str(error).split("\n\n")[0].splitlines() if line.strip())


def _unknown_key(override: Override, parent: DictConfig | None) -> str:
    """`model.hiden_size=3`: the key is not in the config; name the closest key and how to add a new one."""
    key = override.key_or_group
    parent_path, _, name = key.rpartition(".")
    known = [str(sibling) for sibling in parent.keys()] if isinstance(parent, DictConfig) else []
    closest = difflib.get_close_matches(name, known, n=1)
    if not closest:
        return f"{key} is not in the config; to add a new key, write +{override.input_line}"
    suggestion = ".".join(filter(None, (parent_path, closest[0])))
    return f"{key} is not in the config; did you mean {suggestion}? (to add a new key: +{override.input_line})"


def _sweep_error(sweeps: list[Override], cfg: DictConfig, loader: ConfigLoader, conf_dir: Path) -> str | None:
    """Sweep overrides (`-m model=arnn,nope`, `-m model.hiden_size=1,2`): each choice must exist, each key too."""
    for override in sweeps:
        key = override.key_or_group
        if key in cfg.hydra.runtime.choices:
            if override.value_type not in _CHOICE_SWEEPS:
                continue
            for value in _choices(override):
                group, _, name = f"{key}/{value}".rpartition("/")
                if name in (options := loader.get_group_options(group)):
                    continue
                if key == "experiment":
                    return unknown_experiment(value, conf_dir)
                return f"unknown {group} {name!r}; choose one of: {', '.join(options)}"
        elif not (override.is_add() or override.is_force_add() or override.is_delete()):
            if OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False) is _ABSENT:
                parent_path = key.rpartition(".")[0]
                return _unknown_key(override, OmegaConf.select(cfg, parent_path) if parent_path else cfg)
    return None


def _choices(override: Override) -> Iterator[str]:
    """The choices of a sweep, a list choice (`callbacks=[default,x]`) giving each of its elements."""
    for value in override.sweep_iterator():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                yield str(item)


def _runs_jobs(args: Namespace) -> bool:
    """False for the flags that only print (help, the config, info): they write no run directory."""
    return not (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion)


def _value_error(cfg: DictConfig, multirun: bool) -> str | None:
    """The job's config checked by `arnn.cli.schema` (types, ranges) here, so that a bad value writes no run directory;
    the values of a sweep are checked in each job."""
    from arnn.cli.schema import validate
    from arnn.errors import ConfigError
    from arnn.runs.wandb_mode import register_resolver

    register_resolver()
    job = cfg.copy()
    with read_write(job), open_dict(job):
        # where Hydra will put the job (a sweep's jobs go below this), then the job's own keys alone
        job.paths.output_dir = OmegaConf.select(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir")
        del job["hydra"]
    try:
        validate(job)
    except ConfigError as error:
        return str(error)
    return None


def _unwritable(folder: Path) -> str | None:
    """Why no folder can be created in `folder` (tried, since permissions do not tell for /proc or /sys), or None."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".arnn-write-check-"))
    except OSError as error:
        return f"{folder} is not writable ({error.strerror})"
    return None


def _output_dir_error(cfg: DictConfig, multirun: bool) -> str | None:
    """Hydra creates the run (or sweep) directory with its parents: the closest existing one must be a
    writable folder."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    directory = Path(OmegaConf.select(cfg, key)).absolute()
    existing = next(path for path in (directory, *directory.parents) if path.exists())
    reason = f"{existing} is a file" if not existing.is_dir() else _unwritable(existing)
    if reason is None:
        return None
    return (
        f"cannot create the output directory {directory}: {reason}; set {key} (or paths.log_dir) to a writable folder"
    )
