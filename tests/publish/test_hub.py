"""``--repo-id``: the Hub calls huggingface_hub makes, against a local endpoint (``HF_ENDPOINT``).

This checks the CLIENT's calls (repo create, README validation, tree listing, preupload, one commit,
the version tag, the token in the header), not the Hub itself: the local server only answers those
calls and keeps what was committed, so the test can compare it with the published folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.publish.helpers import relabel
from tests.publish.hub_server import fake_hub

TOKEN = "hf_test_token_never_stored"
REPO = "acme/screening"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_upload_commit_tag_and_record(
    ws: Workspace, ws_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = make_samples(ws, 16)
    with fake_hub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        res = cli.invoke(app, ["publish", "--version", "1.0.0", "--repo-id", REPO, "--private", "--json"])
        assert res.exit_code == 0, res.output
        first = json.loads(res.stdout)
        repo = hub.repos[REPO]
        assert repo.private
        assert repo.files == _files(Path(first["out"]))
        assert repo.tags == {"v1.0.0": first["commit_id"]} and repo.commits == [first["commit_id"]]
        prefix = f"/api/datasets/{REPO}"
        assert hub.paths() == [
            "POST /api/repos/create",
            f"GET {prefix}/refs",  # what an earlier, killed run left (nothing here)
            f"GET {prefix}/tree/main",
            "POST /api/validate-yaml",
            f"POST {prefix}/preupload/main",
            f"POST {prefix}/commit/main",
            f"POST {prefix}/tag/{first['commit_id']}",
        ]
        assert all(c.auth == f"Bearer {TOKEN}" for c in hub.calls)
        commit = next(c for c in hub.calls if c.path.endswith("/commit/main"))
        assert sum(item["key"] == "file" for item in commit.body) == len(repo.files)  # one commit, all files

        # 1.1.0 with fewer rows: the old shards are deleted in the same commit, the new tag points at it
        with ws.transaction() as db:
            db.execute("DELETE FROM labels WHERE sample_id IN (?, ?, ?, ?, ?, ?, ?, ?)", ids[:8])
        relabel(ws, ids[8], {"B": ["physical_shadow"]})
        res = cli.invoke(app, ["publish", "--version", "1.1.0", "--repo-id", REPO, "--json"])
        assert res.exit_code == 0, res.output
        second = json.loads(res.stdout)
        assert repo.files == _files(Path(second["out"]))
        assert repo.tags["v1.1.0"] == second["commit_id"] != first["commit_id"]
        assert hub.paths()[7] == "POST /api/repos/create"  # exists: answered 409, which the client accepts
        assert hub.paths()[9] == f"GET {prefix}/commits/{first['commit_id']}"  # the head is 1.0.0's, not ours

    recorded = {v.version: v for v in store.get_versions(ws.db)}
    assert recorded["1.0.0"].commit_id == first["commit_id"] and recorded["1.0.0"].repo_id == REPO
    assert recorded["1.1.0"].commit_id == second["commit_id"]
    assert TOKEN.encode() not in (ws_path / "aesdata.db").read_bytes()
    assert all(TOKEN not in text for text in (repo.files["README.md"].decode(), json.dumps(second)))


def test_no_token_is_one_clear_error_and_a_later_run_uploads(
    ws: Workspace, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_samples(ws, 6)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    res = cli.invoke(app, ["publish", "--version", "1.0.0", "--repo-id", REPO])
    assert res.exit_code == 1 and "no Hub token" in res.stderr and "HF_TOKEN" in res.stderr
    (version,) = store.get_versions(ws.db)  # the local version stands; only the upload is missing
    assert version.commit_id is None
    with fake_hub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        res = cli.invoke(app, ["publish", "--version", "1.0.0", "--repo-id", REPO, "--json"])
        assert res.exit_code == 0, res.output
        assert "uploaded to acme/screening" in json.loads(res.stdout)["status"]
        assert hub.repos[REPO].tags == {"v1.0.0": json.loads(res.stdout)["commit_id"]}
