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
    rendered = list((cot_ws_path / "cache" / "cot-images").rglob("*.jpg"))
    assert len(rendered) == 5 * N  # the images were rendered in the run (a cold cache), by the pool
    assert len(environs) >= 3, environs.keys()  # the fork server and two render workers at least
    for pid, raw in environs.items():
        assert not any(value.encode() in raw for value in [*SECRETS.values(), API_KEY]), pid
        assert b"PATH=" in raw, pid
    assert query(cot_ws_path, "SELECT COUNT(*) FROM work_claims") == [(0,)]
