"""Type check of a composed run config, before anything is built or written.

Every node with a `_target_` is checked against the target's signature: each key must name a parameter (followed
up a class's `**kwargs` to the base classes that receive them) and its value must fit the parameter's type hint,
as Hydra will pass it. The top-level keys that no target receives are checked against `RunSettings`. So
`model.hidden_size=abc` ends in "model.hidden_size must be int, got 'abc'" instead of a traceback from inside
the model. Hints are checked by pydantic in strict mode (no conversion: instantiate passes values as they are;
an int passes for a float); a hint pydantic cannot check accepts anything.
"""

import inspect
import math
import pydoc
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from typing import Any, Literal

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, UnsupportedInterpolationType
from pydantic import ConfigDict, TypeAdapter, ValidationError

from arnn.errors import ConfigError


@dataclass(frozen=True)
class Monitor:
    """The metric that selects checkpoints and stops early, and whether higher or lower is better."""

    metric: str
    mode: Literal["min", "max"]


@dataclass(frozen=True)
class Paths:
    """conf/paths: where datasets are read and runs are written."""

    data_dir: str
    log_dir: str
    output_dir: str


@dataclass(frozen=True)
class RunSettings:
    """The top-level keys of conf/train.yaml that no `_target_` receives."""

    task_name: str
    tags: list[str]
    seed: int
    ckpt_path: str | None
    resume: bool
    monitor: Monitor
    optimized_metric: str
    paths: Paths


_ABSENT = object()
"""A value that cannot be read yet (`???`, or an interpolation whose resolver train() registers): not checked."""


@dataclass(frozen=True)
class Rule:
    """A value range no type hint states: `accepts(value)` or ConfigError "<key> must be <requirement>"."""

    accepts: Callable[[Any], bool]
    requirement: str


