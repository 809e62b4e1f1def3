"""The blob store behind an fsspec URL (what Ray workers write to), and the local folder it stays by default."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from PIL import Image

from aesdata.blobs import TMP_DIR, BlobStore, RemoteBlobStore, encode_png, open_store
from aesdata.errors import AesdataError
from aesdata.workspace import Workspace


def _png(colour: tuple[int, int, int]) -> bytes:
    return encode_png(Image.new("RGB", (8, 8), colour))


def test_open_store_keeps_folders_local_and_sends_urls_to_fsspec(tmp_path: Path) -> None:
    default = tmp_path / "ws" / "blobs"
    assert type(open_store("", default)) is BlobStore and open_store("", default).root == default
    assert open_store("shared", default, base=tmp_path).root == tmp_path / "shared"
    assert open_store(f"file://{tmp_path}/x", default).root == tmp_path / "x"
    remote = open_store("memory://aesdata-test/open", default)
    assert isinstance(remote, RemoteBlobStore) and remote.url == "memory://aesdata-test/open"
    with pytest.raises(AesdataError, match="not a local folder"):
        remote.path("ab" * 32)
    with pytest.raises(AesdataError, match="nosuchproto://x"):
        open_store("nosuchproto://x/y", default)


@pytest.mark.parametrize("url", ["memory://aesdata-test/store", "local://{tmp}/remote"])
def test_remote_store_round_trip_is_idempotent_and_leaves_no_temporary(url: str, tmp_path: Path) -> None:
    """memory:// is an object store (one atomic write); local:// is a filesystem (temporary name, move)."""
    store = open_store(url.format(tmp=tmp_path), tmp_path / "unused")
    data = _png((200, 10, 10))
    sha = store.put(data)
    assert store.put(data) == sha and store.exists(sha) and not store.exists("0" * 64)
    assert store.read(sha) == data
    assert store.open(sha).getpixel((0, 0)) == (200, 10, 10)
    fs, base = fsspec.core.url_to_fs(url.format(tmp=tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in fs.find(base)] == [f"{sha}.png"]  # no temporary left behind
    with pytest.raises(FileNotFoundError):
        store.read("0" * 64)


def test_workspace_reads_its_blob_url_from_settings(ws_path: Path, tmp_path: Path) -> None:
    settings = ws_path / "aesdata.toml"
    settings.write_text(settings.read_text().replace('url = ""', f'url = "local://{tmp_path}/elsewhere"'))
    with Workspace.open(ws_path) as ws:
        sha = ws.blobs.put(_png((1, 2, 3)))
        assert ws.blobs.url == f"local://{tmp_path}/elsewhere"
    assert (tmp_path / "elsewhere" / sha[:2] / sha[2:4] / f"{sha}.png").is_file()
    assert not any((ws_path / "blobs").rglob("*.png"))


KILLED_MID_MOVE = """
import os, signal, sys
from fsspec.implementations.local import LocalFileSystem
from aesdata.blobs import open_store
LocalFileSystem.mv = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # written, not yet moved
open_store(sys.argv[1], None).put(b"half a png")
"""


def test_a_remote_write_killed_mid_way_is_swept_when_the_workspace_opens(ws_path: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem behind fsspec (not an object store) stages writes in ``.tmp/``: a killed writer's
    file goes at the next opening, a live writer's stays, and the finished blob is all that is left."""
    url = f"local://{tmp_path}/shared"
    settings = ws_path / "aesdata.toml"
    settings.write_text(settings.read_text().replace('url = ""', f'url = "{url}"'))
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_MOVE, url], check=False)
    assert killed.returncode == -9
    staging = tmp_path / "shared" / TMP_DIR
    [left] = list(staging.iterdir())
    real_mv, seen = LocalFileSystem.mv, []

    def open_meanwhile(fs: LocalFileSystem, *args: object, **kwargs: object) -> None:
        seen.extend(staging.iterdir())  # a live write is staged: another process opens the workspace
        Workspace.open(ws_path).close()
        assert all(p.exists() for p in seen if p != left), "a live writer's file was removed"
        real_mv(fs, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "mv", open_meanwhile)
    sha = open_store(url, tmp_path / "unused").put(_png((4, 5, 6)))  # the live writer, not opening the workspace
    monkeypatch.undo()
    assert left in seen and len(seen) == 2 and not left.exists()
    assert list(staging.iterdir()) == []
    assert [p.name for p in (tmp_path / "shared").rglob("*.png")] == [f"{sha}.png"]


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 API on loopback (moto's server) and s3fs talking to it over HTTP, credentials from the
    environment as a user's would be."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("aesdata-blobs")
    try:
        yield "s3://aesdata-blobs/ws1"
    finally:
        server.stop()


def test_s3_store_through_s3fs_serves_a_whole_generate_run(ws_path: Path, tmp_path: Path, s3_bucket: str) -> None:
    """ingest and generate with ``[blobs] url = "s3://..."``: every image lands in the bucket, none on disk."""
    from aesdata.generate.demo_sources import write_demo_sources
    from aesdata.generate.stage import generate
    from aesdata.ingest import ingest

    settings = ws_path / "aesdata.toml"
    settings.write_text(settings.read_text().replace('url = ""', f'url = "{s3_bucket}"'))
    write_demo_sources(tmp_path / "photos", 2)
    with Workspace.open(ws_path) as ws:
        assert isinstance(ws.blobs, RemoteBlobStore) and ws.blobs.url == s3_bucket
        assert ingest(ws, [tmp_path / "photos"], workers=1).added == 2
        assert generate(ws, backend="synthetic", size=96)["samples"] == 2
        shas = [r[0] for r in ws.db.execute("SELECT sha256 FROM candidates UNION SELECT id FROM sources")]
        assert len(shas) == 10 and all(ws.blobs.exists(sha) for sha in shas)
        assert ws.blobs.open(shas[0]).size in {(96, 96), Image.open(tmp_path / "photos" / "product_0000.png").size}
    keys = fsspec.filesystem("s3", skip_instance_cache=True).find("aesdata-blobs/ws1")
    assert len(keys) == 10 and all(k.endswith(".png") for k in keys)
    assert not any((ws_path / "blobs").rglob("*.png"))
