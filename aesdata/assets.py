"""Find the project's non-code assets, in a source checkout or an installed wheel.

In the repository they live at the top level (``generation/``, ``annotation/``, ``schemas/``,
``label_studio_config.xml``); the wheel carries them under ``aesdata/_assets/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def asset_path(name: str) -> Path:
    """Path of a top-level asset (file or folder), wherever aesdata was installed from."""
    for base in (_PACKAGE / "_assets", _PACKAGE.parent):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"aesdata asset {name!r} not found (looked in {_PACKAGE / '_assets'} and {_PACKAGE.parent})"
    )