RULES = {
    "seed": Rule(lambda seed: 0 <= seed < 2**32, "between 0 and 2**32 - 1 (numpy's seed range)"),
    "optimizer.lr": Rule(lambda lr: lr > 0, "> 0 (e.g. optimizer.lr=0.01)"),
    "trainer.max_epochs": Rule(lambda epochs: epochs is None or epochs >= 1, ">= 1"),
    "trainer.gradient_clip_val": Rule(lambda clip: clip is None or clip >= 0, ">= 0 (0 or null turns clipping off)"),
}
"""Checked after the types, when the key is present."""


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value does not fit its type or range, is not a finite number,
    or names no parameter."""
    _check_fields(cfg, "", RunSettings)
    for path, node in target_nodes(cfg):
        _check_target(path, node)
    _check_finite(cfg, "")
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)
        if value is not _ABSENT and not rule.accepts(value):
            raise ConfigError(f"{key} must be {rule.requirement}, got {value}")


def _check_finite(node: DictConfig | ListConfig, path: str) -> None:
    """inf and nan are accepted by float hints but are no setting of anything here."""
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node)
    for key, child in items:
        full_key = f"{path}[{key}]" if isinstance(key, int) else _join(path, key)
        if isinstance(child, DictConfig | ListConfig):
            _check_finite(child, full_key)
            continue
        value = _value(node, key, full_key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{full_key} must be a finite number, got {value}")


def target_nodes(node: DictConfig | ListConfig, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted path, node) of every node with a `_target_` under `node`, outer before inner."""
    if isinstance(node, DictConfig) and "_target_" in node:
        yield path, node
    for key, child in node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node):
        if isinstance(child, DictConfig | ListConfig):
            yield from target_nodes(child, f"{path}[{key}]" if isinstance(key, int) else _join(path, key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_fields(node: DictConfig, path: str, schema: type) -> None:
    """Check the keys of `node` that `schema` (a dataclass) declares; others belong to config groups."""
    hints = typing.get_type_hints(schema)
    for field in fields(schema):
        if field.name not in node:
            continue
        hint, key = hints[field.name], _join(path, field.name)
        if is_dataclass(hint) and isinstance(node[field.name], DictConfig):
            _check_fields(node[field.name], key, hint)
        else:
            _check_value(node, field.name, key, hint)


def _check_target(path: str, node: DictConfig) -> None:
    target = node._target_
    function = pydoc.locate(target)
    if not callable(function):
        raise ConfigError(f"{_join(path, '_target_')}: {target!r} names nothing importable; check its spelling")
    parameters, takes_any = parameters_of(function)
    for key, raw in node.items_ex(resolve=False):
        if key.startswith("_") and key.endswith("_"):  # Hydra's own keys: _partial_, _recursive_, _convert_
            continue
        full_key = _join(path, key)
        if key not in parameters:
            if takes_any:
                continue
            raise ConfigError(
                f"{full_key} is not a parameter of {target}; remove it, or use one of: {', '.join(parameters)}"
            )
        if OmegaConf.is_config(raw) and any(True for _ in target_nodes(raw)):
            continue  # an object Hydra builds from its own _target_, checked on its own
        _check_value(node, key, full_key, parameters[key])


def _value(node: DictConfig, key: str, full_key: str) -> Any:
    """The value of `node[key]` as the target receives it (containers as plain lists and dicts)."""
    try:
        value = node[key]
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    except (UnsupportedInterpolationType, MissingMandatoryValue):
        return _ABSENT
    except InterpolationResolutionError as error:
        raise ConfigError(f"{full_key}: cannot resolve {_raw(node, key)}: {error.msg}") from error


def _raw(node: DictConfig, key: str) -> Any:
    """`node[key]` as written, interpolations unresolved."""
    return OmegaConf.to_container(node, resolve=False)[key]


def _check_value(node: DictConfig, key: str, full_key: str, hint: Any) -> None:
    value, adapter = _value(node, key, full_key), _adapter(hint)
    if value is _ABSENT or adapter is None:
        return
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as error:
        source = f" (from {_raw(node, key)})" if OmegaConf.is_interpolation(node, key) else ""
        raise ConfigError(f"{full_key} must be {describe(hint)}, got {value!r}{source}") from error


def _adapter(hint: Any) -> TypeAdapter | None:
    """pydantic's validator of `hint`; None for a hint it has no schema for (e.g. a Protocol): any value passes."""
    try:
        return _cached_adapter(hint)
    except TypeError:  # an unhashable hint, e.g. Annotated[int, [1]]: built each time
        return _cached_adapter.__wrapped__(hint)


@cache
def _cached_adapter(hint: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:
        return None


def parameters_of(function: Callable) -> tuple[dict[str, Any], bool]:
    """Keyword parameter name → type hint (Any without one) of `function(**kwargs)`, and whether it also takes
    names it does not list. A class's `**kwargs` are followed to the `__init__` of its bases, which receive them
    through `super().__init__(**kwargs)`."""
    if isinstance(function, type):
        signatures = [klass.__dict__["__init__"] for klass in function.__mro__[:-1] if "__init__" in klass.__dict__]
    else:
        signatures = [function]
    parameters: dict[str, Any] = {}
    for callable_ in signatures:
        try:
            signature = inspect.signature(callable_)
        except (TypeError, ValueError):  # no signature to read (e.g. a builtin's): take any name
            break
        hints = _hints(callable_)
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        for name, parameter in signature.parameters.items():
            if parameter.kind in keyword and not (name == "self" and isinstance(function, type)):
                parameters.setdefault(name, hints.get(name, Any))
        if all(parameter.kind != inspect.Parameter.VAR_KEYWORD for parameter in signature.parameters.values()):
            return parameters, False
    return parameters, True


def _hints(function: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # annotations naming what only type checkers import: leave the parameters unchecked
        return {}


def describe(hint: Any) -> str:
    """A type hint as a user reads it: `int`, `int or null`, `one of 'min', 'max'`."""
    if hint is type(None):
        return "null"
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, arguments))
    if origin in (typing.Union, types.UnionType):
        literals = [
            value
            for argument in arguments
            if typing.get_origin(argument) is Literal
            for value in typing.get_args(argument)
        ]
        others = [describe(argument) for argument in arguments if typing.get_origin(argument) is not Literal]
        return " or ".join([*(["one of " + ", ".join(map(repr, literals))] if literals else []), *others])
    if origin is not None or not hasattr(hint, "__name__"):
        return str(hint).replace("typing.", "")
    return hint.__name__
