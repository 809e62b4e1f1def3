"""Content-addressed image store: ``blobs/ab/cd/<sha256>.png``.

A blob is written to a temporary name, fsynced and renamed before any row that names it
commits: a crash can leave an orphan blob, never a row pointing at a missing file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image


def encode_png(img: Image.Image) -> bytes:
    """Deterministic PNG bytes (no metadata), so equal pixels give equal hashes.

    zlib level 1: about 5x faster than the default 6 for about 25% more bytes (measured on 512px
    photos); encoding dominated ingest time. The level is part of the content hash: never change it.
    """
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def relpath(self, sha: str) -> str:
        """Path relative to the store root (what Label Studio's local-files storage serves)."""
        return f"{sha[:2]}/{sha[2:4]}/{sha}.png"

    def path(self, sha: str) -> Path:
        return self.root / self.relpath(sha)

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, data: bytes) -> str:
        """Store PNG bytes; return their sha256. Idempotent, atomic."""
        sha = hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        if dest.is_file():
            return sha
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def put_image(self, img: Image.Image) -> str:
        return self.put(encode_png(img))

    def read(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()

    def open(self, sha: str) -> Image.Image:
        """Open a stored image fully loaded (the file handle is closed on return)."""
        with Image.open(self.path(sha)) as img:
            img.load()
            return img
