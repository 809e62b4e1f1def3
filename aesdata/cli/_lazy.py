"""A command group that has typer build only the subcommand that runs.

typer turns a command's signature into click parameters when it builds the command: for the whole
``aesdata`` tree that was ~85 ms of every start, ``aesdata --help`` and ``aesdata status`` included,
to run one command. Here each subcommand is named as ``"module:attribute"`` (a command function or a
``typer.Typer`` sub-app), imported and built by typer's own ``typer.main.get_command`` the first time it
is looked up; the group's help page lists every command from its help text alone. This is click's
lazy-loading group (its docs, "Lazily Loading Subcommands") with typer doing each build.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter


class LazyCommands(Mapping[str, "Command"]):
    """Subcommand name -> click command, built on first access; iterating gives names without building."""

    def __init__(self, group: LazyGroup) -> None:
        self._group = group
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._group.lazy_subcommands:
                raise KeyError(name)
            self._built[name] = self._group.build(name)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._group.lazy_subcommands)

    def __len__(self) -> int:
        return len(self._group.lazy_subcommands)

    @property
    def built(self) -> list[str]:
        """Names built so far (the tests check that running one command builds only it)."""
        return list(self._built)


class LazyGroup(TyperGroup):
    """A ``TyperGroup`` whose subclass names its subcommands in :attr:`lazy_subcommands`, in help order."""

    lazy_subcommands: ClassVar[dict[str, str]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        if self.commands:
            raise TypeError("a LazyGroup's subcommands go in lazy_subcommands, not on its typer app")
        self.lazy = LazyCommands(self)
        self.commands = self.lazy  # type: ignore[assignment]  # what typer's own lookups read
        self._listing = False

    @classmethod
    def target(cls, name: str) -> Any:
        """The command function or sub-app ``name`` stands for (its module imported now)."""
        module, _, attribute = cls.lazy_subcommands[name].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def _registry(self, name: str) -> typer.Typer:
        """A throwaway app holding only ``name``, registered as on the root app itself."""
        registry = typer.Typer(add_completion=False, rich_markup_mode=self.rich_markup_mode,
                               suggest_commands=self.suggest_commands)
        register(registry, name, self.target(name))
        return registry

    def build(self, name: str) -> Command:
        """The click command typer makes for ``name`` (a one-command app builds to that command itself)."""
        registry = self._registry(name)
        built = typer.main.get_command(registry)
        return built.commands[name] if registry.registered_groups else built  # type: ignore[attr-defined]

    def summary(self, name: str) -> Command:
        """``name`` with only what a help listing shows (name, help, panel), its parameters not built."""
        registry = self._registry(name)
        if registry.registered_groups:
            info: Any = typer.main.solve_typer_info_defaults(registry.registered_groups[0])
            help_text = info.help
        else:
            info = registry.registered_commands[0]
            help_text = inspect.getdoc(info.callback) if info.help is None else inspect.cleandoc(info.help)
        return TyperCommand(name, help=help_text, short_help=info.short_help, hidden=info.hidden,
                            deprecated=info.deprecated, rich_help_panel=info.rich_help_panel)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if self._listing and cmd_name in self.lazy_subcommands and cmd_name not in self.lazy.built:
            return self.summary(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True  # the page asks get_command for every name: summaries, not builds
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def register(app: typer.Typer, name: str, target: Any) -> None:
    """``app.add_typer`` for a sub-app, ``app.command`` for a command function."""
    if isinstance(target, typer.Typer):
        app.add_typer(target, name=name)
    else:
        app.command(name)(target)


def eager(app: typer.Typer) -> typer.Typer:
    """``app`` with every subcommand of its lazy group registered up front, so typer builds the whole tree.

    The reference the start-up tests compare the lazy group with (same help, same order) and the
    baseline of ``make bench ONLY=startup``.
    """
    group: type[LazyGroup] = app.info.cls  # type: ignore[assignment]
    full = copy.copy(app)
    full.info = copy.copy(app.info)
    full.info.cls = TyperGroup
    full.registered_commands, full.registered_groups = [], []
    for name in group.lazy_subcommands:
        register(full, name, group.target(name))
    return full
