"""``aesdata report``: write the static HTML report of a workspace into a folder.

``DIR/index.html`` and ``DIR/img/*.jpg`` (thumbnails of the images shown), nothing else: open the file
in a browser, or copy the folder anywhere. The folder is written under a temporary name and swapped in
whole, so a kill never leaves half a report; an existing folder is replaced only if it is a report.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import ImageOps

from aesdata.errors import AesdataError
from aesdata.report.collect import ReportData, collect
from aesdata.report.page import render
from aesdata.workspace import Workspace

#: Thumbnail side in pixels (twice the size drawn, for sharp high-density screens).
THUMB = 264
MARKER = "index.html"


def _shas(data: ReportData) -> set[str]:
    shown = [s for group in data.per_dimension.values() for s in group] + data.disagreements
    return {sha for s in shown for sha in (s.source_sha, *(c.sha256 for c in s.candidates))}


def _thumbnails(ws: Workspace, shas: set[str], folder: Path) -> None:
    folder.mkdir(parents=True)
    for sha in sorted(shas):  # sha256 hex from validated records: safe as a file name
        try:
            img = ws.blobs.open(sha)
        except OSError as exc:
            raise AesdataError(f"image {sha[:12]}: unreadable in the blob store: {exc.strerror or exc}") from None
        ImageOps.fit(img.convert("RGB"), (THUMB, THUMB)).save(folder / f"{sha}.jpg", format="JPEG", quality=85)


def _replace(tmp: Path, out: Path) -> None:
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file()):
            shutil.rmtree(tmp)
            raise AesdataError(f"{out}: exists and is not a report folder", hint="pass another --out")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def write_report(ws: Workspace, *, version: str | None = None, out: Path | None = None,
                 evals: list[Path] | None = None) -> dict[str, object]:
    """Collect, draw and write the report; returns what it holds (for the command's summary)."""
    out = (out or ws.root / "report").resolve()
    if evals is None:
        default = ws.root / "reports"
        evals = [default] if default.is_dir() else []
    data = collect(ws, version, evals)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shas = _shas(data)
    _thumbnails(ws, shas, tmp / "img")
    (tmp / MARKER).write_text(render(data, lambda sha: f"img/{sha}.jpg"), encoding="utf-8")
    _replace(tmp, out)
    return {"report": str(out / MARKER), "version": data.version or "unpublished", "rows": data.totals["rows"],
            "images": len(shas), "annotators": len(data.annotators.get("annotators") or []),
            "disagreements": len(data.disagreements), "eval_reports": len(data.evals),
            "bad_eval_reports": len(data.problems)}
