"""What the stage hands a backend (one :class:`Job` per candidate), what it gets back, and where
backends come from.

Every backend renders a list of jobs in one call, so the stage batches across sources the same way
for each, and the near-duplicate redraw loop lives once, in the stage.

Backends are found through the Python entry-point group ``aesdata.backends``: a separate package adds
one by declaring, in its own ``pyproject.toml``::

    [project.entry-points."aesdata.backends"]
    my-api = "my_package.backend:load"

where ``load(preset, ctx)`` returns an object with ``identity()`` and ``render(jobs)``. The actors of a
local Ray (``--engine ray``) get only an allow-list of the driver's environment: a backend that needs more
there (an API key) names the variables in its factory's ``environment`` attribute
(``load.environment = ("MY_API_KEY",)``); one that cannot run there at all (it needs the workspace, as an
API backend with its ledger does) sets ``load.runs_on_ray = False`` and ``--engine ray`` refuses it in one
line before Ray starts. aesdata's own
backends (``synthetic``, ``diffusers``, ``openai-images``) are registered the same way in aesdata's
``pyproject.toml``; :data:`BUILTIN` names the same targets so a source checkout whose installed
metadata predates a backend still finds it (a test checks the two agree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from aesdata.errors import AesdataError
from aesdata.schema import Dimension, Layout, Region, Slot

if TYPE_CHECKING:
    from aesdata.generate.presets import Preset
    from aesdata.workspace import Workspace

#: The entry-point group a backend registers under.
GROUP = "aesdata.backends"
#: aesdata's own backends (also declared in pyproject.toml under the same group).
BUILTIN: dict[str, str] = {
    "synthetic": "aesdata.generate.backend:load_synthetic",
    "diffusers": "aesdata.generate.backend:load_diffusers",
    "openai-images": "aesdata.generate.openai_images:load",
}


@dataclass(frozen=True)
class Job:
    """One candidate to draw: everything comes from the source and the candidate's own seed."""

    source_id: str
    slot: Slot
    seed: int
    prompt: str
    layout: Layout
    product: Image.Image  # RGBA cut-out of the product, cropped to its mask
    injected: tuple[Dimension, ...] = ()


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    layout: Layout  # where the product actually went (a synthetic layout defect moves it)
    prompt: str
    regions: tuple[Region, ...] = ()  # where injected defects were drawn (synthetic backend only)


@dataclass(frozen=True)
class Failed:
    """A job the backend could not draw (an API refused it, a reply stayed unreadable after retries).

    Only that job's source is skipped, with ``reason`` on one line; a re-run tries it again.
    """

    reason: str


class BackendStopped(AesdataError):
    """The backend will start no more work (a spending cap was reached): the stage stops cleanly.

    Everything already drawn is kept (an API backend keeps paid images in its ledger, so a later run
    with a higher cap uses them instead of paying again).
    """


class Backend(Protocol):
    def identity(self) -> dict[str, Any]:
        """Provenance fields shared by every candidate of the run (model, revision, versions, steps...)."""
        ...

    def render(self, jobs: Sequence[Job]) -> Sequence[Rendered | Failed]:
        """Draw every job, in order; one call is one batch. A job that cannot be drawn is a :class:`Failed`."""
        ...


@dataclass(frozen=True)
class LoadContext:
    """What a backend may need besides its preset; each backend reads the fields it uses."""

    workspace: Workspace | None = None
    device: str = "auto"
    compile: bool = False
    base_url: str | None = None  # API backends: the endpoint (else their settings' base_url)
    concurrency: int | None = None  # API backends: requests in flight
    max_cost: float | None = None  # API backends: stop starting requests once this much is spent (USD)


Factory = Callable[["Preset", LoadContext], Backend]


# --------------------------------------------------------------------------- the registry


def _entry_points() -> dict[str, list[metadata.EntryPoint]]:
    found: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=GROUP):
        if ep.value not in (e.value for e in found.get(ep.name, [])):  # one dist seen twice on sys.path
            found.setdefault(ep.name, []).append(ep)
    return found


def available() -> dict[str, str]:
    """Backend name -> ``module:attr`` of its factory: aesdata's own, then every other registered one."""
    return {**BUILTIN, **{name: eps[0].value for name, eps in _entry_points().items() if name not in BUILTIN}}


def _origin(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else ep.value


def factory(name: str) -> Factory:
    """The factory registered as ``name``; an unknown name or a clash is one clear error."""
    eps = _entry_points().get(name, [])
    if name in BUILTIN:
        strangers = [ep for ep in eps if ep.value != BUILTIN[name]]
        if strangers:
            raise AesdataError(f"backend {name}: also registered by {_origin(strangers[0])} ({strangers[0].value})",
                               hint=f"{name} is aesdata's own; the other package must use another name")
        target = BUILTIN[name]
    elif len(eps) > 1:
        raise AesdataError(f"backend {name}: registered by several packages ("
                           + ", ".join(f"{_origin(ep)}: {ep.value}" for ep in eps) + ")",
                           hint="uninstall all but one")
    elif eps:
        target = eps[0].value
    else:
        raise AesdataError(f"--backend {name}: not a backend (registered: {', '.join(sorted(available()))})",
                           hint=f"a package adds one through the {GROUP!r} entry-point group")
    try:
        loaded = metadata.EntryPoint(name=name, value=target, group=GROUP).load()
    except Exception as exc:  # a broken plugin must not take the command down with a traceback
        raise AesdataError(f"backend {name}: cannot load {target}: {type(exc).__name__}: {exc}") from None
    if not callable(loaded):
        raise AesdataError(f"backend {name}: {target} is not callable (expected load(preset, ctx))")
    return loaded  # type: ignore[no-any-return]


def make_backend(preset: Preset, ctx: LoadContext | None = None, **fields: Any) -> Backend:
    """Load the backend the preset names (a missing model or key fails here, before any work).

    ``fields`` are :class:`LoadContext` fields, for callers without a context (``device="cpu"``).
    """
    backend = factory(preset.backend)(preset, ctx or LoadContext(**fields))
    for method in ("identity", "render"):
        if not callable(getattr(backend, method, None)):
            raise AesdataError(f"backend {preset.backend}: what it returned has no {method}() method")
    return backend


# --------------------------------------------------------------------------- built-in factories


def load_synthetic(preset: Preset, ctx: LoadContext) -> Backend:
    from aesdata.generate.synthetic import SyntheticBackend

    return SyntheticBackend(preset)


def load_diffusers(preset: Preset, ctx: LoadContext) -> Backend:
    from aesdata.generate.diffusers_backend import DiffusersBackend

    return DiffusersBackend.load(preset, device=ctx.device, compile=ctx.compile)
