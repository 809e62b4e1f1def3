"""Generation presets: TOML files in ``generation/`` (or any path), validated, with CLI overrides.

A preset fixes everything that decides the pixels except the seed: its backend, model and revision,
pipeline class, prompt bank, negative prompt, steps, guidance, strength, canvas size and the layout
ranges. Its :func:`signature` is stored with every sample, so a changed preset is visible downstream.
Presets and prompt banks are looked up in the workspace's ``assets/generation/`` first, then in the
shipped ones (:mod:`aesdata.assets`), so the signature follows the files actually used.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from aesdata import assets
from aesdata.errors import AesdataError
from aesdata.schema import BackendName


class Range(BaseModel):
    """A closed interval ``[lo, hi]`` written in TOML as a two-element array."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lo: float
    hi: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, v: object) -> object:
        if isinstance(v, list | tuple) and len(v) == 2:
            return {"lo": v[0], "hi": v[1]}
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.lo > self.hi:
            raise ValueError(f"range [{self.lo}, {self.hi}] is reversed")
        return self


class LayoutRanges(BaseModel):
    """Where the product may go: bounding-box height / canvas and box centre, as canvas fractions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: Range = Range(lo=0.45, hi=0.7)
    offset_x: Range = Range(lo=0.35, hi=0.65)
    offset_y: Range = Range(lo=0.5, hi=0.65)


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    backend: BackendName = "diffusers"
    description: str = ""
    model: str | None = Field(None, description="hub id or local folder saved with save_pretrained")
    revision: str | None = Field(None, description="hub branch, tag or commit")
    pipeline: str = Field("auto", description="diffusers pipeline class name, or auto")
    prompts: str = Field("prompts/scenes.txt", description="prompt bank, relative to generation/")
    negative_prompt: str | None = None
    steps: int = Field(30, ge=1)
    guidance: float = Field(7.5, ge=0)
    strength: float = Field(1.0, gt=0, le=1)
    size: int = Field(512, ge=32, multiple_of=8)
    dtype: Literal["bfloat16", "float16"] = Field("bfloat16", description="weights on CUDA (CPU runs float32)")
    near_duplicate_distance: int = Field(4, ge=0, le=64, description="pHash bits; closer siblings are redrawn")
    max_redraws: int = Field(3, ge=0, description="next-seed tries per candidate before keeping it")
    layout: LayoutRanges = LayoutRanges()
    #: The workspace whose assets/ is searched first for the prompt bank (not a setting: not hashed).
    _assets_root: Path | None = PrivateAttr(None)

    def with_overrides(self, **overrides: object) -> Preset:
        """A copy with the CLI's overrides (``None`` means keep), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return _rooted(Preset.model_validate(data), self._assets_root)
        except ValidationError as exc:
            raise AesdataError(f"preset {self.name}: {_first_error(exc)}") from None

    def prompt_bank(self) -> list[str]:
        """The scene prompts, one a line (blank lines and ``#`` comments ignored)."""
        path = Path(self.prompts)
        try:
            if path.is_absolute():
                lines = path.read_text(encoding="utf-8").splitlines()
            else:
                lines = assets.read_asset(f"generation/{self.prompts}", self._assets_root).text.splitlines()
        except OSError as exc:
            raise AesdataError(f"preset {self.name}: prompt bank {path}: {exc.strerror or exc}") from None
        bank = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not bank:
            raise AesdataError(f"preset {self.name}: prompt bank {path} has no prompts")
        return bank

    def signature(self, base_seed: int) -> str:
        """Hash of every setting that decides the pixels, and of the prompt bank's text."""
        payload = {"preset": self.model_dump(exclude={"name", "description"}), "prompts": self.prompt_bank(),
                   "seed": base_seed}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'preset'}: {err['msg']}"


def _rooted(preset: Preset, root: Path | None) -> Preset:
    preset._assets_root = root
    return preset


def available(root: Path | None = None) -> list[str]:
    """Names of the presets: the shipped ones and those in the workspace's ``assets/generation/``."""
    return [Path(name).stem for name in assets.names_in("generation", "*.toml", root)]


def load_preset(name_or_path: str, root: Path | None = None) -> Preset:
    """Load a preset by name (``sd15-inpaint``: workspace ``root``'s copy first, then the shipped one) or
    any TOML file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        try:
            path = assets.asset_path(f"generation/{name_or_path}.toml", root)
        except FileNotFoundError:
            raise AesdataError(f"no preset named {name_or_path!r}",
                               hint=f"presets: {', '.join(available(root))}; or pass a .toml path") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AesdataError(f"{path}: cannot read preset: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AesdataError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    try:
        return _rooted(Preset.model_validate(data), root)
    except ValidationError as exc:
        raise AesdataError(f"{path}: {_first_error(exc)}") from None


def choose(*, preset: str | None, backend: str | None, model: str | None, default_backend: str,
           default_preset: str, root: Path | None = None) -> Preset:
    """The preset a run uses, and with it the backend: a named preset brings its own backend.

    ``--preset P`` alone selects P's backend; ``--backend B`` alone takes B's default preset (``synthetic``,
    or ``default_preset`` from aesdata.toml for diffusers); ``--model`` alone means diffusers; neither
    falls back to aesdata.toml. Only an explicit contradiction (``--backend synthetic --preset
    sd15-inpaint``, ``--model`` with a synthetic preset) is an error.
    """
    from aesdata.generate.backend import available as registered  # the registry imports this module

    if preset is not None:
        loaded = load_preset(preset, root)
        chosen = backend or loaded.backend
    else:
        chosen = backend or ("diffusers" if model else default_backend)
        if chosen not in registered():
            raise AesdataError(f"--backend {chosen}: not a backend (registered: {', '.join(sorted(registered()))})",
                               hint="a package adds one through the 'aesdata.backends' entry-point group")
        if chosen == "diffusers":
            loaded = load_preset(default_preset, root)
        elif chosen in available(root):
            loaded = load_preset(chosen, root)
        else:  # a plugin backend without a preset of its own: the generic canvas (prompt bank, layout, size)
            loaded = load_preset("synthetic", root).with_overrides(name=chosen, backend=chosen)
    if chosen not in registered():
        raise AesdataError(f"--backend {chosen}: not a backend (registered: {', '.join(sorted(registered()))})",
                           hint="a package adds one through the 'aesdata.backends' entry-point group")
    if loaded.backend != chosen:
        raise AesdataError(f"preset {loaded.name} is for the {loaded.backend} backend, not {chosen}",
                           hint=f"drop --backend (the preset brings its own), or pick a {chosen} preset")
    if model and chosen == "synthetic":
        raise AesdataError("--model is for the diffusers backend; the synthetic backend needs no weights")
    return loaded
