"""One output object per command: human (rich), json, or quiet; logs and problems go to stderr.

rich is imported when something is drawn, not before: ``aesdata status --json`` in a script never loads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aesdata.progress import Task

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class _BarTask:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass


class Output:
    """Implements :class:`aesdata.progress.Reporter` for the terminal."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode, self.quiet = json_mode, quiet

    @cached_property
    def out(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def human(self) -> bool:
        return not (self.json_mode or self.quiet)

    # Reporter protocol ---------------------------------------------------------------
    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        if not self.human or not self.err.is_terminal:
            yield _NullTask()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.err, transient=True) as progress:
            yield _BarTask(progress, progress.add_task(description, total=total))

    def problem(self, line: str) -> None:
        if not self.quiet:
            self.err.print(f"[yellow]skip[/]: {line}", markup=True, highlight=False)

    def info(self, line: str) -> None:
        if self.human:
            self.err.print(line, markup=False)

    # results ---------------------------------------------------------------------------
    def result(self, data: Mapping[str, Any], *, title: str | None = None) -> None:
        """Print a command's one result: a JSON object, or a two-column table."""
        if self.json_mode:
            print(json.dumps(data, default=str, sort_keys=False))
            return
        if self.quiet:
            return
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left")
        for key, value in data.items():
            table.add_row(str(key), str(value))
        self.out.print(table)

    def table(self, rows: list[Mapping[str, Any]], *, title: str | None = None) -> None:
        if self.json_mode:
            print(json.dumps(rows, default=str))
            return
        if self.quiet:
            return
        if not rows:
            self.out.print(f"{title}: none" if title else "none")
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in rows[0]:
            table.add_column(str(col))
        for row in rows:
            table.add_row(*(str(v) for v in row.values()))
        self.out.print(table)

    def line(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            self.out.print(text, markup=False)
