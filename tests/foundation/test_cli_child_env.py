"""Secrets of the caller never reach the processes aesdata starts: read from the real Label Studio's
``/proc/PID/environ`` (the server and every process it spawned)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from aesdata.annotate.server import TOKEN_ENV
from tests.annotate.throwaway import start_throwaway
from tests.procenv import environs_while_running

PACKAGE = Path(__file__).resolve().parents[2] / "aesdata"
STARTERS = {"run", "Popen", "call", "check_call", "check_output", "execve", "spawnve"}

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
        assert server.accepts_token()  # it works on the allow-listed environment
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


def test_every_process_aesdata_starts_is_given_an_environment() -> None:
    """A new subprocess call without ``env=`` would hand the caller's whole environment on."""
    missing, found = [], 0
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in STARTERS
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in {"subprocess", "os"}):
                found += 1
                if not any(k.arg == "env" for k in node.keywords):
                    missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert found >= 3  # server start, manage, install
    assert missing == []


def test_ingests_decoders_hold_none_of_our_secrets(tmp_path: Path, ws_path: Path) -> None:
    """The pool that decodes untrusted files: every process under ``aesdata ingest``, read while it runs."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(48):
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i:02d}.jpg")
    env = {**os.environ, **SECRETS, "AESDATA_WORKSPACE": str(ws_path)}
    proc = subprocess.Popen([sys.executable, "-m", "aesdata.cli.main", "ingest", str(folder), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    environs = environs_while_running(proc)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert len(environs) >= 3, environs.keys()  # the fork server and the two decoders at least
    for pid, raw in environs.items():
        assert not any(value.encode() in raw for value in SECRETS.values()), pid
        assert b"PATH=" in raw, pid
