"""The `key=value` command lines of eval.py and `python -m arnn.generate`: Hydra's override grammar, a few known keys,
and `data=<name>` / `data.<key>=<value>` for the data."""

from collections.abc import Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from arnn.errors import UserError

REQUIRED = object()
"""A known key's default when the command line must give it."""


def parse_key_values(
    arguments: list[str], known: Mapping[str, Any], usage: str
) -> tuple[dict[str, Any], list[Override]]:
    """The known keys' values (their defaults where absent) and the data overrides, in command-line order."""
    try:
        overrides = OverridesParser.create().parse_overrides(arguments)
    except OverrideParseException as error:
        raise UserError(f"cannot parse {error.override!r}; write key=value: {usage}") from error
    given = {override.key_or_group: override.value() for override in overrides if override.key_or_group in known}
    if missing := [key for key, default in known.items() if default is REQUIRED and key not in given]:
        raise UserError(f"no {', '.join(missing)} given: {usage}")
    data = [o for o in overrides if o.key_or_group not in known]
    if unknown := [o.input_line for o in data if o.key_or_group != "data" and not o.key_or_group.startswith("data.")]:
        raise UserError(
            f"{usage.split()[0]} takes {', '.join(known)} and data settings, got {', '.join(unknown)}: {usage}"
        )
    return {key: given.get(key, default) for key, default in known.items()}, data
