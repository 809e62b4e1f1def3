"""A local HTTP server that answers the few Hub API calls ``huggingface_hub`` makes to publish a dataset.

It checks the CLIENT's calls (paths, payloads, auth header, order), not the Hub: it keeps files,
commits (id and title, newest last) and tags per repo, answers ``preupload`` with ``regular`` for every
file (so content travels base64 inside the commit payload and the LFS/Xet transfer protocols are not
exercised), lists refs and commit history, and records every request. Calls it does not know get a
404 and are recorded too, so a test sees them.

``on_call`` (when set) runs after a request took effect and before it is answered: a test kills the
client there to stop a publish between any two steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass
class Call:
    method: str
    path: str
    auth: str | None
    body: Any = None


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)  # commit -> title
    tags: dict[str, str] = field(default_factory=dict)  # tag -> commit

    def history(self, revision: str) -> list[str] | None:
        """Commits reachable from ``revision`` (main, a tag or a commit id), newest first."""
        commit = self.commits[-1] if revision == "main" and self.commits else self.tags.get(revision, revision)
        if commit not in self.commits:
            return None
        return self.commits[: self.commits.index(commit) + 1][::-1]


@dataclass
class FakeHub:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    repos: dict[str, Repo] = field(default_factory=dict)
    on_call: Callable[[Call], None] | None = None

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _reply(self, status: int, payload: Any) -> None:
            if hub.on_call is not None:
                hub.on_call(hub.calls[-1])
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed (on_call): the call took effect, its answer is lost

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = unquote(urlparse(self.path).path)
            hub.calls.append(Call("GET", path, self.headers.get("Authorization")))
            parts = path.split("/")
            # /api/datasets/{org}/{name}/tree/{revision}
            if len(parts) >= 7 and parts[:3] == ["", "api", "datasets"] and parts[5] == "tree":
                repo = hub.repos.get(f"{parts[3]}/{parts[4]}")
                if repo is None:
                    return self._reply(404, {"error": "Repository not found"})
                files = [
                    {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for p, b in sorted(repo.files.items())
                ]
                return self._reply(200, files)
            repo = hub.repos.get(f"{parts[3]}/{parts[4]}") if len(parts) >= 6 else None
            # /api/datasets/{org}/{name}/refs
            if repo is not None and len(parts) == 6 and parts[5] == "refs":
                branches = [{"name": "main", "ref": "refs/heads/main", "targetCommit": c} for c in repo.commits[-1:]]
                tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in repo.tags.items()]
                return self._reply(200, {"branches": branches, "converts": [], "tags": tags})
            # /api/datasets/{org}/{name}/commits/{revision}
            if repo is not None and len(parts) == 7 and parts[5] == "commits":
                history = repo.history(parts[6])
                if history is None:
                    return self._reply(404, {"error": f"Invalid rev id: {parts[6]}"})
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                return self._reply(200, [{"id": c, "title": repo.titles[c], "message": "", "date": now,
                                          "authors": [{"user": "aesdata-test"}]} for c in history])
            self._reply(404, {"error": f"fake hub: no route for GET {path}"})

        def do_POST(self) -> None:  # noqa: N802
            path = unquote(urlparse(self.path).path)
            raw = self._body()
            ndjson = self.headers.get("Content-Type", "").startswith("application/x-ndjson")
            body = [json.loads(line) for line in raw.splitlines() if line] if ndjson else json.loads(raw or b"null")
            hub.calls.append(Call("POST", path, self.headers.get("Authorization"), body))
            if path == "/api/repos/create":
                repo_id = f"{body['organization']}/{body['name']}"
                url = f"{hub.url}/datasets/{repo_id}"
                if repo_id in hub.repos:
                    return self._reply(409, {"error": "You already created this dataset repo", "url": url})
                hub.repos[repo_id] = Repo(private=body.get("visibility") == "private")
                return self._reply(200, {"url": url, "name": repo_id})
            if path == "/api/validate-yaml":
                return self._reply(200, {"errors": [], "warnings": []})
            parts = path.split("/")
            if len(parts) < 7 or parts[:3] != ["", "api", "datasets"]:
                return self._reply(404, {"error": f"fake hub: no route for POST {path}"})
            repo_id, action = f"{parts[3]}/{parts[4]}", parts[5]
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._reply(404, {"error": "Repository not found"})
            if action == "preupload":
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in body["files"]]
                return self._reply(200, {"files": files})
            if action == "commit":
                for item in body:
                    value = item["value"]
                    if item["key"] == "header":
                        title = value["summary"]
                    elif item["key"] == "file":
                        repo.files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "deletedFile":
                        repo.files.pop(value["path"], None)
                oid = hashlib.sha1(f"{repo_id}:{len(repo.commits)}".encode()).hexdigest()
                repo.commits.append(oid)
                repo.titles[oid] = title
                return self._reply(
                    200, {"commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid, "success": True}
                )
            if action == "tag":
                if body["tag"] in repo.tags:
                    return self._reply(409, {"error": "tag exists"})
                if repo.history(parts[6]) is None:
                    return self._reply(404, {"error": f"Invalid rev id: {parts[6]}"})
                repo.tags[body["tag"]] = repo.history(parts[6])[0]
                return self._reply(200, {})
            self._reply(404, {"error": f"fake hub: no route for POST {path}"})

    return Handler


@contextmanager
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
