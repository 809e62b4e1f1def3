"""The data contract: every record aesdata stores or publishes, as pydantic v2 models.

This module is the single source of truth. ``schemas/*.json`` are generated from it
(``aesdata schemas``) and a test fails when they drift. Names fixed project-wide:

* slots ``A B C D`` name the four candidates of a sample;
* an *answer* is the set of acceptable slots (it may be empty or all four);
* the four *dimensions* a candidate can be defective along;
* a candidate is acceptable exactly when it has no defect (enforced by validators).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The CoT modes (and the --redo choices) and the clock live there, free of pydantic, so the CLI starts fast.
from aesdata.choices import COT_MODES, CotMode, Redo  # noqa: F401
from aesdata.clock import utcnow  # noqa: F401

Slot = Literal["A", "B", "C", "D"]
SLOTS: tuple[Slot, ...] = get_args(Slot)

Dimension = Literal[
    "appearance_deformation",
    "physical_shadow",
    "placement_layout",
    "extension_rationality",
]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)

LabelOrigin = Literal["synthetic", "human"]
RationaleStatus = Literal["valid", "failed"]
Split = Literal["train", "test"]

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the stored PNG blob")]
Hash64 = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$", description="64-bit perceptual hash, hex")]
SemVer = Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
#: A sample id: 16 hex digits derived from the source id. Ids read from a dataset are checked against it
#: before they name a file (``export`` writes ``images/<sample_id>/``).
SAMPLE_ID_PATTERN = r"^[0-9a-f]{16}$"
SampleId = Annotated[str, Field(pattern=SAMPLE_ID_PATTERN, description="stable id derived from the source id")]
BackendName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$",
                                   description="a generator backend (entry-point group aesdata.backends)")]
#: How a candidate's seed reached its pixels: ``local`` (a generator aesdata seeds: reproducible),
#: ``sent`` (given to an API that takes one: as reproducible as the API keeps it), ``unavailable`` (the
#: API takes no seed: the seed still chose the prompt and layout, but not the pixels).
PixelSeed = Literal["local", "sent", "unavailable"]



class Record(BaseModel):
    """Base for every stored record: strict about unknown fields, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- answers


def format_answer(answer: frozenset[str] | set[str]) -> str:
    """Canonical text of an answer: sorted slots joined by commas, ``none`` when empty."""
    return ",".join(s for s in SLOTS if s in answer) or "none"


def parse_answer(text: str) -> frozenset[Slot]:
    """Parse the canonical form written by :func:`format_answer` (strict; tolerant parsing lives in eval)."""
    text = text.strip()
    if text.lower() == "none" or not text:
        return frozenset()
    parts = [p.strip().upper() for p in text.split(",")]
    bad = [p for p in parts if p not in SLOTS]
    if bad:
        raise ValueError(f"not a slot: {', '.join(bad)} (slots are {', '.join(SLOTS)})")
    return frozenset(parts)  # type: ignore[arg-type]


Box = tuple[float, float, float, float]


class Region(Record):
    """Where one defect is: a box on one candidate, as fractions of the image (``x, y, w, h`` in 0-1).

    Normalised so a region survives resizing and means the same on any rendition of the candidate.
    """

    dimension: Dimension
    box: Box = Field(description="[x, y, w, h]: top-left corner and size, as fractions of the image")

    @field_validator("box")
    @classmethod
    def _inside_image(cls, v: Box) -> Box:
        x, y, w, h = v
        eps = 1e-6
        if not (w > 0 and h > 0):
            raise ValueError(f"box {list(v)} has no area")
        if x < -eps or y < -eps or x + w > 1 + eps or y + h > 1 + eps:
            raise ValueError(f"box {list(v)} reaches outside the image (x, y, w, h must stay within 0-1)")
        return tuple(round(min(1.0, max(0.0, c)), 6) for c in v)  # type: ignore[return-value]

    @classmethod
    def from_pixels(cls, dimension: Dimension, left: float, top: float, right: float, bottom: float,
                    width: int, height: int) -> Region:
        """The region of a pixel box (clipped to the image)."""
        x0, y0 = max(0.0, left) / width, max(0.0, top) / height
        x1, y1 = min(float(width), right) / width, min(float(height), bottom) / height
        return cls(dimension=dimension, box=(x0, y0, x1 - x0, y1 - y0))


