"""The one clock of stored timestamps, free of pydantic (the workspace needs it to open, before any model)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware now, so stored timestamps compare across machines."""
    return datetime.now(UTC)
