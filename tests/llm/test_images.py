"""Images are resized and JPEG-encoded once per image: in memory within a run, on disk across runs."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

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