def _no_regions(regions: dict[str, Any] | list[Any]) -> bool:
    return not regions


class Judgement(Record):
    """The verdict on the four candidates of one sample: defects per slot, answer derived from them.

    ``defects`` has an entry for every slot; an empty list means the candidate is acceptable.
    ``answer`` must equal the slots without defects: a judgement that says otherwise is inconsistent
    and is rejected (reported by the caller, never silently fixed). ``regions`` optionally says where
    a tagged defect is; a region for a dimension the slot is not tagged with is inconsistent too.
    Regions are left out of the stored form when there are none, so a judgement without regions
    hashes as it always did.
    """

    answer: list[Slot] = Field(description="acceptable slots, in slot order")
    defects: dict[Slot, list[Dimension]] = Field(description="defect dimensions per slot, all four slots")
    regions: dict[Slot, list[Region]] = Field(
        default_factory=dict, exclude_if=_no_regions,
        description="optional: where each tagged defect is, per slot (slots without regions left out)")

    @field_validator("answer")
    @classmethod
    def _answer_sorted_unique(cls, v: list[Slot]) -> list[Slot]:
        if len(set(v)) != len(v):
            raise ValueError(f"answer repeats a slot: {v}")
        return [s for s in SLOTS if s in v]

    @field_validator("defects")
    @classmethod
    def _defects_canonical(cls, v: dict[Slot, list[Dimension]]) -> dict[Slot, list[Dimension]]:
        missing = [s for s in SLOTS if s not in v]
        if missing:
            raise ValueError(f"defects missing for slot(s) {', '.join(missing)}")
        for slot, dims in v.items():
            if len(set(dims)) != len(dims):
                raise ValueError(f"slot {slot} repeats a dimension: {dims}")
        return {s: [d for d in DIMENSIONS if d in v[s]] for s in SLOTS}

    @field_validator("regions")
    @classmethod
    def _regions_canonical(cls, v: dict[Slot, list[Region]]) -> dict[Slot, list[Region]]:
        order = {d: i for i, d in enumerate(DIMENSIONS)}
        return {s: sorted(v[s], key=lambda r: (order[r.dimension], r.box)) for s in SLOTS if v.get(s)}

    @model_validator(mode="after")
    def _acceptable_iff_no_defect(self) -> Judgement:
        for slot in SLOTS:
            accepted = slot in self.answer
            tagged = bool(self.defects[slot])
            if accepted and tagged:
                raise ValueError(f"slot {slot} is marked acceptable but tagged {', '.join(self.defects[slot])}")
            if not accepted and not tagged:
                raise ValueError(f"slot {slot} is marked unacceptable but has no defect tag")
            untagged = sorted({r.dimension for r in self.regions.get(slot, ())} - set(self.defects[slot]))
            if untagged:
                raise ValueError(f"slot {slot} has a region for {', '.join(untagged)} but no such defect tag")
        return self

    @classmethod
    def from_defects(cls, defects: dict[str, list[str] | set[str] | frozenset[str]],
                     regions: dict[str, list[Region]] | None = None) -> Judgement:
        """Build from defects alone (the answer follows from them), with their regions if known."""
        full = {s: sorted(defects.get(s, ())) for s in SLOTS}
        return cls(answer=[s for s in SLOTS if not full[s]], defects=full,  # type: ignore[arg-type]
                   regions=regions or {})  # type: ignore[arg-type]

    @property
    def answer_text(self) -> str:
        return format_answer(set(self.answer))


# --------------------------------------------------------------------------- ingest


class Source(Record):
    """A product photo accepted as a source: stored once by content hash, with perceptual hashes."""

    id: Sha256
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    mode: Literal["RGB", "RGBA"]
    phash: Hash64
    dhash: Hash64
    origin: str = Field(description="where it came from: a file path or hf://dataset/split/index")
    created_at: datetime = Field(default_factory=utcnow)


class NearDuplicate(Record):
    """An image within the pHash threshold of an existing source: recorded and linked, not a source."""

    sha256: Sha256
    duplicate_of: Sha256
    distance: int = Field(ge=0, le=64)
    origin: str
    created_at: datetime = Field(default_factory=utcnow)


