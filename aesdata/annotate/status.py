"""``aesdata annotate status``: per project, what was pushed, annotated and flagged (local rows only,
so it works while the server is down)."""

from __future__ import annotations

from typing import Any

from aesdata.workspace import Workspace


def project_status(ws: Workspace) -> list[dict[str, Any]]:
    """One row per recorded project: tasks pushed, annotated, by number of annotators, in review."""
    rows = []
    for project in ws.db.execute("SELECT id, url, title, project_id, overlap FROM ls_projects ORDER BY id").fetchall():
        per_sample = ws.db.execute(
            "SELECT t.sample_id, COUNT(a.annotator) AS n FROM ls_tasks t LEFT JOIN annotations a"
            " ON a.sample_id = t.sample_id WHERE t.project = ? GROUP BY t.sample_id",
            (project["id"],),
        ).fetchall()
        histogram: dict[int, int] = {}
        for r in per_sample:
            if r["n"]:
                histogram[r["n"]] = histogram.get(r["n"], 0) + 1
        review = ws.db.execute(
            "SELECT COUNT(*) FROM labels l JOIN ls_tasks t ON t.sample_id = l.sample_id"
            " WHERE t.project = ? AND l.origin = 'human' AND l.needs_review = 1",
            (project["id"],),
        ).fetchone()[0]
        rows.append(
            {
                "project": project["title"],
                "url": project["url"],
                "project_id": project["project_id"],
                "overlap": project["overlap"],
                "pushed": len(per_sample),
                "annotated": sum(histogram.values()),
                **{f"with_{n}_annotators": histogram[n] for n in sorted(histogram)},
                "in_review": int(review),
            }
        )
    return rows
