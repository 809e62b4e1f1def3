"""Replies a killed ``aesdata cot`` had received are not bought again (aesdata.llm.replies).

Every sample's first reply is wrong, so it needs a repair, and the repairs stall: the CLI is SIGKILLed
once the first replies are in the ledger and the repairs are in flight. The re-run (a fresh server) asks
for the repairs only, built on the kept first replies, except for the sample whose label changed
meanwhile: its kept reply answered another question, so it is asked again from the start.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from aesdata import store
from aesdata.schema import Label
from aesdata.workspace import Workspace
from tests.cot.conftest import API_KEY, MAX_SIDE, query
from tests.cot.scripted import ScriptedModel
from tests.factories import make_samples, random_judgement
from tests.openai_server import OpenAIServer

EXE = str(Path(sys.executable).with_name("aesdata"))
N = 4


def _cot(server: OpenAIServer) -> list[str]:
    return [EXE, "cot", "--mode", "answer-driven", "--base-url", server.base_url, "--concurrency", str(N), "--json"]


def _repairs(server: OpenAIServer) -> list[bool]:
    """Per request received: is it a repair (it carries the model's earlier reply)?"""
    return [any(m["role"] == "assistant" for m in r.body["messages"]) for r in server.requests]


def test_a_rerun_takes_the_replies_a_killed_run_received_and_asks_only_the_rest(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, N, seed=57)
        stalled = ScriptedModel.for_workspace(ws, MAX_SIDE, {sid: ["wrong", "stall"] for sid in ids}, stall_s=60)
    with OpenAIServer(stalled, api_key=API_KEY) as server:
        proc = subprocess.Popen(_cot(server), env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while query(cot_ws_path, "SELECT COUNT(*) FROM cot_calls")[0][0] < N or sum(_repairs(server)) < N:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert query(cot_ws_path, "SELECT COUNT(*) FROM rationales") == [(0,)]
    assert query(cot_ws_path, "SELECT COUNT(*) FROM llm_replies") == [(N,)]  # the first replies, kept

    relabelled = ids[0]
    with Workspace.open(cot_ws_path) as ws, ws.transaction() as db:
        old = store.get_label(db, relabelled).judgement  # type: ignore[union-attr]
        rng = random.Random(1)
        new = next(j for j in iter(lambda: random_judgement(rng), None) if j.answer != old.answer)
        store.upsert_label(db, Label(sample_id=relabelled, origin="synthetic", judgement=new))
        model = ScriptedModel.for_workspace(ws, MAX_SIDE)  # every reply correct now
    with OpenAIServer(model, api_key=API_KEY) as server:
        done = subprocess.run(_cot(server), env=os.environ.copy(), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        assert sorted(_repairs(server)) == [False] + [True] * (N - 1)  # the relabelled sample's first request
    attempts = dict(query(cot_ws_path, "SELECT sample_id, json_extract(record, '$.attempts') FROM rationales"
                                       " WHERE status = 'valid'"))
    assert attempts == {sid: 1 if sid == relabelled else 2 for sid in ids}
    # each reply is ledgered once: the killed run's first replies and the re-run's requests
    assert query(cot_ws_path, "SELECT COUNT(*) FROM cot_calls") == [(N + N,)]
    assert query(cot_ws_path, "SELECT COUNT(*) FROM llm_replies") == [(0,)]  # they go with the results
