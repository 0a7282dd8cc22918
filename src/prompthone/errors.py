"""Exception types a user can act on; the CLI turns each into one line and exit code 2."""

from __future__ import annotations


class PrompthoneError(Exception):
    """Base class for every error prompthone raises on purpose."""


class InputError(PrompthoneError):
    """Bad user input (task file, prompt file, option): names the file, line and field when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.line, self.field, self.reason = path, line, field, message
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field is not None:
            where += f"field '{field}': "
        super().__init__(where + message)


class ConfigError(PrompthoneError):
    """An unknown method, model spec, task spec or an impossible option combination."""


class BackendError(PrompthoneError):
    """A model backend failed after its retries (server down, malformed replies, missing capability)."""


class BudgetExhausted(PrompthoneError):
    """The run's budget of model calls or tokens is spent; the driver stops cleanly with the best so far."""


class StoreError(PrompthoneError):
    """The run store cannot be used: unreachable, a newer schema, an unknown run, a damaged checkpoint."""
