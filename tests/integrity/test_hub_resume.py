"""A Hub publish killed between upload, tag and record completes on re-run, with one commit and one tag.

The CLI runs as a subprocess; the local Hub kills it once the commit (or the tag) took effect and
before the client read the answer, or the client kills itself after tagging and before recording the
commit id. The re-run adopts what is there: no second commit, no 409 on the tag. A tag that points at
another commit is a clear error, and nothing is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.publish.hub_server import Call, FakeHub, Repo, fake_hub

REPO = "acme/screening"
ARGS = ["publish", "--version", "1.0.0", "--repo-id", REPO, "--test-fraction", "0.3"]

# ``aesdata ARGS`` that SIGKILLs itself as it is about to record the commit id (argv[1] == "record").
CHILD = """
import os, signal, sys
from aesdata.publish import versions
if sys.argv[1] == "record":
    versions.record_upload = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["aesdata", *sys.argv[2:]]
from aesdata.cli.main import main
main()
"""


def _run_killed(ws_path: Path, hub: FakeHub, where: str) -> None:
    env = {**os.environ, "AESDATA_WORKSPACE": str(ws_path), "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, where, *ARGS], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)

    def on_call(call: Call) -> None:
        if call.path.endswith(f"/{where}/main") or (where == "tag" and "/tag/" in call.path):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    hub.on_call = on_call if where != "record" else None
    _, err = proc.communicate(timeout=180)
    hub.on_call = None
    assert proc.returncode == -signal.SIGKILL, err


@pytest.mark.parametrize("where", ["commit", "tag", "record"])
def test_killed_between_upload_tag_and_record_completes_on_rerun(
    where: str, ws: Workspace, ws_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_samples(ws, 8)
    with fake_hub() as hub:
        _run_killed(ws_path, hub, where)
        repo = hub.repos[REPO]
        assert len(repo.commits) == 1 and repo.tags == ({} if where == "commit" else {"v1.0.0": repo.commits[0]})
        (version,) = store.get_versions(ws.db)
        assert version.commit_id is None  # the local version stands; the upload is not recorded

        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        before = len(hub.calls)
        res = cli.invoke(app, [*ARGS, "--json"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        assert "uploaded to acme/screening" in summary["status"]
        assert repo.commits == [summary["commit_id"]] and repo.tags == {"v1.0.0": summary["commit_id"]}
        assert not any(c.path.endswith("/commit/main") for c in hub.calls[before:])  # adopted, not re-uploaded
    (version,) = store.get_versions(ws.db)
    assert version.commit_id == summary["commit_id"] and version.repo_id == REPO


def test_a_tag_pointing_elsewhere_is_a_clear_error(ws: Workspace, cli: CliRunner,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_samples(ws, 6)
    with fake_hub() as hub:
        hub.repos[REPO] = Repo(private=False, commits=["f" * 40], titles={"f" * 40: "someone else's"},
                               tags={"v1.0.0": "f" * 40})
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        res = cli.invoke(app, ARGS)
        assert res.exit_code == 1
        assert f"{REPO}: tag v1.0.0 already points at commit ffffffffffff, which is not this version's" in res.stderr
        assert "delete the tag v1.0.0" in res.stderr
        assert hub.repos[REPO].commits == ["f" * 40]  # nothing uploaded
    (version,) = store.get_versions(ws.db)
    assert version.commit_id is None
