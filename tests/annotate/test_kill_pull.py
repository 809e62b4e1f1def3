"""The kill harness (tests/integrity/harness.py) on ``annotate pull``, next to the session's real Label Studio.

Samples are pushed and annotated by two people once; each point pulls into a copy of that workspace as a
CLI subprocess SIGKILLed at a seeded random point (events: committed transactions and every task applied),
resumes, and must end as an uninterrupted pull ended: annotations, labels and task stamps row for row.
"""

from __future__ import annotations

import signal
from pathlib import Path

from aesdata.annotate.push import push
from aesdata.workspace import Workspace
from tests.annotate.test_labelstudio import A_OK, AB_OK, NONE_OK, task_ids
from tests.factories import make_samples
from tests.integrity import harness

TABLES = ("annotations", "labels", "ls_tasks", "ls_projects")
HOOKS = ("aesdata.annotate.pull:_apply_task",)


def _annotated(label_studio, ls_ws: Workspace) -> Path:  # noqa: ANN001 (the session fixture's type)
    ids = make_samples(ls_ws, 5, labelled=False)
    push(ls_ws, files_root=label_studio.server.files_root)
    tasks = task_ids(ls_ws)
    for i, sid in enumerate(ids):
        label_studio.annotate(tasks[sid], (A_OK, AB_OK, NONE_OK)[i % 3], rationale=f"note {i}" if i % 2 else None)
        if i % 2 == 0:
            label_studio.annotate(tasks[sid], (AB_OK, A_OK, NONE_OK)[i % 3], "second")
    ls_ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ls_ws.root


def _try(label_studio, ls_ws: Workspace, tmp_path: Path, seed: int, n: int) -> dict[str, int]:  # noqa: ANN001
    init = _annotated(label_studio, ls_ws)
    base = harness.clone(init, tmp_path / "base" / "ws")
    with harness.counting(HOOKS) as seen:
        harness.run_cli(["annotate", "pull"], base)
    want = harness.state(base, TABLES)
    assert len(want.tables["annotations"]) == 8
    figures = {"tried": 0, "killed": 0, "equal": 0}
    for i, point in enumerate(harness.points(seed, seen[0], n)):
        ws_path = harness.clone(init, tmp_path / f"p{i}" / "ws")
        code = harness.kill_at(point, ["annotate", "pull"], ws_path, hooks=HOOKS)
        figures["tried"] += 1
        figures["killed"] += code == -signal.SIGKILL
        harness.run_cli(["annotate", "pull"], ws_path)
        got = harness.state(ws_path, TABLES)
        harness.assert_same(got, want, point)
        assert got.runs[-1] == "done" and set(got.runs) <= {"done", "interrupted"}, f"{point}: runs {got.runs}"
        figures["equal"] += 1
    print(f"kill harness annotate pull: {seen[0]} events, {figures}")
    return figures


def test_pull_killed_at_random_points_then_resumed(label_studio, ls_ws, tmp_path) -> None:  # noqa: ANN001
    figures = _try(label_studio, ls_ws, tmp_path, seed=15, n=harness.POINTS)
    assert figures["tried"] == figures["equal"] == harness.POINTS
    assert figures["killed"] >= harness.POINTS - 2  # a 'late' kill may come after a tiny run ended
