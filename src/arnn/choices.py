"""Check config-group choices on the command line before Hydra composes, for a one-line error."""

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import OverrideParseException

_LISTED_CHOICES = (ValueType.ELEMENT, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP)


def unknown_choice(arguments: list[str], conf_dir: Path) -> str | None:
    """A message naming the first `group=choice` argument whose choice has no file in conf_dir/group/."""
    overrides = [argument for argument in arguments if not argument.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException:
        return None  # Hydra reports malformed overrides itself
    for override in parsed:
        group_dir = conf_dir / override.key_or_group
        if override.is_delete() or override.value_type not in _LISTED_CHOICES or not group_dir.is_dir():
            continue
        values = override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
        # A list selects several files of one group at once: callbacks=[default,jacobian_spectrum].
        values = [item for value in values for item in (value if isinstance(value, list) else [value])]
        known = sorted(path.stem for path in group_dir.glob("*.yaml"))
        for value in values:
            if value is not None and str(value) not in known:
                return (
                    f"unknown {override.key_or_group} {str(value)!r}; "
                    f"choose one of: {', '.join(known)} (files in {group_dir})"
                )
    return None
