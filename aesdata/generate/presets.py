"""Generation presets: TOML files in ``generation/`` (or any path), validated, with CLI overrides.

A preset fixes everything that decides the pixels except the seed: model and revision, pipeline class,
prompt bank, negative prompt, steps, guidance, strength, canvas size and the layout ranges. Its
:func:`signature` is stored with every sample, so a changed preset is visible downstream.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aesdata.assets import asset_path
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

    def with_overrides(self, **overrides: object) -> Preset:
        """A copy with the CLI's overrides (``None`` means keep), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return Preset.model_validate(data)
        except ValidationError as exc:
            raise AesdataError(f"preset {self.name}: {_first_error(exc)}") from None

    def prompt_bank(self) -> list[str]:
        """The scene prompts, one a line (blank lines and ``#`` comments ignored)."""
        path = Path(self.prompts)
        if not path.is_absolute():
            path = asset_path("generation") / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
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


def available() -> list[str]:
    """Names of the presets shipped in ``generation/``."""
    return sorted(p.stem for p in asset_path("generation").glob("*.toml"))


def load_preset(name_or_path: str) -> Preset:
    """Load a shipped preset by name (``sd15-inpaint``) or any TOML file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = asset_path("generation") / f"{name_or_path}.toml"
        if not path.is_file():
            raise AesdataError(f"no preset named {name_or_path!r}",
                               hint=f"shipped presets: {', '.join(available())}; or pass a .toml path")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AesdataError(f"{path}: cannot read preset: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AesdataError(f"{path}: not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        raise AesdataError(f"{path}: {_first_error(exc)}") from None
