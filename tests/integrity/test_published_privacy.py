"""Nothing published names a local path, the host or the user.

The workspace lives under a recognisable path (``.../secret-user-XYZ/ws``), with the local diffusers model
folder inside it; generate runs with that model, then publish writes a folder and uploads it to the local
Hub. Every byte publish wrote (parquet files raw and decoded, card, anything else in the folder, and
every request body the Hub received) is searched for the path, the host name and the user name.
"""

from __future__ import annotations

import getpass
import json
import random
import re
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.generate import random_pipelines
from aesdata.generate.demo_sources import write_demo_sources
from aesdata.schema import Label
from aesdata.workspace import Workspace
from tests.factories import random_judgement
from tests.publish.hub_server import fake_hub

SECRET = "secret-user-XYZ"


#: Shorter names (``vm``, ``root``) occur by chance in compressed image bytes: they are searched for as
#: words, in the text that publish wrote or sent (card, decoded parquet values, Hub request bodies).
SHORT = 6
TEXT = ("README.md", "decoded parquet", "hub requests")


def _needles(root: Path) -> dict[str, bytes]:
    return {"path": str(root).encode(), "secret": SECRET.encode(), "home": str(Path.home()).encode(),
            "host": socket.gethostname().encode(), "user": getpass.getuser().encode()}


def _found(needle: bytes, name: str, data: bytes) -> bool:
    if len(needle) >= SHORT:
        return needle in data
    word = rb"(?<![A-Za-z0-9_])" + re.escape(needle) + rb"(?![A-Za-z0-9_])"
    return name in TEXT and re.search(word, data) is not None


def _decoded_text(folder: Path) -> bytes:
    """Every non-image value of every parquet file, and its metadata, as text: compression may hide a
    string from a raw byte search."""
    parts = []
    for path in sorted(folder.rglob("*.parquet")):
        table = pq.read_table(path)
        parts.append(str(table.schema.metadata))
        for row in table.drop_columns(["source", "candidates"]).to_pylist():
            parts.append(json.dumps(row))
        parts.append(json.dumps([c.get("path") for c in table.column("source").to_pylist()]))
        parts.append(json.dumps([[c.get("path") for c in cands] for cands in table.column("candidates").to_pylist()]))
    return "\n".join(parts).encode()


@pytest.mark.slow
def test_publish_names_no_local_path_host_or_user(tmp_path: Path, cli: CliRunner,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / SECRET
    ws_path = root / "ws"
    monkeypatch.setenv("AESDATA_WORKSPACE", str(ws_path))
    with Workspace.init(ws_path) as ws:
        model = ws_path / "models" / "tiny-inpaint"
        random_pipelines.build("tiny", root / "tokenizer-src").save_pretrained(model)
        write_demo_sources(ws_path / "photos", 2, seed=4)
        for args in (["ingest", str(ws_path / "photos")],
                     ["generate", "--model", str(model), "--size", "64", "--steps", "2"]):
            res = cli.invoke(app, args)
            assert res.exit_code == 0, res.output
        rng = random.Random(0)
        with ws.transaction() as db:
            for sample in store.iter_samples(db):
                store.upsert_label(db, Label(sample_id=sample.id, origin="human", judgement=random_judgement(rng),
                                             annotators=["ann-0123456789abcdef"]))
        res = cli.invoke(app, ["cot", "--mode", "template"])
        assert res.exit_code == 0, res.output
        with fake_hub() as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
            monkeypatch.setenv("HF_TOKEN", "hf_test_token")
            res = cli.invoke(app, ["publish", "--version", "1.0.0", "--repo-id", "acme/private", "--json"])
            assert res.exit_code == 0, res.output
            sent = json.dumps([c.body for c in hub.calls if c.body is not None]).encode()
            uploaded = b"\n".join(hub.repos["acme/private"].files.values())
    folder = Path(json.loads(res.stdout)["out"])
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".parquet", ".md"}
    generators = {r["provenance"]["generator"] for p in files if p.suffix == ".parquet"
                  for r in pq.read_table(p, columns=["provenance"]).to_pylist()}
    assert len(generators) == 1 and generators.pop().startswith("diffusers:tiny-inpaint@folder-sha256:")
    haystacks = {p.name: p.read_bytes() for p in files} | {
        "decoded parquet": _decoded_text(folder), "hub requests": sent, "hub files": uploaded}
    for what, needle in _needles(root).items():
        for name, data in haystacks.items():
            assert not _found(needle, name, data), f"{what} {needle!r} found in {name}"