class Rejection(Record):
    """An input that could not be used, with a one-line reason."""

    origin: str
    reason: str
    created_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- generation


class Layout(Record):
    """Where the product sits on the generated canvas, as fractions of the canvas."""

    scale: float = Field(gt=0, description="product bounding-box height / canvas height")
    offset_x: float = Field(ge=0, le=1, description="product box centre x / canvas width")
    offset_y: float = Field(ge=0, le=1, description="product box centre y / canvas height")


class GenerationProvenance(Record):
    """Everything needed to reproduce one candidate from its seed alone."""

    backend: BackendName
    model_id: str
    revision: str | None = Field(default=None, description="resolved hub revision or local folder hash")
    pipeline_class: str
    scheduler: str | None = None
    diffusers_version: str | None = None
    torch_version: str | None = None
    prompt: str
    negative_prompt: str | None = None
    seed: int = Field(ge=0)
    pixel_seed: PixelSeed = Field(default="local", description="whether the seed decided the pixels (see PixelSeed)")
    steps: int | None = Field(default=None, ge=1)
    guidance: float | None = None
    strength: float | None = None
    size: int = Field(gt=0, description="canvas side in pixels")
    layout: Layout
    redraws: int = Field(default=0, ge=0, description="seeds skipped because the image repeated a sibling")
    injected: list[Dimension] = Field(default_factory=list, description="synthetic backend: defects drawn in")
    regions: list[Region] = Field(default_factory=list, exclude_if=_no_regions,
                                  description="synthetic backend: where each injected defect was drawn")
    mask: Literal["alpha", "sidecar", "background"] | None = Field(
        default=None, description="which rule found the product mask of the source")


class Candidate(Record):
    """One generated image in slot A–D of a sample."""

    sample_id: str
    slot: Slot
    sha256: Sha256
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    seed: int = Field(ge=0)
    provenance: GenerationProvenance


class Sample(Record):
    """One source and its four candidates: the unit of annotation and publication."""

    id: SampleId
    source_id: Sha256
    backend: BackendName
    signature: str = Field(description="hash of the generation settings that made the candidates")
    created_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- annotation


class Annotation(Record):
    """One annotator's judgement of one sample (annotator pseudonymised before it is stored)."""

    sample_id: str
    annotator: str = Field(description="pseudonym: keyed hash of the Label Studio user, never the user id")
    judgement: Judgement
    rationale: str | None = Field(default=None, description="free text the annotator wrote, if any")
    task_id: int | None = None
    annotation_id: int | None = None
    lead_time_s: float | None = Field(default=None, ge=0, description="seconds spent on the task (Label Studio)")
    updated_at: datetime = Field(default_factory=utcnow)


class Label(Record):
    """The label of a sample: its judgement and where it came from.

    Human labels take precedence over synthetic ones wherever both exist.
    """

    sample_id: str
    origin: LabelOrigin
    judgement: Judgement
    annotators: list[str] = Field(default_factory=list, description="pseudonyms that contributed")
    agreement: float | None = Field(default=None, ge=0, le=1, description="share of annotators agreeing")
    needs_review: bool = False
    overlap: int | None = Field(default=None, ge=1, description="annotators each task was handed to")
    left_out: list[str] = Field(
        default_factory=list, description="pseudonyms left out of the consensus (gold accuracy too low)"
    )
    reviewed_by: str | None = Field(default=None, description="pseudonym of the reviewer whose judgement settled it")
    updated_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- rationales


class Observation(Record):
    """What the screener saw in one candidate along one dimension."""

    slot: Slot
    dimension: Dimension
    defective: bool
    note: str = Field(min_length=1)


class CotReply(BaseModel):
    """The structure an LLM is asked to answer in (also the JSON schema sent as ``response_format``)."""

    model_config = ConfigDict(extra="ignore")

    observations: list[Observation]
    reasoning: str
    final_answer: list[Slot]


class Usage(Record):
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)


