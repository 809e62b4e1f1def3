"""Secrets of the caller never reach the processes aesdata starts: read from the real Label Studio's
``/proc/PID/environ`` (the server and every process it spawned)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from aesdata.annotate.server import TOKEN_ENV
from tests.annotate.throwaway import start_throwaway

SECRETS = {
    "OPENAI_API_KEY": "sk-aesdata-test-openai-secret",
    "HF_TOKEN": "hf_aesdatatestsecret",
    "AWS_SECRET_ACCESS_KEY": "aesdata-test-aws-secret",
    TOKEN_ENV: "aesdata-test-client-token",  # the client's copy; the server gets its own variable
}


@pytest.mark.slow
def test_label_studio_runs_without_our_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOST", "0.0.0.0")
    server = start_throwaway(tmp_path)
    try:
        assert server.process is not None
        root = psutil.Process(server.process.pid)
        procs = [root, *root.children(recursive=True)]
        environs = {p.pid: Path(f"/proc/{p.pid}/environ").read_bytes() for p in procs}
    finally:
        server.stop()
    for pid, raw in environs.items():
        names = {item.split(b"=", 1)[0].decode() for item in raw.split(b"\0") if item}
        assert not names & {*SECRETS, "HOST"}, (pid, names & {*SECRETS, "HOST"})
        assert not any(value.encode() in raw for value in SECRETS.values()), pid
    own = {k.decode(): v.decode() for k, _, v in
           (item.partition(b"=") for item in environs[root.pid].split(b"\0") if item)}
    assert own["LABEL_STUDIO_USER_TOKEN"] == server.token and "PATH" in own and "HOME" in own
