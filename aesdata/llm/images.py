"""Images for multimodal prompts: resized to a maximum side and JPEG-encoded once per image.

A sample's five images are sent with every try of that sample (retries, repair, automated
attempts) and again by later runs and stages, so each is encoded once: kept in a bounded LRU cache
and, in a workspace, as JPEG files under ``cache/cot-images/`` keyed by blob and settings.
Encoding runs in worker threads (Pillow releases the GIL while resizing and encoding), keeping the
event loop that drives the requests responsive.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from aesdata.blobs import BlobStore
from aesdata.imageio import flatten

if TYPE_CHECKING:
    from aesdata.workspace import Workspace


def image_cache(ws: Workspace) -> Path:
    """Where the workspace keeps the JPEG renditions sent to models (derived, safe to delete)."""
    return ws.root / "cache" / "cot-images"


def encode_jpeg(img: Image.Image, *, max_side: int, quality: int = 85) -> bytes:
    """RGB JPEG of ``img`` with its longer side at most ``max_side`` (transparency on white)."""
    img = flatten(img)
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


class ImageEncoder:
    """Blob sha256 -> data URL, encoded once (per ``max_side``/``quality``) and cached.

    Two levels: a bounded in-memory LRU of data URLs, and (with ``cache_dir``) the JPEG bytes on disk,
    so later runs, other modes and other stages (eval) never decode and encode the same image again.
    The disk cache is derived data: deleting it costs only re-encoding.
    """

    def __init__(
        self,
        blobs: BlobStore,
        *,
        max_side: int = 768,
        quality: int = 85,
        cache_size: int = 4096,
        cache_dir: Path | None = None,
    ) -> None:
        if max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
        self.blobs, self.max_side, self.quality, self.cache_size = blobs, max_side, quality, cache_size
        self.disk = cache_dir / f"{max_side}px-q{quality}" if cache_dir is not None else None
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0  # how many encodings were done (misses of both caches)

    def _path(self, sha: str) -> Path | None:
        return self.disk / sha[:2] / f"{sha}.jpg" if self.disk is not None else None

    def _jpeg(self, sha: str) -> bytes:
        path = self._path(sha)
        if path is not None and path.is_file():
            return path.read_bytes()
        jpeg = encode_jpeg(self.blobs.open(sha), max_side=self.max_side, quality=self.quality)
        with self._lock:
            self.encoded += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
            tmp.write_bytes(jpeg)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        return jpeg

    def url(self, sha: str) -> str:
        """The data URL of one stored image (thread-safe)."""
        with self._lock:
            if sha in self._cache:
                self._cache.move_to_end(sha)
                return self._cache[sha]
        url = data_url(self._jpeg(sha))
        with self._lock:
            self._cache[sha] = url
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return url

    def _ready(self, sha: str) -> bool:
        """Whether :meth:`url` needs no encoding (cached in memory or on disk)."""
        path = self._path(sha)
        return sha in self._cache or (path is not None and path.is_file())

    async def urls(self, shas: Sequence[str]) -> list[str]:
        """Data URLs of several images; encoding runs off the event loop, cache reads inline."""
        if all(self._ready(sha) for sha in shas):
            return [self.url(sha) for sha in shas]
        return await asyncio.to_thread(lambda: [self.url(sha) for sha in shas])
