"""Map exceptions to one-line messages and exit codes (tracebacks only with AESDATA_DEBUG=1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from aesdata.errors import AesdataError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def debug_enabled() -> bool:
    return os.environ.get("AESDATA_DEBUG", "") not in ("", "0", "false")


def report(exc: BaseException) -> int:
    """Print the one-line form of ``exc`` to stderr; return the exit code."""
    if isinstance(exc, AesdataError):
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted: work committed so far is kept; run the same command again to continue",
              file=sys.stderr)
        return 130
    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    print("hint: this looks like a bug in aesdata; rerun with AESDATA_DEBUG=1 for the traceback",
          file=sys.stderr)
    return EXIT_FAILED


def handle_errors(fn: F) -> F:
    """Decorator for commands: known failures become one line and exit 1, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as exc:
            if debug_enabled():
                raise
            raise typer.Exit(report(exc)) from None

    return wrapper  # type: ignore[return-value]
