"""How stages report progress and per-item problems without knowing about the terminal.

Stage functions take a :class:`Reporter`; the library default prints nothing (problems go to the
``aesdata`` logger), the CLI passes one that draws rich progress bars and one-line warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

log = logging.getLogger("aesdata")


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None) -> AbstractContextManager[Task]:
        """A context manager yielding a task to advance (a progress bar in the CLI)."""
        ...

    def problem(self, line: str) -> None:
        """One line about one bad input (file and reason); the stage goes on."""
        ...

    def info(self, line: str) -> None: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass


class LogReporter:
    """Default reporter for library use: no bars, problems logged as warnings."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        yield _NullTask()

    def problem(self, line: str) -> None:
        log.warning(line)

    def info(self, line: str) -> None:
        log.info(line)
