"""Images for multimodal prompts: resized to a maximum side and JPEG-encoded once per image.

A sample's five images are sent with every try of that sample (retries, repair, automated
attempts) and again by later runs and stages, so each is encoded once: kept in a bounded LRU cache
and, in a workspace, as JPEG files under ``cache/cot-images/`` keyed by blob and settings.

A stage that knows which images it will need renders them ahead (:meth:`ImageEncoder.render_ahead`)
in a pool of processes, in the order it will ask for them, a bounded number ahead: decoding a PNG
costs about 2 ms of CPU per 256 px image, held mostly under the GIL, so in threads it would stall the
event loop that sends the requests. An image still missing when it is asked for is encoded in a worker
thread (Pillow releases the GIL while resizing and encoding).
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import multiprocessing
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from aesdata.blobs import BlobStore
from aesdata.childenv import die_with_parent
from aesdata.imageio import flatten
from aesdata.llm.body import Verbatim

if TYPE_CHECKING:
    from aesdata.workspace import Workspace

#: Images looked up at a time by :meth:`ImageEncoder.render_ahead`.
_CHUNK = 64
#: Seconds a full read-ahead waits for an image to be asked for before it drops its oldest one.
_STALE_S = 0.5


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


def data_url(jpeg: bytes) -> Verbatim:
    """The JPEG as a data URL (:class:`Verbatim`: a request body copies it in without escaping)."""
    return Verbatim("data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def render(blobs: BlobStore, sha: str, target: Path, max_side: int, quality: int) -> None:
    """Write the JPEG rendition of one stored image to ``target`` (the job of a render-ahead process)."""
    write_atomic(target, encode_jpeg(blobs.open(sha), max_side=max_side, quality=quality))


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked where that is safe (Linux, no other thread yet: nothing half-locked is
    copied), else spawned (a spawned worker first imports Pillow and this module, about 0.3 s)."""
    fork = sys.platform == "linux" and threading.active_count() == 1
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
                               initializer=die_with_parent)


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
        self._ahead: dict[str, asyncio.Future[None]] = {}  # renditions being made by the pool
        self._renderer: ProcessPoolExecutor | None = None
        self._ready: dict[str, str] = {}  # data URLs read ahead from the disk cache, not yet asked for
        self._reading: dict[str, asyncio.Future[Any]] = {}  # being read ahead
        self._taken = asyncio.Event()  # one of them was asked for

    def _path(self, sha: str) -> Path | None:
        return self.disk / sha[:2] / f"{sha}.jpg" if self.disk is not None else None

    def _file(self, sha: str) -> str:
        """The rendition's path as a plain string (pathlib's joins cost more than the read they lead to)."""
        return f"{self.disk}/{sha[:2]}/{sha}.jpg"

    def _cached(self, sha: str) -> str | None:
        """The data URL from memory or the disk cache; None when the image must be encoded."""
        with self._lock:
            if sha in self._cache:
                self._cache.move_to_end(sha)
                return self._cache[sha]
        if self.disk is None:
            return None
        try:  # a plain string path and one read: pathlib and a stat first cost more than the read
            with open(self._file(sha), "rb") as fh:
                return self._remember(sha, data_url(fh.read()))
        except FileNotFoundError:
            return None

    def _remember(self, sha: str, url: str) -> str:
        with self._lock:
            self._cache[sha] = url
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return url

    def url(self, sha: str) -> str:
        """The data URL of one stored image (thread-safe), encoded and cached if need be."""
        if (url := self._cached(sha)) is not None:
            return url
        jpeg = encode_jpeg(self.blobs.open(sha), max_side=self.max_side, quality=self.quality)
        with self._lock:
            self.encoded += 1
        if (path := self._path(sha)) is not None:
            write_atomic(path, jpeg)
        return self._remember(sha, data_url(jpeg))

    async def urls(self, shas: Sequence[str]) -> list[str]:
        """Data URLs of several images; cache reads inline, encoding off the event loop."""
        rendering = {job for sha in shas if (job := self._ahead.get(sha) or self._reading.get(sha)) is not None}
        if rendering:  # a failed rendition is encoded below, where its error is the image's own
            await asyncio.wait(rendering)
        found = [self._take(sha) or self._cached(sha) for sha in shas]
        if all(found):
            return found  # type: ignore[return-value]
        return await asyncio.to_thread(lambda: [url or self.url(sha) for sha, url in zip(shas, found, strict=True)])

    def _take(self, sha: str) -> str | None:
        """A data URL read ahead (event loop only)."""
        url = self._ready.pop(sha, None)
        if url is not None:
            self._remember(sha, url)
            self._taken.set()
        return url

    async def render_ahead(
        self, shas: Iterable[str], *, ahead: int, read_ahead: int = 0, workers: int | None = None
    ) -> None:
        """Render ``shas`` into the disk cache in a pool of processes, in order, at most ``ahead`` at a
        time; :meth:`urls` waits for one being rendered. Run it as a task beside the requests; it ends
        when every image is rendered (or already was); cancel it, then :meth:`close`, to stop early.

        Renditions already on disk are read into memory, at most ``read_ahead`` not yet asked for, and
        which exist is looked up, in a thread a chunk at a time: on the event loop, a stat and a read
        per image of a warm cache took a fifth of its time per request at 256 in flight."""
        if self.disk is None:
            return
        loop = asyncio.get_running_loop()
        room = asyncio.Semaphore(ahead)
        pending = iter(shas)
        while chunk := list(itertools.islice(pending, _CHUNK)):
            while len(self._ready) >= read_ahead > 0:
                self._taken.clear()
                try:
                    await asyncio.wait_for(self._taken.wait(), _STALE_S)
                except TimeoutError:  # nobody asked for the oldest (its sample was done elsewhere): drop it
                    self._ready.pop(next(iter(self._ready)))
            wanted = [sha for sha in dict.fromkeys(chunk)
                      if sha not in self._ahead and sha not in self._cache and sha not in self._ready]
            look = asyncio.ensure_future(asyncio.to_thread(self._look, wanted, read_ahead > 0))
            if read_ahead > 0:  # those asked for meanwhile wait for this read rather than read them again
                self._reading.update(dict.fromkeys(wanted, look))
            try:
                missing, found = await look
            finally:
                for sha in wanted:
                    self._reading.pop(sha, None)
            self._ready.update(found)
            for sha in missing:
                await room.acquire()
                if sha in self._ahead or sha in self._cache:  # a repeat, or encoded inline meanwhile
                    room.release()
                    continue
                if self._renderer is None:
                    self._renderer = _pool(workers or min(4, os.cpu_count() or 1))
                path = self._path(sha)
                job = loop.run_in_executor(self._renderer, render, self.blobs, sha, path, self.max_side, self.quality)
                self._ahead[sha] = job
                job.add_done_callback(lambda _job, sha=sha: (room.release(), self._ahead.pop(sha, None)))
        await asyncio.gather(*self._ahead.values(), return_exceptions=True)

    def _look(self, shas: list[str], read: bool) -> tuple[list[str], dict[str, str]]:
        """(those of ``shas`` without a rendition on disk, data URLs of the others if ``read``): a thread's job."""
        missing: list[str] = []
        found: dict[str, str] = {}
        for sha in shas:
            if not read:
                if not os.path.isfile(self._file(sha)):
                    missing.append(sha)
                continue
            try:
                with open(self._file(sha), "rb") as fh:
                    found[sha] = data_url(fh.read())
            except FileNotFoundError:
                missing.append(sha)
        return missing, found

    def close(self) -> None:
        """Stop rendering ahead: the pool's processes end (what they wrote stays in the cache)."""
        if self._renderer is not None:
            self._renderer.shutdown(wait=False, cancel_futures=True)
            self._renderer = None
