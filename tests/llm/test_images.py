"""Images are resized and JPEG-encoded once per image: in memory within a run, on disk across runs."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from aesdata.llm.images import ImageEncoder
from aesdata.workspace import Workspace


def decode(url: str) -> Image.Image:
    assert url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_resized_flattened_and_encoded_once(ws: Workspace, tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (300, 120), (10, 20, 30, 0))
    sha = ws.blobs.put_image(rgba)
    enc = ImageEncoder(ws.blobs, max_side=100, cache_dir=tmp_path / "cache")
    urls = asyncio.run(enc.urls([sha, sha, sha]))
    assert len(set(urls)) == 1 and enc.encoded == 1
    img = decode(urls[0])
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (100, 40)
    assert img.getpixel((50, 20))[0] > 240  # transparent area composited on white

    again = ImageEncoder(ws.blobs, max_side=100, cache_dir=tmp_path / "cache")
    assert again.url(sha) == urls[0] and again.encoded == 0  # read back from disk, not re-encoded
    other = ImageEncoder(ws.blobs, max_side=64, cache_dir=tmp_path / "cache")
    assert max(decode(other.url(sha)).size) == 64 and other.encoded == 1  # settings are part of the key


def test_rendered_ahead_by_a_process_pool_then_read_back(ws: Workspace, tmp_path: Path) -> None:
    shas = [ws.blobs.put_image(Image.new("RGB", (200, 100), (40 * i, 0, 0))) for i in range(4)]
    broken = ws.blobs.put(b"not a png at all")
    enc = ImageEncoder(ws.blobs, max_side=50, cache_dir=tmp_path / "cache")

    async def run() -> list[str]:
        await enc.render_ahead([*shas, shas[0], broken], ahead=2, workers=2)
        urls = await enc.urls(shas)
        with pytest.raises(OSError):  # the pool's failure is not swallowed: the image's own error is raised
            await enc.urls([broken])
        return urls

    try:
        urls = asyncio.run(run())
    finally:
        enc.close()
    assert enc.encoded == 0  # every good image was made by the pool, in other processes
    assert len(list((tmp_path / "cache" / "50px-q85").rglob("*.url"))) == 4
    assert [decode(u).size for u in urls] == [(50, 25)] * 4
    assert decode(urls[1]).getpixel((25, 12))[0] > 25  # each sha got its own image


MAIN_SCRIPT = '''
import sys
from pathlib import Path

if __name__ != "__main__":  # imported again somewhere: say where
    import os
    with Path(__file__).with_suffix(".imports").open("a") as fh:
        fh.write(f"{os.getpid()} {__name__}\\n")
else:
    import asyncio

    from aesdata import store
    from aesdata.llm.images import ImageEncoder, image_cache
    from aesdata.workspace import Workspace
    from tests.factories import make_samples

    ws = Workspace.init(Path(sys.argv[1]))
    make_samples(ws, 4, seed=3)
    encoder = ImageEncoder(ws.blobs, max_side=64, cache_dir=image_cache(ws))
    shas = [sha for s in store.iter_samples(ws.db) for sha in (s.source_id, *store.candidate_shas(ws.db, s.id))]
    asyncio.run(encoder.render_ahead(shas, ahead=20, workers=2))
    encoder.close()
    print(len(list(image_cache(ws).rglob("*.url"))))
'''


def test_render_workers_do_not_import_the_callers_main_module(tmp_path: Path) -> None:
    """A script that renders images (a user's pipeline, the cot benchmark) is not imported again in each render
    worker: its imports cost seconds of CPU there, and an unguarded script's code would run in every one."""
    script = tmp_path / "pipeline.py"
    script.write_text(MAIN_SCRIPT)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ws")], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["20"]  # every image rendered, by the pool
    assert not script.with_suffix(".imports").exists(), script.with_suffix(".imports").read_text()
