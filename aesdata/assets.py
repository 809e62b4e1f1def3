"""Find the project's non-code assets: a workspace's own copy first, then the shipped default.

Shipped assets live at the top level of the repository (``generation/``, ``annotation/``, ``schemas/``,
``label_studio_config.xml``); the wheel carries them under ``aesdata/_assets/``. A workspace may hold its
own prompts, guidelines, labelling config and presets under ``WORKSPACE/assets/`` (same names, e.g.
``assets/annotation/prompts/system.md``); ``aesdata init --assets`` / ``aesdata assets init`` copy the
shipped ones there for editing. Lookups go file by file, so a workspace can override one prompt and keep
the rest. Every reader goes through :func:`read_asset`, which returns the file actually used and the hash
of its content, so the hash recorded with a result follows an edited copy.

Readers deep inside a stage (the CoT prompt templates, say) need not be handed the workspace: a stage
entry decorated with :func:`scoped` makes its workspace the one looked in for the length of the call
(a context variable, so threads and event loops started inside see it; other workspaces opened in the same
process are not affected).
"""

from __future__ import annotations

import difflib
import hashlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

_PACKAGE = Path(__file__).resolve().parent

#: The folder of a workspace that holds its own assets.
WORKSPACE_DIR = "assets"
#: What a workspace may override (the JSON Schemas are the contract, not a setting: never copied).
EDITABLE: tuple[str, ...] = ("generation", "annotation", "label_studio_config.xml")

Origin = Literal["workspace", "shipped"]

_current_root: ContextVar[Path | None] = ContextVar("aesdata_assets_root", default=None)
R = TypeVar("R")


class _HasRoot(Protocol):
    root: Path


@dataclass(frozen=True)
class AssetFile:
    """One asset as read: where it came from, its text and the sha256 of its bytes."""

    name: str
    path: Path
    origin: Origin
    text: str
    sha256: str


@dataclass(frozen=True)
class AssetChange:
    """How one workspace file differs from the shipped one: ``modified``, ``added`` or ``unchanged``."""

    name: str
    status: Literal["modified", "added", "unchanged"]
    diff: str = ""


def shipped_path(name: str) -> Path:
    """Path of a shipped asset (file or folder), wherever aesdata was installed from."""
    for base in (_PACKAGE / "_assets", _PACKAGE.parent):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"aesdata asset {name!r} not found (looked in {_PACKAGE / '_assets'} and {_PACKAGE.parent})"
    )


def workspace_assets(root: Path) -> Path:
    return root / WORKSPACE_DIR


def current_root() -> Path | None:
    """The workspace of the :func:`scoped` stage running now, if any."""
    return _current_root.get()


@contextmanager
def using(root: Path) -> Iterator[None]:
    """Look in workspace ``root`` first for every asset read inside the block."""
    token = _current_root.set(root)
    try:
        yield
    finally:
        _current_root.reset(token)


def scoped(fn: Callable[..., R]) -> Callable[..., R]:
    """Decorator for a stage entry whose first argument is the :class:`~aesdata.workspace.Workspace`."""

    @wraps(fn)
    def wrapper(ws: _HasRoot, *args: Any, **kwargs: Any) -> R:
        with using(ws.root):
            return fn(ws, *args, **kwargs)

    return wrapper


def asset_path(name: str, root: Path | None = None) -> Path:
    """The file ``name`` (e.g. ``annotation/prompts/system.md``): the copy in workspace ``root`` (default:
    the :func:`scoped` one) when it has one, else the shipped one."""
    root = root or current_root()
    if root is not None:
        own = workspace_assets(root) / name
        if own.exists():
            return own
    return shipped_path(name)


def read_asset(name: str, root: Path | None = None) -> AssetFile:
    """Read the asset actually used for workspace ``root`` (default: the :func:`scoped` one; else the shipped
    one), with its content hash."""
    root = root or current_root()
    path = asset_path(name, root)
    origin: Origin = "workspace" if root is not None and path.is_relative_to(workspace_assets(root)) else "shipped"
    stat = path.stat()
    return _load(name, path, origin, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=512)
def _load(name: str, path: Path, origin: Origin, mtime_ns: int, size: int) -> AssetFile:
    """Read once per version of the file (a prompt is read per request; an edit is seen at once)."""
    data = path.read_bytes()
    return AssetFile(name=name, path=path, origin=origin, text=data.decode("utf-8"),
                     sha256=hashlib.sha256(data).hexdigest())


def names_in(folder: str, pattern: str, root: Path | None = None) -> list[str]:
    """Asset names matching ``pattern`` in ``folder``, shipped and the workspace's own, e.g. the presets."""
    bases = [shipped_path(folder)]
    if root is not None and (workspace_assets(root) / folder).is_dir():
        bases.append(workspace_assets(root) / folder)
    return sorted({f"{folder}/{p.relative_to(base).as_posix()}" for base in bases for p in base.glob(pattern)})


def _files(base: Path, top: str) -> Iterator[tuple[str, Path]]:
    """(name, path) of every file of asset ``top`` (a file or a folder) under ``base``."""
    path = base / top
    if path.is_file():
        yield top, path
    elif path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and not f.name.startswith("."):
                yield f.relative_to(base).as_posix(), f


def _shipped_files() -> Iterator[tuple[str, Path]]:
    for top in EDITABLE:
        yield from _files(shipped_path(top).parent, top)


def _workspace_files(root: Path) -> Iterator[tuple[str, Path]]:
    for top in EDITABLE:
        yield from _files(workspace_assets(root), top)


def copy_defaults(root: Path) -> dict[str, int]:
    """Copy every shipped editable asset into ``root/assets`` for editing; files already there are kept."""
    target = workspace_assets(root)
    copied = kept = 0
    for name, source in _shipped_files():
        dest = target / name
        if dest.exists():
            kept += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(dest)  # a copy interrupted half-way never passes for the asset
        copied += 1
    return {"copied": copied, "kept": kept}


def diff(root: Path) -> list[AssetChange]:
    """Every file under ``root/assets`` compared with the shipped one (a unified diff for text changes)."""
    shipped = dict(_shipped_files())
    changes = []
    for name, path in _workspace_files(root):
        if name not in shipped:
            changes.append(AssetChange(name, "added"))
            continue
        mine, theirs = path.read_bytes(), shipped[name].read_bytes()
        if mine == theirs:
            changes.append(AssetChange(name, "unchanged"))
            continue
        lines = difflib.unified_diff(
            theirs.decode("utf-8", "replace").splitlines(keepends=True),
            mine.decode("utf-8", "replace").splitlines(keepends=True),
            fromfile=f"shipped/{name}", tofile=f"{WORKSPACE_DIR}/{name}",
        )
        changes.append(AssetChange(name, "modified", "".join(lines)))
    return changes
