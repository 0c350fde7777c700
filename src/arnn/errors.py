"""Errors a user can fix: the command line prints their message as one line and exits non-zero."""

import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class UserError(Exception):
    """A mistake in the configuration or the environment, with the fix in its message."""


class ConfigError(UserError, ValueError):
    """A configuration value is out of its valid range."""


class DivergedError(UserError):
    """Training met a NaN or Inf loss or gradient; the message names the step and the likely cause."""


class DataNotFoundError(UserError, FileNotFoundError):
    """Dataset files are missing and cannot be downloaded."""


def find_user_error(error: BaseException) -> UserError | None:
    """The UserError behind `error`, following `raise ... from` chains (Hydra wraps errors in its own)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def exit_on_user_error(run: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`run(*args, **kwargs)`; a UserError behind what it raises ends the process with one line `error: ...`, exit 1."""
    try:
        return run(*args, **kwargs)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        sys.exit(f"error: {user_error}")
