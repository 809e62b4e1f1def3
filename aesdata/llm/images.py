"""Images for multimodal prompts: resized to a maximum side and JPEG-encoded once per image.

A sample's five images are sent with every try of that sample (retries, repair, automated
attempts) and again by later runs and stages, so each is encoded once: kept in a bounded LRU cache
and, in a workspace, under ``cache/cot-images/`` keyed by blob and settings, as the data URL itself
(``<sha>.url``: ``data:image/jpeg;base64,...``). A warm run reads each back on its event loop, five a
request: stored as JPEG, base64-encoding it there took two thirds of the read's CPU (47 us an image, 16
now).

A stage that knows which images it will need renders them ahead (:meth:`ImageEncoder.render_ahead`)
in a pool of processes, in the order it will ask for them, a bounded number ahead: decoding a PNG
costs about 2 ms of CPU per 256 px image, held mostly under the GIL, so in threads it would stall the
event loop that sends the requests. An image still missing when it is asked for is rendered by that pool
too, or (no pool) encoded in a worker thread (Pillow releases the GIL while resizing and encoding).
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from aesdata.blobs import BlobStore
from aesdata.childenv import clean_pool, clean_pool_context
from aesdata.imageio import flatten
from aesdata.llm.body import Verbatim

if TYPE_CHECKING:
    from aesdata.workspace import Workspace

#: Images looked up at a time by :meth:`ImageEncoder.render_ahead`.
_CHUNK = 64
#: Images rendered per job of the pool (a sample has five).
_PER_JOB = 5
#: Data URLs handed back by the pool kept in memory until asked for, at most (the others are read back).
_KEEP = 64


def image_cache(ws: Workspace) -> Path:
    """Where the workspace keeps the JPEG renditions sent to models, as data URLs (derived, safe to delete)."""
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
    return Verbatim(data_url_bytes(jpeg), "ascii")


def data_url_bytes(jpeg: bytes) -> bytes:
    """The data URL of the JPEG, as the disk cache keeps it (ASCII)."""
    return b"data:image/jpeg;base64," + base64.b64encode(jpeg)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_file(path: str) -> bytes:
    """The whole file, in four system calls (open, fstat, read, close) from a plain string path: ``open()``
    adds a tty check, a buffer and a second fstat, pathlib its joins; a rendition is read per image and
    request on the event loop."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        while len(data) < size and (more := os.read(fd, size - len(data))):
            data += more
        return data
    finally:
        os.close(fd)


def render(blobs: BlobStore, jobs: list[tuple[str, str]], max_side: int, quality: int) -> dict[str, Verbatim]:
    """Write the renditions of stored images (sha, target path) and return their data URLs (the job
    of a render-ahead process: the event loop then neither reads them back nor base64-encodes them).

    Several images a job: each job costs the event loop's process a round of the pool's machinery. One
    that cannot be read is left out (asked for, it is encoded where its error is the image's own)."""
    urls: dict[str, Verbatim] = {}
    for sha, target in jobs:
        try:
            url = data_url_bytes(encode_jpeg(blobs.open(sha), max_side=max_side, quality=quality))
        except (OSError, ValueError):
            continue
        write_atomic(Path(target), url)
        urls[sha] = Verbatim(url, "ascii")
    return urls


