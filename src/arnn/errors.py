"""Errors a user can fix: the command line prints their message as one line and exits non-zero."""


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