class Rationale(Record):
    """A chain-of-thought for one sample in one mode: valid, or failed with its reasons and raw output."""

    sample_id: str
    mode: CotMode
    status: RationaleStatus
    model: str | None = Field(default=None, description="model that wrote it; None for template/manual")
    prompt_hash: str | None = Field(default=None, description="hash of the prompt template used")
    judgement_hash: str | None = Field(
        default=None,
        description="hash of the judgement (answer and defects) it was written from; another label makes it stale",
    )
    think: str | None = None
    answer: list[Slot] | None = None
    observations: list[Observation] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="validator reasons, when failed")
    raw: str | None = Field(default=None, description="raw model output, kept on failure")
    attempts: int = Field(default=1, ge=0)
    usage: Usage = Field(default_factory=Usage)
    created_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _valid_has_text(self) -> Rationale:
        if self.status == "valid" and (not self.think or self.answer is None):
            raise ValueError("a valid rationale needs its reasoning and its answer")
        if self.status == "failed" and not self.errors:
            raise ValueError("a failed rationale must say why it failed")
        return self

    @property
    def text(self) -> str:
        """The published form: ``<think>…</think><answer>A,C</answer>``."""
        return format_rationale(self.think or "", set(self.answer or ()))


def format_rationale(think: str, answer: set[str] | frozenset[str]) -> str:
    return f"<think>{think.strip()}</think><answer>{format_answer(answer)}</answer>"


_RATIONALE_RE = re.compile(r"^<think>(?P<think>.*)</think>\s*<answer>(?P<answer>[^<]*)</answer>$", re.S)


def parse_rationale(text: str) -> tuple[str, frozenset[Slot]]:
    """Inverse of :func:`format_rationale` (strict)."""
    m = _RATIONALE_RE.match(text.strip())
    if not m:
        raise ValueError("not of the form <think>…</think><answer>…</answer>")
    return m["think"].strip(), parse_answer(m["answer"])


# --------------------------------------------------------------------------- publication


class DatasetVersion(Record):
    """A published version of the dataset."""

    version: SemVer
    content_hash: str = Field(description="hash over the published rows; equal hashes mean equal content")
    counts: dict[str, int] = Field(description="rows per split")
    out_dir: str | None = None
    repo_id: str | None = None
    commit_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Provenance(Record):
    """Where a published row came from (no secrets, annotators pseudonymised)."""

    generator: str
    seeds: list[int]
    annotators: list[str]
    agreement: float | None = None
    label_origin: LabelOrigin
    rationale_model: str | None = None
    overlap: int | None = Field(default=None, description="annotators each task was handed to (human labels)")
    left_out: list[str] = Field(default_factory=list, description="pseudonyms left out of the consensus (gold)")


class PublishedRow(Record):
    """One row of a published dataset, before its images are embedded."""

    sample_id: SampleId
    split: Split
    question: str
    answer: str = Field(description="canonical answer text, e.g. 'A,C' or 'none'")
    defects: dict[Slot, list[Dimension]]
    regions: dict[Slot, list[Region]] = Field(
        default_factory=lambda: {s: [] for s in SLOTS},
        description="where the defects are, per slot (all four slots; empty where none were marked)")
    rationale: str | None = None
    rationale_mode: CotMode | None = None
    difficulty: float | None = Field(default=None, ge=0, le=1)
    provenance: Provenance

    @field_validator("rationale")
    @classmethod
    def _rationale_form(cls, v: str | None) -> str | None:
        if v is not None:
            parse_rationale(v)
        return v

    @field_validator("regions")
    @classmethod
    def _regions_every_slot(cls, v: dict[Slot, list[Region]]) -> dict[Slot, list[Region]]:
        return {s: list(v.get(s, ())) for s in SLOTS}


class Run(Record):
    """One invocation of a stage: its parameters and what it did."""

    id: int
    stage: str
    params: dict[str, Any]
    status: Literal["running", "done", "failed", "interrupted"]
    summary: dict[str, int] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = None


#: Every model exported to ``schemas/`` (file stem -> model).
EXPORTED: dict[str, type[BaseModel]] = {
    "judgement": Judgement,
    "region": Region,
    "source": Source,
    "near_duplicate": NearDuplicate,
    "rejection": Rejection,
    "candidate": Candidate,
    "sample": Sample,
    "annotation": Annotation,
    "label": Label,
    "cot_reply": CotReply,
    "rationale": Rationale,
    "dataset_version": DatasetVersion,
    "published_row": PublishedRow,
    "run": Run,
}
