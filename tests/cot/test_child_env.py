"""The processes that render a cot run's images hold none of the caller's secrets: every process under a
real ``aesdata cot`` with a cold image cache, its ``/proc/PID/environ`` read while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aesdata.workspace import Workspace
from tests.cot.conftest import API_KEY, MAX_SIDE, query
from tests.cot.scripted import ScriptedModel
from tests.factories import make_samples
from tests.openai_server import OpenAIServer
from tests.procenv import environs_while_running

EXE = str(Path(sys.executable).with_name("aesdata"))
N = 16
SECRETS = {"OPENAI_API_KEY": "sk-aesdata-test-openai-secret", "HF_TOKEN": "hf_aesdatatestsecret"}


def test_the_render_pool_holds_no_secret(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, N, seed=41)
        model = ScriptedModel.for_workspace(ws, MAX_SIDE)
    env = {**os.environ, **SECRETS}  # and the endpoint's key, AESDATA_COT_KEY (the conftest's)
    with OpenAIServer(model, api_key=API_KEY, latency=0.2) as server:
        args = [EXE, "cot", "--mode", "answer-driven", "--base-url", server.base_url, "--concurrency", "4", "--json"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        environs = environs_while_running(proc)
        out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["valid"] == N
    rendered = list((cot_ws_path / "cache" / "cot-images").rglob("*.url"))
    assert len(rendered) == 5 * N  # the images were rendered in the run (a cold cache), by the pool
    assert len(environs) >= 3, environs.keys()  # the fork server and two render workers at least
    for pid, raw in environs.items():
        assert not any(value.encode() in raw for value in [*SECRETS.values(), API_KEY]), pid
        assert b"PATH=" in raw, pid
    assert query(cot_ws_path, "SELECT COUNT(*) FROM work_claims") == [(0,)]


PROBE = """
import os, sys
seen = []
def hook(event, args):
    if event == "subprocess.Popen":
        env = args[3] if args[3] is not None else dict(os.environ)
        seen.append((list(map(str, args[1])), any(SECRET in v for v in env.values())))
SECRET = os.environ["OPENAI_API_KEY"]
sys.addaudithook(hook)
from aesdata.llm.client import LLMClient
LLMClient(model="m", base_url="http://127.0.0.1:9/v1", api_key=SECRET)
import platform
platform.platform()  # what the openai client reads for its headers: answered from the probe's cache
print(seen)
print(os.environ["OPENAI_API_KEY"] == SECRET)
"""


def test_making_a_client_starts_no_process_with_the_secrets() -> None:
    """Python runs ``uname -p`` the first time the platform's processor is read (the openai client reads it
    for its headers): that child holds no secret, and the caller's environment is intact afterwards."""
    env = {**os.environ, **SECRETS}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen, intact = done.stdout.strip().splitlines()
    started = eval(seen)  # noqa: S307 (the probe's own repr of a list)
    assert any(args[:1] == ["uname"] for args, _ in started), started  # the probe ran it, in this process
    assert not any(leaked for _, leaked in started), started
    assert intact == "True"
