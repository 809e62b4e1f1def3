"""The one user-facing error type.

Stages raise :class:`AesdataError` (or a subclass) for anything a user can fix; the CLI turns it
into one line plus an optional hint and exit code 1. Anything else is a bug and shows a traceback
only with ``AESDATA_DEBUG=1``.
"""

from __future__ import annotations


class AesdataError(Exception):
    """A failure the user can act on: ``message`` says what and where, ``hint`` what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class WorkspaceNotFound(AesdataError):
    pass


class InputRejected(AesdataError):
    """One input (file, row, reply) is unusable; the stage records it and goes on with the rest."""