class ImageEncoder:
    """Blob sha256 -> data URL, encoded once (per ``max_side``/``quality``) and cached.

    Two levels: a bounded in-memory LRU of data URLs, and (with ``cache_dir``) the same on disk,
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
        self._context: BaseContext | None = None  # the clean fork server's, once started
        self._workers = min(4, os.cpu_count() or 1)
        self._pooled = False  # images missing when asked for are rendered by the pool (the stage renders ahead)
        self._ready: dict[str, str] = {}  # data URLs the pool handed back, not yet asked for

    def _file(self, sha: str) -> str:
        """The rendition's path as a plain string (pathlib's joins cost more than the read they lead to)."""
        return f"{self.disk}/{sha[:2]}/{sha}.url"

    def _memory(self, sha: str) -> str | None:
        with self._lock:
            if sha in self._cache:
                self._cache.move_to_end(sha)
                return self._cache[sha]
        return None

    def _cached(self, sha: str) -> str | None:
        """The data URL from memory or the disk cache; None when the image must be encoded."""
        if (url := self._memory(sha)) is not None:
            return url
        if self.disk is None:
            return None
        try:
            return self._remember(sha, Verbatim(read_file(self._file(sha)), "ascii"))
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
        url = data_url_bytes(encode_jpeg(self.blobs.open(sha), max_side=self.max_side, quality=self.quality))
        with self._lock:
            self.encoded += 1
        if self.disk is not None:
            write_atomic(Path(self._file(sha)), url)
        return self._remember(sha, Verbatim(url, "ascii"))

    async def urls(self, shas: Sequence[str]) -> list[str]:
        """Data URLs of several images: from memory or the disk cache (read on the loop: one read of a
        rendition costs about 10 us of CPU there, while in a thread each of its system calls waited for the
        busy loop to hand back the GIL), else rendered off the loop."""
        rendering = {job for sha in shas if (job := self._ahead.get(sha)) is not None}
        if rendering:  # a failed rendition is encoded below, where its error is the image's own
            await asyncio.wait(rendering)
        found = [self._take(sha) or self._cached(sha) for sha in shas]
        if all(found):
            return found  # type: ignore[return-value]
        if self._pooled:  # the pool renders them: this process's CPU stays with the requests
            missing = [sha for sha, url in zip(shas, found, strict=True) if not url]
            fresh = [sha for sha in dict.fromkeys(missing) if sha not in self._ahead]
            jobs = {self._ahead[sha] for sha in missing if sha in self._ahead}
            await asyncio.wait(jobs | ({self._render(fresh)} if fresh else set()))
            found = [url or self._take(sha) or self._cached(sha) for sha, url in zip(shas, found, strict=True)]
            if all(found):
                return found  # type: ignore[return-value]
        return await asyncio.to_thread(lambda: [url or self.url(sha) for sha, url in zip(shas, found, strict=True)])

    def _render(self, shas: list[str]) -> asyncio.Future[dict[str, Verbatim]]:
        """Have the pool render images into the disk cache, in one job; their data URLs are kept until asked
        for (event loop only)."""
        jobs = [(sha, self._file(sha)) for sha in shas]
        job = asyncio.get_running_loop().run_in_executor(
            self._pool(), render, self.blobs, jobs, self.max_side, self.quality
        )
        for sha in shas:
            self._ahead[sha] = job

        def done(job: asyncio.Future[dict[str, Verbatim]]) -> None:
            for sha in shas:
                self._ahead.pop(sha, None)
            if not job.cancelled() and job.exception() is None:
                for sha, url in job.result().items():  # kept, a few (the others are read back)
                    if len(self._ready) < _KEEP:
                        self._ready[sha] = url

        job.add_done_callback(done)
        return job

    def _take(self, sha: str) -> str | None:
        """A data URL the pool handed back (event loop only)."""
        url = self._ready.pop(sha, None)
        return None if url is None else self._remember(sha, url)

    async def render_ahead(self, shas: Iterable[str], *, ahead: int, workers: int | None = None) -> None:
        """Render ``shas`` into the disk cache in a pool of processes, in order, at most ``ahead`` at a
        time; :meth:`urls` waits for one being rendered. Run it as a task beside the requests; it ends
        when every image is rendered (or already was); cancel it, then :meth:`close`, to stop early.

        Which renditions exist is looked up on the loop, a chunk at a time (one ``stat`` each, about 5 us):
        in a thread, each lookup waited for the busy loop to hand back the GIL, up to the 5 ms switch
        interval, and a read-ahead of the renditions themselves there fell far behind the first round's
        requests (256 samples' images took a second)."""
        if self.disk is None:
            return
        self._pooled = True
        room = asyncio.Semaphore(max(1, ahead // _PER_JOB))
        pending = iter(shas)
        while chunk := list(itertools.islice(pending, _CHUNK)):
            missing = [sha for sha in dict.fromkeys(chunk)
                       if sha not in self._ahead and sha not in self._cache and not os.path.isfile(self._file(sha))]
            for start in range(0, len(missing), _PER_JOB):
                await room.acquire()
                group = [sha for sha in missing[start:start + _PER_JOB]  # not a repeat, nor encoded meanwhile
                         if sha not in self._ahead and sha not in self._cache]
                if not group:
                    room.release()
                    continue
                if self._context is None:
                    self.start_rendering(workers)
                self._render(group).add_done_callback(lambda _job: room.release())
            await asyncio.sleep(0)  # the requests go on between chunks
        await asyncio.gather(*self._ahead.values(), return_exceptions=True)

    def start_rendering(self, workers: int | None = None, *, probe: Sequence[str] = ()) -> None:
        """Start the render pool's fork server now (:func:`aesdata.childenv.clean_pool_context`): its
        workers decode stored images and hold none of the caller's environment (its API key) nor its memory.
        A stage calls it before it starts any thread (the server starts with a swapped ``os.environ``),
        so the server imports Pillow and this module while the stage starts; the workers are forked from
        it (in milliseconds) when the first image is missing. When the renditions of ``probe`` (the first
        images the stage will ask for) are all on disk, the cache is taken to be warm and nothing is started
        yet (the server's start costs about 0.5 s of CPU, taken from the requests on a 2-core machine); a
        missing image starts it then."""
        if self._context is not None or self.disk is None:
            return
        self._pooled = True
        if probe and all(os.path.isfile(self._file(sha)) for sha in probe):
            return
        self._context = clean_pool_context([__name__])
        self._workers = workers or self._workers

    def _pool(self) -> ProcessPoolExecutor:
        if self._renderer is None:
            self.start_rendering(self._workers)
            self._renderer = clean_pool(self._workers, [__name__])
        return self._renderer

    def close(self) -> None:
        """Stop rendering ahead: the pool's processes end (what they wrote stays in the cache)."""
        if self._renderer is not None:
            self._renderer.shutdown(wait=False, cancel_futures=True)
            self._renderer = None
